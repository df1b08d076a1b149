"""A gateway that echoes the token (raw, JSON-escaped, URL-encoded, HTML-escaped) in 401 bodies,
FBR validation errors and 500 pages, through real ``dg launch --job`` runs: afterwards no form
of the token is anywhere under DAGSTER_HOME, in any text column of the app database (nor, on
SQLite, in its files) or in the runs' output."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import MetaData, String, Text, select
from sqlalchemy.engine import make_url

from retry_pipelines.domain import deployment
from retry_pipelines.engine.fbr.seed import seed_invoices
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.hostile.test_secrets_by_value import forms as plain_forms
from retry_pipelines_tests.support.crash import dagster_env, run_to_completion
from retry_pipelines_tests.support.scripted import Answer, accepted, scripted_gateway

pytestmark = pytest.mark.reliability

TOKEN = 'fbr/Tk+7Qm"2V x#P9!sLw=8&q'
"""Printable ASCII that changes under every encoding below (``/ + " space # ! = &``)."""

CONFIG = """ops:
  submit_due_invoices:
    config:
      batch_size: 5
      max_in_flight: 2
      time_budget_seconds: 60
      base_delay_seconds: 0
      max_delay_seconds: 0
      cooldown_seconds: 0
      token_pause_seconds: 0
"""


def forms(secret: str) -> dict[str, str]:
    """The forms ``test_secrets_by_value`` checks, and the HTML ones a 500 page may carry."""
    return {
        **plain_forms(secret),
        "html": html.escape(secret),
        "html-json": html.escape(json.dumps(secret)[1:-1]),
        "html-html": html.escape(html.escape(secret)),
    }


FRAGMENTS = ("7Qm", "sLw")
"""Parts of ``TOKEN`` no encoding changes: found anywhere, some form of the token leaked (also
a token cut short, which matches none of the whole forms)."""

NEEDLES = {**forms(TOKEN), **{f"fragment {f}": f for f in FRAGMENTS}}


def _echo() -> str:
    return (
        f"raw {TOKEN} json {json.dumps(TOKEN)} url {quote(TOKEN, safe='')} form "
        f"{quote_plus(TOKEN)} path {quote(TOKEN)} html {html.escape(TOKEN)}"
    )


def _echoing(index: int, payload: dict) -> Answer:
    """Six answers in turn: accepted, FBR validation error, 500 page, 401 JSON, long 401 text
    with an echoing WWW-Authenticate header, accepted."""
    echo, kind = _echo(), index % 6
    if kind in (0, 5):
        return accepted(str(payload.get("invoiceNumber") or payload.get("n") or index))
    if kind == 1:
        error = f"Invalid token supplied: {echo}"
        body = {"validationResponse": {"statusCode": "01", "errorCode": "0052", "error": error}}
        return Answer(200, json.dumps(body), {"content-type": "application/json"})
    if kind == 2:
        page = f"<html><body><h1>500</h1><pre>{html.escape(echo)} | {echo}</pre></body></html>"
        return Answer(500, page, {"content-type": "text/html"})
    if kind == 3:
        body = {"error": "invalid_token", "detail": echo, "token": TOKEN}
        return Answer(401, json.dumps(body), {"content-type": "application/json"})
    header = f'Bearer error="invalid_token", error_description="{quote_plus(TOKEN)}"'
    # A long refusal: the raw token lies across the 300th byte, where error snippets are cut.
    body = f"{'401 Unauthorized: token not recognised. ' * 7}token was {TOKEN}; {echo}"
    return Answer(401, body, {"www-authenticate": header})


def _hits(data: bytes, where: str) -> list[str]:
    return [f"{where}: {name}" for name, form in NEEDLES.items() if form.encode() in data]


def _database_texts(db_url: str) -> dict[str, list[str]]:
    """Every value of every string column of every table (reflected: migrations' own too)."""
    engine = make_engine(db_url)
    texts: dict[str, list[str]] = {}
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, String | Text)]
                if not columns:
                    continue
                for row in conn.execute(select(*columns)):
                    for column, value in zip(columns, row, strict=True):
                        if value is not None:
                            texts.setdefault(f"{table.name}.{column.name}", []).append(str(value))
    finally:
        engine.dispose()
    return texts


def test_an_echoed_token_reaches_neither_dagster_home_nor_the_database_nor_the_output(
    db_url, tmp_path, record_property
):
    assert deployment.secret_format_problems("FBR_API_TOKEN", TOKEN) == []
    engine = make_engine(db_url)
    seed_invoices(engine, 24, seed=5, invalid_share=0.0)
    engine.dispose()
    config = tmp_path / "retry.yaml"
    config.write_text(CONFIG)

    outputs = []
    with scripted_gateway(_echoing) as (url, gateway):
        env = dagster_env(tmp_path, db_url, {"FBR_API_BASE_URL": url, "FBR_API_TOKEN": TOKEN})
        for _ in range(2):
            proc = run_to_completion("retry_failed_invoices", env, config)
            outputs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, _redacted(proc.stdout[-2000:] + proc.stderr[-2000:])
        statuses = [e.status for e in gateway.log]

    # The runs met every echoing answer.
    assert {200, 401, 500} <= set(statuses), statuses
    assert len(statuses) >= 12, statuses
    engine = make_engine(db_url)
    with engine.connect() as conn:
        a = tables.invoice_attempts
        attempts = conn.execute(select(a.c.http_status, a.c.error_type, a.c.error_code)).all()
    engine.dispose()
    assert any(row.http_status == 401 for row in attempts), attempts
    assert any(row.http_status == 500 for row in attempts), attempts
    assert any(row.error_code == "0052" for row in attempts), attempts

    # DAGSTER_HOME: every file, byte for byte.
    home = Path(env["DAGSTER_HOME"])
    files = [p for p in home.rglob("*") if p.is_file()]
    assert len(files) > 1, "the instance must have stored the runs"
    found, scanned = [], 0
    for path in files:
        data = path.read_bytes()
        scanned += len(data)
        found += _hits(data, str(path.relative_to(home)))
    record_property("dagster_home_files", len(files))
    record_property("dagster_home_bytes", scanned)

    # The app database: every string column, and on SQLite its files too.
    texts = _database_texts(db_url)
    assert texts.get("invoice_attempts.error_message"), "the errors must have been stored"
    for column, values in texts.items():
        found += _hits("\n".join(values).encode(), column)
    record_property("database_columns", len(texts))
    record_property("database_values", sum(len(v) for v in texts.values()))
    database = make_url(db_url).database if db_url.startswith("sqlite") else None
    if database:
        for path in Path(database).parent.glob(Path(database).name + "*"):
            found += _hits(path.read_bytes(), str(path))

    record_property("gateway_statuses", dict(sorted(Counter(statuses).items())))
    record_property("output_chars", sum(len(o) for o in outputs))
    for n, output in enumerate(outputs):
        found += _hits(output.encode(), f"output of run {n + 1}")
    assert found == []


def _redacted(text: str) -> str:
    """A failure message that does not itself print the token."""
    for form in sorted(forms(TOKEN).values(), key=len, reverse=True):
        text = text.replace(form, "<TOKEN>")
    return text
