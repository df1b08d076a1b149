"""FBR invoices: retry runs, operator actions, intake and seeding."""

from retry_pipelines.engine.fbr.admin import (
    RESOLUTIONS,
    requeue_dead_invoices,
    resolve_held_invoice,
)
from retry_pipelines.engine.fbr.intake import IntakeResult, Refusal, enqueue_invoices
from retry_pipelines.engine.fbr.retry import retry_invoices, submitter
from retry_pipelines.engine.fbr.seed import SeedSummary, invoice_payload, seed_invoices

__all__ = [
    "RESOLUTIONS",
    "IntakeResult",
    "Refusal",
    "SeedSummary",
    "enqueue_invoices",
    "invoice_payload",
    "requeue_dead_invoices",
    "resolve_held_invoice",
    "retry_invoices",
    "seed_invoices",
    "submitter",
]
