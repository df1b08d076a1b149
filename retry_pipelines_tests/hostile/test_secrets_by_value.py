"""Secrets by value, everywhere: the known secret values, in every form a server or an exception
may echo them in, are scrubbed from what the project stores, logs, reports and alerts; a token or
secret that could not be sent as it is stops the run before anything is claimed, naming the
setting and never its value."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
from sqlalchemy import select

from retry_pipelines.alerts.payload import RUN_FAILURE, Alert, to_payload
from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import retry_failed_invoices
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain import deployment
from retry_pipelines.domain.scrub import REDACTED, redact, scrub, variants
from retry_pipelines.engine.pipeline import PipelineError, RunSummary
from retry_pipelines.gateways.tokens import StaticToken, TokenUnavailable
from retry_pipelines.store import tables
from retry_pipelines.store.clean import clean_text
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.scripted import Answer, scripted_gateway

TOKEN = 'fbr/Tk+7Qm"2V x#P9!sLw=8&q'
"""Printable ASCII with every character the encodings treat differently."""


def forms(secret: str) -> dict[str, str]:
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-twice": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "json-slash": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "repr": repr(secret)[1:-1],
        "url": quote(secret, safe=""),
        "url-path": quote(secret),
        "url-form": quote_plus(secret),
    }


FRAGMENTS = ("7Qm", "sLw")
"""Parts of ``TOKEN`` that no encoding changes: found anywhere, some form of the token leaked."""


def leaks(text: str, secret: str = TOKEN) -> list[str]:
    found = [name for name, form in forms(secret).items() if form in text]
    if secret == TOKEN:
        found += [f"fragment {f}" for f in FRAGMENTS if f in text]
    return found


# -- the scrubber ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", list(forms(TOKEN)))
def test_each_encoded_form_of_a_known_secret_is_redacted(form):
    echoed = forms(TOKEN)[form]
    text = f"server said: {echoed} (again: {echoed})"
    assert leaks(redact(text, [TOKEN])) == []
    assert redact(text, [TOKEN]).count(REDACTED) >= 2


def test_every_listed_variant_is_at_least_the_minimum_length_and_includes_the_raw_value():
    found = variants(TOKEN)
    assert TOKEN in found
    assert set(forms(TOKEN).values()) <= found


def test_a_bearer_token_is_taken_whole_even_with_hash_and_bang():
    for token in ("abcd#efgh!ijkl", "abcdefgh!ijkl#mn", "ab!cdefghij"):
        text = f"header was Authorization-ish: Bearer {token} end"
        cleaned = redact(text)
        assert token not in cleaned
        assert "!" not in cleaned.split("Bearer", 1)[1]
        assert "#" not in cleaned.split("Bearer", 1)[1]
        assert cleaned.endswith(" end")


def test_each_line_of_a_multi_line_secret_is_redacted_on_its_own():
    secret = "first-line-AAAA\nsecond-line-BBBB\r\n  third-CCCC  \nxy"
    text = "echo: second-line-BBBB; later third-CCCC; and first-line-AAAA; xy stays"
    cleaned = redact(text, [secret])
    for line in ("first-line-AAAA", "second-line-BBBB", "third-CCCC"):
        assert line not in cleaned
    assert "xy stays" in cleaned, "lines shorter than the minimum are not redacted"


def test_the_store_boundary_and_alerts_use_the_same_forms():
    text = f"401: {json.dumps({'token': TOKEN})} url={quote_plus(TOKEN)}"
    assert leaks(clean_text(text, limit=2000, secrets=[TOKEN], multiline=True)) == []
    assert leaks(scrub(text, [TOKEN]) or "") == []
    alert = Alert("a1", RUN_FAILURE, "run failed", text, datetime.now(UTC), {"error": text})
    assert leaks(json.dumps(to_payload(alert, [TOKEN]))) == []


# -- refusing an unusable credential --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("good-token-1234\nsecond-line-5678", "control character"),
        ("token-with-tab\tinside-1234", "control character"),
        ("tøken-ñon-ascii-1234", "non-ASCII"),
        ("  padded-token-1234  ", "whitespace"),
    ],
)
def test_an_unusable_secret_is_refused_naming_the_setting_never_the_value(value, rule):
    problems = deployment.secret_problems("FBR_API_TOKEN", value, production=False)
    message = "; ".join(problems)
    assert "FBR_API_TOKEN" in message
    assert rule in message
    for part in value.split():
        assert part not in message


def test_a_padded_default_token_is_refused_in_production():
    """The client would send ``demo-sandbox-token``: the check sees exactly what is sent."""
    problems = deployment.secret_problems("FBR_API_TOKEN", "demo-sandbox-token   ", production=True)
    assert problems
    assert "demo-sandbox-token" not in "; ".join(problems)
    assert deployment.secret_problems("FBR_API_TOKEN", "demo-sandbox-token", production=True)


def test_a_token_file_rotated_to_an_unusable_value_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "fbr.token"
    path.write_text("good-token-1234\n")
    token = StaticToken(file=path)
    assert token.get() == "good-token-1234"
    path.write_text("rotated-1234\nsecond-line-5678\n")
    with pytest.raises(TokenUnavailable) as caught:
        token.reload()
    assert str(path) in str(caught.value)
    assert "second-line-5678" not in str(caught.value)
    assert token.get() == "good-token-1234", "the last good token stays in use"


@pytest.mark.parametrize(
    ("field", "name"),
    [("client_id", "PAYPAL_CLIENT_ID"), ("client_secret", "PAYPAL_CLIENT_SECRET")],
)
def test_a_paypal_credential_with_a_newline_or_non_ascii_is_refused(field, name):
    for bad in ("pp-value-1234\nline-two-5678", "pp-välue-12345678"):
        settings = {"client_id": "pp-client-1234", "client_secret": "pp-secret-12345678"}
        settings[field] = bad
        resource = PaypalResource(base_url="http://127.0.0.1:9", **settings)
        with pytest.raises(deployment.UnsafeConfiguration) as caught:
            resource.client()
        assert name in str(caught.value)
        assert bad not in str(caught.value)
        assert "line-two-5678" not in str(caught.value)


def _rows(engine, table):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]


@pytest.mark.parametrize(
    ("token", "production"),
    [
        ("fbr-token-1234\nsecond-line-5678", False),
        ("fbr-tøken-12345678", False),
        ("  fbr-token-12345678  ", False),
        ("demo-sandbox-token   ", True),
    ],
)
def test_an_unusable_token_fails_the_run_before_anything_is_claimed(
    token, production, sqlite_url, sqlite_engine, monkeypatch, capfd
):
    monkeypatch.setenv(deployment.MODE_ENV, "production" if production else "development")
    insert_invoices(sqlite_engine, 3, now=datetime.now(UTC))
    before = _rows(sqlite_engine, tables.invoices)
    with scripted_gateway(lambda i, p: Answer(500, "should never be called")) as (url, gateway):
        result = retry_failed_invoices.execute_in_process(
            resources={
                "db": DatabaseResource(url=sqlite_url),
                "fbr": FbrResource(base_url=url.replace("http:", "https:"), token=token),
            },
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        assert gateway.log == [], "nothing may be sent"
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "FBR_API_TOKEN" in message
    assert "\n" not in message.strip(), "one line"
    for part in token.split():
        assert part not in message
    assert _rows(sqlite_engine, tables.invoices) == before, "nothing claimed"
    assert _rows(sqlite_engine, tables.invoice_attempts) == []
    captured = capfd.readouterr()
    for part in token.split():
        assert part not in captured.out + captured.err


# -- end to end: a gateway that echoes the token ---------------------------------------------------


def _echoing(index: int, payload: dict) -> Answer:
    echo = f"raw {TOKEN} json {json.dumps(TOKEN)} url {quote(TOKEN, safe='')} {quote_plus(TOKEN)}"
    echo += f" path {quote(TOKEN)} html {html.escape(TOKEN)}"
    if index < 3:  # FBR refuses the invoice, quoting the token in its error
        body = {"validationResponse": {"statusCode": "01", "errorCode": "0052", "error": echo}}
        return Answer(200, json.dumps(body), {"content-type": "application/json"})
    if index < 6:
        return Answer(500, f"upstream failed: {echo}", {"content-type": "text/plain"})
    return Answer(401, json.dumps({"error": "invalid_token", "detail": echo}))


def _database_text(engine) -> str:
    parts = []
    with engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts += [json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row]
    return "\n".join(parts)


def test_a_gateway_echoing_the_token_leaves_no_trace_of_it_anywhere(db_url, capfd):
    engine = make_engine(db_url)
    insert_invoices(engine, 12, now=datetime.now(UTC))
    instance = dg.DagsterInstance.ephemeral()
    config = {
        "max_in_flight": 1,
        "batch_size": 4,
        "time_budget_seconds": 30,
        "token_pause_seconds": 3600,
        "base_delay_seconds": 0,
        "max_delay_seconds": 0,
        "cooldown_seconds": 0,
    }
    with scripted_gateway(_echoing) as (url, gateway):
        result = retry_failed_invoices.execute_in_process(
            run_config={"ops": {"submit_due_invoices": {"config": config}}},
            resources={
                "db": DatabaseResource(url=db_url),
                "fbr": FbrResource(base_url=url, token=TOKEN),
            },
            instance=instance,
            raise_on_error=False,
        )
        statuses = [e.status for e in gateway.log]
    assert {200, 500, 401} <= set(statuses), statuses
    stored = _database_text(engine)
    with engine.connect() as conn:
        attempts = conn.execute(select(tables.invoice_attempts)).all()
        [state] = conn.execute(select(tables.gateway_state.c.pause_reason)).all()
    engine.dispose()
    assert len(attempts) >= 7
    assert state.pause_reason, "the 401s must have paused the gateway"
    assert REDACTED in stored
    assert leaks(stored) == []

    events = instance.all_logs(result.run_id)
    assert events
    logged = "\n".join(dg.serialize_value(e) for e in events)
    assert leaks(logged) == []
    # The 401s paused the gateway past the run's end: the run fails naming the setting, its
    # summary attached to the failure (checked in the event log above), never its output.
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "check FBR_API_TOKEN, then run resume_gateway with gateway: fbr" in message
    assert leaks(message) == []
    assert leaks(dg.serialize_value(failure.step_failure_data.user_failure_data)) == []
    captured = capfd.readouterr()
    assert leaks(captured.out + captured.err) == []


# -- what the op reports: summary, logs, metadata, failures ---------------------------------------


def _run_with(monkeypatch, sqlite_url, fake):
    """Run the job with the engine's ``retry_invoices`` replaced by ``fake``."""
    from retry_pipelines.defs.fbr import retry as fbr_retry

    monkeypatch.setattr(fbr_retry, "retry_invoices", fake)
    instance = dg.DagsterInstance.ephemeral()
    result = retry_failed_invoices.execute_in_process(
        resources={
            "db": DatabaseResource(url=sqlite_url),
            "fbr": FbrResource(base_url="http://127.0.0.1:9", token=TOKEN),
        },
        instance=instance,
        raise_on_error=False,
    )
    return result, "\n".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id))


