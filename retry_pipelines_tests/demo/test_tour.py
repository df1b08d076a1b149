"""The tour the demo ends with (and the README copies) names places that exist."""

import dagster as dg

from retry_pipelines.definitions import defs
from retry_pipelines.demo.tour import TOUR, UI_URL, render_tour
from retry_pipelines.engine import worklist

JOBS = (
    "retry_failed_invoices",
    "retry_payout_batches",
    "reconcile_payout_batches",
    "resolve_held_invoice",
    "resolve_held_invoices",
    "requeue_dead_invoices",
    "show_item",
)
ASSETS = {"operator_worklist": "operations", "retry_metrics": "retry_reports"}


def test_the_tour_names_jobs_that_exist():
    names = {job.name for job in defs().resolve_all_job_defs()}
    for job in JOBS:
        assert job in TOUR
        assert job in names, f"the tour names {job}, which the code location lacks"


def test_the_tour_leads_to_assets_through_their_groups():
    graph = defs().resolve_asset_graph()
    for asset, group in ASSETS.items():
        assert f"Assets -> {group} -> {asset}" in TOUR
        assert graph.get(dg.AssetKey(asset)).group_name == group
    assert "retry_metrics -> Plots" in TOUR


def test_the_tour_names_the_worklists_placeholders_and_the_ui():
    for placeholder in (worklist.ADMIN_ID, worklist.REASON, worklist.FBR_NUMBER):
        assert placeholder in TOUR
    assert f"open {UI_URL}" in TOUR
    assert "retry-pipelines status invoice REFERENCE" in TOUR
    assert render_tour("INV-7-0000001").endswith("retry-pipelines status invoice INV-7-0000001")
    assert render_tour(None) == TOUR
