"""Show one item's history in the Dagster UI: an invoice (fbr) or a payout batch (paypal), every
attempt and every audit row, as the op's output metadata. Read-only, so it carries no gateway tag
and waits behind no run (``engine.history``)."""

from typing import Any

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.maintenance.pauses import Gateway
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.history import ItemHistory, UnknownItem, item_history, text
from retry_pipelines.store.history import ATTEMPT_FIELDS, AUDIT_FIELDS


class ShowItemConfig(dg.Config):
    """Which item to show."""

    gateway: Gateway = Field(
        description="fbr: an invoice; paypal: a payout batch.",
    )
    item: str = Field(
        description="An invoice's id or reference (fbr), or a payout batch's id or "
        "sender_batch_id (paypal). All digits: tried as an id first, then as a reference.",
    )


_TYPES = {"attempt_number": "int", "http_status": "int", "latency_ms": "float"}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return text(value)


def _table(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> dg.MetadataValue:
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, _TYPES.get(name, "string")) for name in fields]
    )
    records = [dg.TableRecord({k: _cell(row[k]) for k in fields}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def _item_markdown(history: ItemHistory) -> str:
    lines = ["| field | value |", "|---|---|"]
    for key, value in history.item.items():
        shown = "" if value is None else text(value).replace("|", "\\|")
        lines.append(f"| {key} | {shown} |")
    for status, count in sorted(history.items_by_status.items()):
        lines.append(f"| items {status} | {count} |")
    return "\n".join(lines)


def metadata(history: ItemHistory) -> dict[str, Any]:
    return {
        "item": dg.MetadataValue.md(_item_markdown(history)),
        "status": history.item["status"],
        "attempts": _table(history.attempts, ATTEMPT_FIELDS),
        "attempt_count": history.attempts_total,
        "attempts_shown": len(history.attempts),
        "audit": _table(history.audit, AUDIT_FIELDS),
        "audit_count": history.audit_total,
        "audit_shown": len(history.audit),
    }


@dg.op(description="Read one invoice or payout batch with its attempts and audit rows.")
def show_one_item(
    context: dg.OpExecutionContext, config: ShowItemConfig, db: DatabaseResource
) -> dg.Output[str]:
    try:
        history = item_history(db.engine, config.gateway.value, config.item)
    except UnknownItem as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(history.title)
    return dg.Output(history.title, metadata=metadata(history))


@dg.job(description="Show one invoice or payout batch: the item, every attempt, every audit row.")
def show_item():
    show_one_item()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[show_item])
