"""Where the demo's results are in the Dagster UI: the address ``make dev`` serves it on and a
one-minute tour, in one place (the README copies ``TOUR``)."""

from __future__ import annotations

UI_URL = "http://127.0.0.1:3000"
"""Where ``dagster dev`` serves the UI unless given a port (``retry-pipelines dev -- -p N``)."""

TOUR = f"""\
See it in the Dagster UI: run `make dev`, then open {UI_URL}
A one-minute tour:
  1. The worklist: Assets -> operations -> operator_worklist. Every held or dead invoice and
     payout batch, with its reference or sender_batch_id, last error and the job and launchpad
     text that settle it.
  2. The plots: Assets -> retry_reports -> retry_metrics -> Plots. Attempts, successes, failures
     and latency per gateway, one point per day.
  3. The runs: Jobs -> retry_failed_invoices (or retry_payout_batches, reconcile_payout_batches)
     -> Runs. Each run's summary is in its op's output metadata.
  4. The admin jobs: Jobs -> resolve_held_invoice, resolve_held_invoices, requeue_dead_invoices,
     ... -> Launchpad. Paste a worklist row's launchpad text, replace its placeholders in
     capitals (YOUR_ID, WHY, FBR_NUMBER_FROM_IRIS), launch.
  5. One item's history, every attempt and audit row: Jobs -> show_item -> Launchpad, with
     gateway fbr and item set to an invoice's reference; or in a shell:
     retry-pipelines status invoice REFERENCE"""
"""The tour; REFERENCE stands for an invoice's reference (the demo names one of its own)."""


def render_tour(reference: str | None = None) -> str:
    """The tour, with ``reference`` (one of the demo's held or dead invoices) as the example."""
    return TOUR.replace("REFERENCE", reference) if reference else TOUR