def _echoing_summary(error: bool = False) -> RunSummary:
    echo = f"{TOKEN} / {json.dumps(TOKEN)} / {quote_plus(TOKEN)}"
    summary = RunSummary(gateway="fbr", owner="test")
    summary.alerts.append(f"alert: {echo}")
    summary.stopped_because = f"stopped: {echo}"
    summary.paused_until = datetime.now(UTC)
    summary.errors.append(f"error: {echo}" if error else "none")
    summary.by_error_type[f"kind {echo}"] += 1
    return summary


def test_the_run_summary_is_scrubbed_in_logs_metadata_and_output(sqlite_url, monkeypatch, capfd):
    """Even texts the engine did not scrub are scrubbed before Dagster sees them."""

    async def fake(engine, client, options, policy):
        return _echoing_summary()

    result, logged = _run_with(monkeypatch, sqlite_url, fake)
    assert result.success
    assert "alert: [REDACTED]" in logged
    assert leaks(logged) == []
    assert leaks(json.dumps(result.output_for_node("submit_due_invoices"))) == []
    captured = capfd.readouterr()
    assert leaks(captured.out + captured.err) == []


def test_a_failed_run_and_an_unexpected_error_quoting_the_token_are_scrubbed(
    sqlite_url, monkeypatch, capfd
):
    async def failed(engine, client, options, policy):
        raise PipelineError(f"fbr run failed: {json.dumps(TOKEN)}", _echoing_summary(error=True))

    async def broken(engine, client, options, policy):
        raise RuntimeError(f"header Authorization: Bearer {quote(TOKEN, safe='')} rejected")

    for fake in (failed, broken):
        result, logged = _run_with(monkeypatch, sqlite_url, fake)
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert REDACTED in failure.step_failure_data.error.message
        assert leaks(logged) == []
    captured = capfd.readouterr()
    assert leaks(captured.out + captured.err) == []


def test_a_secret_cut_short_by_a_bounded_reader_is_redacted_too():
    """A body or field cut at its bound may end in the start of the token; the cut marker lets the
    scrubber find it, in every encoded form."""
    from retry_pipelines.domain.scrub import redact
    from retry_pipelines.gateways.http import snippet, text

    secret = "fbr/Tk+7Qm2Vx#P9!sLw=8q"
    body = ("x" * 290 + "token " + secret).encode()
    cut = snippet(body)
    assert cut.endswith("…")
    assert secret[:3] in cut
    assert secret[:3] not in redact(cut, [secret])
    field = text("y" * 495 + secret)
    assert secret[:5] in field
    assert secret[:5] not in redact(field, [secret])
    assert redact("fbr…", [secret]) == "[REDACTED]…"
    assert redact("fbr is not cut", [secret]) == "fbr is not cut"
