"""The operator's day in the Dagster UI, checked on the real pages after the demo: the worklist
lists every held and dead item as the database has them, the ``retry_metrics`` plots have points
to compare, every launchpad field of the retry and admin jobs is described, and a run launched
without a gateway variable fails naming it. Each page is saved under ``.ci-results/browser/``.
How each page is read is described in ``pages.py``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine

from retry_pipelines.store import worklist as worklist_store
from retry_pipelines.store.queues import QUEUES
from retry_pipelines_tests.browser import pages
from retry_pipelines_tests.browser.config_schema import (
    SCHEMA_QUERY,
    Container,
    containers,
    normalized,
    selector,
)
from retry_pipelines_tests.browser.site import (
    LOCATION,
    MISSING_VARIABLE,
    REPOSITORY,
    graphql,
    wait_for_run_end,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

WORKLIST_ASSET = "operator_worklist"
WORKLIST_GROUP = "operations"
WORKLIST_TABLE = "worklist"
PLOTTED = ("fbr/attempts", "paypal/attempts")
"""Charts on ``retry_metrics``' Plots tab that must show a trend: the demo made attempts of
both gateways, and its report runs materialized more than one day."""
ADMIN_JOBS = (
    "requeue_dead_invoices",
    "resolve_held_invoice",
    "resolve_held_invoices",
    "manual_retry_payout_batch",
    "override_payout_batch_status",
    "repay_payout_batch",
    "record_payout_batch",
    "resume_gateway",
    "release_stuck_locks",
    "prune_attempt_history",
    "show_item",
)
LAUNCHPAD_JOBS = ("retry_failed_invoices", *ADMIN_JOBS)
PLOTS_BUTTON = re.compile(r"^\s*Plots\s*$")
"""The Metadata section's Table/Plots switch (its icon's label is part of the button's name)."""
RUN_URL = re.compile(r"/runs/(?P<run_id>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})")
RUN_PAGE_OR_DIALOG_JS = (
    "() => /\\/runs\\/[0-9a-f-]{36}/.test(location.pathname)"
    " || document.querySelector('[role=\"dialog\"]') !== null"
)
"""After Launch Run: the run's page opened, or a dialog (a launch error) did."""
WORKLIST_COLUMNS = ("gateway", "kind", "id", "reference", "error_code")


def _waiting_in_database(engine: Engine) -> set[tuple[str, str, str, str, str]]:
    """(gateway, kind, id, reference or sender_batch_id, last error code) of every item that
    waits for a person, read through ``store.worklist``."""
    found = set()
    with engine.connect() as conn:
        for gateway, queue in QUEUES.items():
            for kind in worklist_store.kinds(queue):
                for row in worklist_store.waiting(conn, queue, kind, limit=100_000):
                    code = row["last_error_code"] or ""
                    found.add((gateway, kind, str(row["id"]), row["name"], code))
    return found


def test_worklist_shows_every_held_and_dead_item_with_reference_and_code(site, site_engine, page):
    page.goto(f"{site.url}/assets/{WORKLIST_ASSET}")
    group = page.get_by_role("link", name=WORKLIST_GROUP, exact=True)
    group.first.wait_for()
    pages.screenshot(page, "worklist-overview")
    page.goto(f"{site.url}/assets/{WORKLIST_ASSET}?view=events")
    rows = pages.metadata_table(page, WORKLIST_TABLE)
    pages.screenshot(page, "worklist-latest-materialization")

    assert not rows or set(WORKLIST_COLUMNS) <= set(rows[0]), (
        f"the worklist table lacks columns {sorted(set(WORKLIST_COLUMNS) - set(rows[0]))}"
    )
    shown = {tuple(r[c] for c in WORKLIST_COLUMNS) for r in rows}
    expected = _waiting_in_database(site_engine)
    assert {kind for _, kind, *_ in expected} == {"held", "dead"}, (
        f"the demo left no held or no dead item to show: {sorted(expected)}"
    )
    assert shown == expected, (
        f"only on the page: {sorted(shown - expected)}; "
        f"only in the database: {sorted(expected - shown)}"
    )
    assert len(rows) == len(expected), "an item is listed more than once"


def _partition_points(responses: list[Any], label: str) -> set[str]:
    """Partitions with a numeric ``label`` in the materializations the page fetched for its
    plots (GraphQL ``AssetPartitionEventsQuery``)."""
    partitions = set()
    for response in responses:
        node = response.json()["data"]["assetNodeOrError"]
        for event in node.get("latestMaterializationByPartition") or []:
            for entry in (event or {}).get("metadataEntries", []):
                value = entry.get("intValue", entry.get("floatValue"))
                if entry["label"] == label and value is not None:
                    partitions.add(event["partition"])
    return partitions


def _keep_plot_data(responses: list[Any]):
    def keep(response) -> None:
        if not urlsplit(response.url).path.endswith("/graphql"):
            return
        body = response.request.post_data_json or {}
        if body.get("operationName") == "AssetPartitionEventsQuery":
            responses.append(response)

    return keep


