"""PayPal payout batches: recording (phase 1), submitting (phase 2), reconciling, operator
actions."""

from retry_pipelines.engine.paypal.admin import (
    BatchReport,
    batch_report,
    manual_retry,
    override_status,
    repay_batch,
)
from retry_pipelines.engine.paypal.reconcile import (
    ITEM_POLL_WINDOW,
    NON_FINAL_ITEMS,
    ReconcileSummary,
    reconcile,
)
from retry_pipelines.engine.paypal.recording import (
    PayoutItem,
    PayoutRejected,
    RecordedBatch,
    record_batch,
)
from retry_pipelines.engine.paypal.retry import create_body, retry_payout_batches

__all__ = [
    "ITEM_POLL_WINDOW",
    "NON_FINAL_ITEMS",
    "BatchReport",
    "PayoutItem",
    "PayoutRejected",
    "ReconcileSummary",
    "RecordedBatch",
    "batch_report",
    "create_body",
    "manual_retry",
    "override_status",
    "reconcile",
    "record_batch",
    "repay_batch",
    "retry_payout_batches",
]
