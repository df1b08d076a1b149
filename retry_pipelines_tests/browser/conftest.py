"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and the site it looks
at (the demo's data served by ``dagster dev``, ``site.py``).

Run them with ``make test-browser`` (``.ci/run`` does, after installing Chromium with
``apt-get install -y chromium``). Chromium is the system's ``/usr/bin/chromium`` (or the binary
``RETRY_PIPELINES_TEST_CHROMIUM`` names); Playwright's own browser download is never used.
Without Chromium or the ``playwright`` package the tests are skipped with a message saying how
to run them; CI counts a skipped browser test as a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.browser.pages import UI_TIMEOUT_MS
from retry_pipelines_tests.browser.site import (
    RESULTS,
    Site,
    SiteError,
    free_port,
    prepare_home,
    put_demo_data,
    site_environment,
    start_dagster_dev,
    stop,
    wait_until_served,
)

CHROMIUM_ENV = "RETRY_PIPELINES_TEST_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
HOW_TO_RUN = (
    "install Debian's Chromium (`apt-get install -y chromium`; never `playwright install`) or "
    f"set {CHROMIUM_ENV} to a Chromium binary, install the dev extra (`make install`), then run "
    "`make test-browser`"
)
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium binary, or a skip saying how to run the browser tests."""
    path = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"no Chromium at {path}: {HOW_TO_RUN}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"the playwright package is not installed: {HOW_TO_RUN}")
    return path


@pytest.fixture(scope="session")
def results_dir() -> Path:
    """``.ci-results/browser/``, emptied of a previous session's screenshots and logs."""
    if RESULTS.exists():
        shutil.rmtree(RESULTS)
    RESULTS.mkdir(parents=True)
    return RESULTS


@pytest.fixture(scope="module")
def site(chromium_path, results_dir, tmp_path_factory):
    """The demo's data in a temporary Dagster home and SQLite app database, served by
    ``dagster dev`` on a free port without ``FBR_API_TOKEN``; stopped afterwards."""
    tmp = tmp_path_factory.mktemp("site")
    home = tmp / "dagster_home"
    prepare_home(home)
    database_url = f"sqlite:///{tmp / 'app.db'}"
    try:
        put_demo_data(home, database_url, results_dir / "demo.log")
    except SiteError as exc:
        pytest.fail(str(exc))
    port = free_port()
    log = results_dir / "dagster-dev.log"
    proc = start_dagster_dev(site_environment(home, database_url), port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_served(url, proc, log)
        except SiteError as exc:
            pytest.fail(str(exc))
        yield Site(url=url, database_url=database_url, dagster_home=home)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def site_engine(site):
    """The site's app database, to compare the pages with."""
    engine = make_engine(site.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, args=["--no-sandbox"], headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no launchpad state kept from another test) and its page."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()