def test_retry_metrics_plots_have_at_least_two_points(site, page):
    fetched: list[Any] = []
    page.on("response", _keep_plot_data(fetched))
    page.goto(f"{site.url}/assets/retry_metrics")
    page.locator("button").filter(has_text=PLOTS_BUTTON).click()
    charts = {title: pages.chart_values(page, title) for title in PLOTTED}
    pages.screenshot(page, "retry-metrics-plots")

    for title, datasets in charts.items():
        points = [v for dataset in datasets for v in dataset if v is not None]
        assert len(points) >= 2, f"{title}: the chart shows {len(points)} point(s): {datasets}"
        assert any(points), f"{title}: every point is zero: {points}"
        fetched_points = _partition_points(fetched, title)
        assert len(fetched_points) == len(points), (
            f"{title}: the chart shows {len(points)} points, the page fetched "
            f"{sorted(fetched_points)}"
        )


@pytest.fixture(scope="module")
def checked_types() -> set[str]:
    """Config types whose launchpad help was already read on an earlier job's launchpad (the
    resources' types are the same on every job)."""
    return set()


def _launchpad_containers(url: str, job: str) -> list[Container]:
    answer = graphql(url, SCHEMA_QUERY, {"selector": selector(job, LOCATION, REPOSITORY)})
    schema = answer["runConfigSchemaOrError"]
    assert schema["__typename"] == "RunConfigSchema", f"{job}: {schema}"
    return containers(schema)


def _help_problems(container: Container, shown: list[dict[str, str]]) -> list[str]:
    """How the help panel's fields differ from the schema's; a field without a description."""
    problems = []
    described = {entry["name"]: pages.comment_text(entry["comment"]) for entry in shown}
    for name in sorted(set(container.fields) ^ set(described)):
        where = "only in the help panel" if name in described else "missing from the help panel"
        problems.append(f"{container.name}.{name}: {where}")
    for name, text in sorted(described.items()):
        if not text:
            problems.append(f"{container.name}.{name}: no description shown")
        elif name in container.fields and text != normalized(container.fields[name]):
            problems.append(
                f"{container.name}.{name}: shows {text!r}, the schema says "
                f"{normalized(container.fields[name])!r}"
            )
    return problems


def _undescribed(container: Container) -> list[str]:
    return [
        f"{container.name}.{name}: no description"
        for name, text in container.fields.items()
        if not text.strip()
    ]


@pytest.mark.parametrize("job", LAUNCHPAD_JOBS)
def test_every_launchpad_field_has_a_description(site, page, job, checked_types):
    """Each dict of fields is read in the launchpad's help panel; one whose config type was
    already read on an earlier job's launchpad (a resource's) is checked in the schema only."""
    expected = _launchpad_containers(site.url, job)
    assert expected, f"{job}: the launchpad has no field of its own"
    pages.open_launchpad(page, site.url, LOCATION, job)
    problems: list[str] = []
    for n, container in enumerate(expected):
        if n > 0 and container.type_key in checked_types:
            problems += _undescribed(container)
            continue
        text, line = container.probe_yaml()
        shown = pages.help_panel_fields(page, text, line, container.probe)
        if n == 0:
            pages.screenshot(page, f"launchpad-{job}")
        problems += _help_problems(container, shown)
        checked_types.add(container.type_key)

    assert not problems, f"{job}: " + "; ".join(problems)


def _launched_run_id(page) -> str:
    """The run the launchpad's Launch Run button started, from the run page it opens; a failure
    quoting what the page shows instead (e.g. a launch error dialog)."""
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_function(RUN_PAGE_OR_DIALOG_JS, timeout=pages.UI_TIMEOUT_MS)
    match = RUN_URL.search(page.url)
    if match is None:
        pages.screenshot(page, "launch-refused")
        shown = page.get_by_role("dialog").first.inner_text()
        pytest.fail(f"Launch Run opened no run page but a dialog:\n{shown[:3000]}")
    return match["run_id"]


def test_run_launched_without_a_gateway_variable_fails_naming_it(site, page):
    pages.open_launchpad(page, site.url, LOCATION, "retry_failed_invoices")
    run_id = _launched_run_id(page)
    status = wait_for_run_end(site.url, run_id)
    page.goto(f"{site.url}/runs/{run_id}")
    if status != "FAILURE":
        page.get_by_text("Run of", exact=False).first.wait_for()
        pages.screenshot(page, "run-missing-variable", whole=False)
        pytest.fail(f"run {run_id}, launched without {MISSING_VARIABLE}, ended {status}")
    page.get_by_text("Failure", exact=True).first.wait_for()
    messages = pages.failure_messages(page)
    pages.screenshot(page, "run-missing-variable", whole=False)

    first_lines = [m.strip().splitlines()[0] for m in messages if m.strip()]
    assert any(MISSING_VARIABLE in line for line in first_lines), (
        f"no failure line of run {run_id} names {MISSING_VARIABLE}: {first_lines}"
    )
