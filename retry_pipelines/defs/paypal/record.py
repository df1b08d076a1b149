"""Recording a payout batch from the launchpad (phase 1): its items inline in the config, or a
JSON or CSV file on the code location's machine (``engine.paypal.intake``). The batch goes
through phase 1's validation and the payout identity rule (``recording.record_batch``); a refusal
fails the run with the reason as the failure's description, and nothing is written."""

from datetime import UTC, datetime
from enum import Enum

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.paypal import admin as actions
from retry_pipelines.engine.paypal.intake import PayoutFile, inline_payout, read_payout_file
from retry_pipelines.engine.paypal.recording import PayoutRejected, record_batch
from retry_pipelines.lib.admin import report_metadata
from retry_pipelines.lib.tags import PAYPAL, gateway_tags

TAGS = gateway_tags(PAYPAL)
"""Like every job acting on payout batches: one PayPal run at a time on the instance."""


class RecipientType(Enum):
    """What a payee's receiver is (``recording.RECIPIENT_TYPES``)."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    PAYPAL_ID = "PAYPAL_ID"


class PayoutItemConfig(dg.Config):
    """One payee line of the batch."""

    receiver: str = Field(description="The payee: an email, phone number or PayPal id.")
    value: str = Field(description='The amount as text, at most 2 decimals (e.g. "12.50").')
    currency: str = Field(description="3-letter ISO code; one currency per batch.")
    sender_item_id: str = Field(
        description="Your id for this payee line; never repeated within a cycle."
    )
    recipient_type: RecipientType = Field(
        default=RecipientType.EMAIL, description="What receiver is: EMAIL, PHONE or PAYPAL_ID."
    )
    note: str | None = Field(default=None, description="A note to the payee (optional).")


class RecordPayoutConfig(dg.Config):
    """Give either ``items`` or ``path``, not both."""

    cycle_id: str | None = Field(
        default=None,
        description="The payout cycle (e.g. 2026-11-W48). Required for inline items and CSV; a "
        "JSON file may carry its own (if both are given they must agree).",
    )
    items: list[PayoutItemConfig] | None = Field(
        default=None, description="The batch's items, inline (or give path instead)."
    )
    path: str | None = Field(
        default=None,
        description="A JSON or CSV payout file on the code location's machine (or give items "
        "instead); at most 16 MB.",
    )
    email_subject: str | None = Field(
        default=None, description="Subject of PayPal's email to payees (optional)."
    )
    email_message: str | None = Field(
        default=None, description="Message of PayPal's email to payees (optional)."
    )


def payout_from_config(config: RecordPayoutConfig) -> PayoutFile:
    """The batch the launchpad names; ``PayoutRejected`` when it names none, or two."""
    if (config.items is None) == (config.path is None):
        raise PayoutRejected(
            "give exactly one of items (inline) or path (a JSON or CSV file); nothing was recorded"
        )
    if config.path is not None:
        batch = read_payout_file(config.path, cycle_id=config.cycle_id)
        return PayoutFile(
            batch.cycle_id,
            batch.items,
            config.email_subject or batch.email_subject,
            config.email_message or batch.email_message,
        )
    return inline_payout(
        config.cycle_id,
        [_item_values(item) for item in config.items or []],
        email_subject=config.email_subject,
        email_message=config.email_message,
    )


def _item_values(item: PayoutItemConfig) -> dict[str, str | None]:
    """An inline item as the values a payout file would hold (the recipient type as text)."""
    return {**item.model_dump(), "recipient_type": item.recipient_type.value}


@dg.op(description="Record one payout batch (phase 1), due for submission by retry_payout_batches.")
def record_one_payout_batch(
    context: dg.OpExecutionContext, config: RecordPayoutConfig, db: DatabaseResource
) -> int:
    now = datetime.now(UTC)
    try:
        batch = payout_from_config(config)
        recorded = record_batch(
            db.engine,
            cycle_id=batch.cycle_id,
            items=batch.items,
            now=now,
            email_subject=batch.email_subject,
            email_message=batch.email_message,
        )
    except PayoutRejected as exc:
        raise dg.Failure(description=" ".join(str(exc).split()), allow_retries=False) from None
    report = actions.batch_report(db.engine, recorded.id, now=now)
    context.add_output_metadata(
        {
            "batch_id": recorded.id,
            "sender_batch_id": recorded.sender_batch_id,
            "cycle_id": batch.cycle_id,
            "item_count": len(batch.items),
            "total": f"{recorded.total_value} {batch.items[0].currency}",
            "report": report_metadata(report.render()),
        }
    )
    return recorded.id


@dg.job(
    tags=TAGS,
    description="Record a payout batch from inline items or a JSON/CSV file (all or nothing; the "
    "same batch or payee twice in a cycle is refused).",
)
def record_payout_batch():
    record_one_payout_batch()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[record_payout_batch])
