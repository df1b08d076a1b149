"""Bad input, case by case: each gets a clear error naming what is wrong, and nothing is lost.

Invoice payloads go through the intake (``engine.intake.enqueue_invoices``) on a real database,
each beside a good invoice: the bad one is refused with its reason, the good one is queued, and
nothing else is stored. Configuration goes through the rules of ``domain.deployment`` and through
a real Dagster run, which fails before it claims anything. (Malformed gateway responses have their
own tables and fuzzing in ``unit/test_fbr_parse.py``, ``unit/test_paypal_parse.py`` and over real
HTTP in ``integration/test_fbr_engine.py``.)
"""

from __future__ import annotations

import copy
import random

import dagster as dg
import pytest
from sqlalchemy import func, select

from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.fbr.retry import retry_failed_invoices
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain import deployment
from retry_pipelines.domain.invoice_payload import InvalidInvoice, validate_invoice_payload
from retry_pipelines.engine.fbr.intake import enqueue_invoices
from retry_pipelines.engine.fbr.seed import invoice_payload, seed_invoices
from retry_pipelines.store import tables
from retry_pipelines.store.db import normalize_url


def good_payload(n: int = 1) -> dict:
    return invoice_payload(random.Random(n), n, seller_ntn="1234567", error=None)


def changed(path: str, value=..., *, delete: bool = False):
    """A good payload with the field at ``path`` (``a.b`` or ``items.0.c``) set or removed."""

    def make() -> dict:
        payload = good_payload()
        *parents, last = path.split(".")
        target = payload
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if delete:
            del target[last]
        else:
            target[last] = value
        return payload

    return make


def many_lines(count: int, description_chars: int = 40):
    def make() -> dict:
        payload = good_payload()
        line = payload["items"][0]
        line["productDescription"] = "x" * description_chars
        payload["items"] = [copy.deepcopy(line) for _ in range(count)]
        return payload

    return make


# (case, payload factory, the field the error must name, words the message must contain)
PAYLOAD_CASES = [
    ("missing seller NTN", changed("sellerNTNCNIC", delete=True), "sellerNTNCNIC", "7-digit"),
    ("seller NTN of 5 digits", changed("sellerNTNCNIC", "12345"), "sellerNTNCNIC", "'12345'"),
    ("seller NTN as a number", changed("sellerNTNCNIC", 1234567), "sellerNTNCNIC", "string"),
    ("negative quantity", changed("items.0.quantity", -3.0), "items[0].quantity", ">= 0"),
    ("negative total", changed("items.0.totalValues", -1.0), "items[0].totalValues", ">= 0"),
    ("zero quantity", changed("items.0.quantity", 0), "items[0].quantity", "greater than 0"),
    ("NaN amount", changed("items.0.totalValues", float("nan")), "payload", "NaN"),
    ("infinite amount", changed("items.0.discount", float("inf")), "payload", "infinity"),
    ("amount as text", changed("items.0.quantity", "12"), "items[0].quantity", "a number"),
    ("amount as boolean", changed("items.0.extraTax", True), "items[0].extraTax", "a number"),
    ("absurd amount", changed("items.0.totalValues", 1e20), "items[0].totalValues", "exceeds"),
    ("unknown province", changed("buyerProvince", "ATLANTIS"), "buyerProvince", "unknown"),
    ("province as a number", changed("sellerProvince", 7), "sellerProvince", "unknown"),
    (
        "oversized description",
        changed("items.0.productDescription", "d" * 10_000),
        "items[0].productDescription",
        "at most 500",
    ),
    ("too many lines", many_lines(1001), "items", "at most 1,000"),
    ("payload over 256 KB", many_lines(900, 400), "payload", "bytes"),
    ("no lines", changed("items", []), "items", "non-empty list"),
    ("items missing", changed("items", delete=True), "items", "non-empty list"),
    ("line not an object", changed("items", ["laptop"]), "items[0]", "an object"),
    ("HS code without dot", changed("items.0.hsCode", "01012100"), "items[0].hsCode", "0101.2100"),
    ("rate as words", changed("items.0.rate", "eighteen pct!"), "items[0].rate", "'18%'"),
    ("unknown invoice type", changed("invoiceType", "Credit Note"), "invoiceType", "Sale Invoice"),
    ("date in d/m/y", changed("invoiceDate", "22/11/2026"), "invoiceDate", "YYYY-MM-DD"),
    ("impossible date", changed("invoiceDate", "2026-02-30"), "invoiceDate", "YYYY-MM-DD"),
    (
        "registered buyer without NTN",
        changed("buyerNTNCNIC", delete=True),
        "buyerNTNCNIC",
        "7-digit",
    ),
    ("debit note without original", changed("invoiceType", "Debit Note"), "invoiceRefNo", "FBR"),
    ("empty seller name", changed("sellerBusinessName", "  "), "sellerBusinessName", "non-empty"),
    ("payload is a list", lambda: [good_payload()], "payload", "JSON object"),
]


@pytest.mark.parametrize(
    ("factory", "field", "words"),
    [pytest.param(f, field, w, id=case) for case, f, field, w in PAYLOAD_CASES],
)
def test_bad_payload_is_refused_with_its_reason_and_the_good_one_queued(
    engine, factory, field, words
):
    result = enqueue_invoices(engine, [("GOOD-1", good_payload(2)), ("BAD-1", factory())])
    assert list(result.queued) == ["GOOD-1"]
    [refusal] = result.refused
    assert refusal.reference == "BAD-1"
    assert any(p.field == field and words in p.message for p in refusal.problems), str(refusal)
    with engine.connect() as conn:
        stored = conn.execute(select(tables.invoices.c.reference)).scalars().all()
    assert stored == ["GOOD-1"]


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        pytest.param("", "non-empty", id="empty reference"),
        pytest.param("R" * 65, "at most 64", id="reference too long"),
        pytest.param("INV\n1", "printable", id="reference with a newline"),
        pytest.param(42, "non-empty text", id="reference as a number"),
    ],
)
def test_bad_reference_is_refused(engine, reference, words):
    result = enqueue_invoices(engine, [(reference, good_payload())])
    assert not result.queued
    [refusal] = result.refused
    assert any(p.field == "reference" and words in p.message for p in refusal.problems)


def test_duplicate_references_queue_once(engine):
    first = enqueue_invoices(engine, [("DUP-1", good_payload(1)), ("DUP-1", good_payload(2))])
    assert list(first.queued) == ["DUP-1"]
    assert "appears twice" in str(first.refused[0])
    again = enqueue_invoices(engine, [("DUP-1", good_payload(3)), ("NEW-1", good_payload(4))])
    assert list(again.queued) == ["NEW-1"]
    assert "already queued" in str(again.refused[0])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.invoices)).scalar_one() == 2


def test_every_problem_is_reported_at_once():
    payload = good_payload()
    payload["sellerNTNCNIC"] = "1"
    payload["items"][0]["quantity"] = -1
    payload["buyerProvince"] = "NOWHERE"
    with pytest.raises(InvalidInvoice) as caught:
        validate_invoice_payload(payload)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"sellerNTNCNIC", "items[0].quantity", "buyerProvince"}


def test_the_seeders_payloads_pass_the_shape_checks():
    """FBR's own data errors (unknown HS code, sale-type mismatch) are FBR's call, not ours."""
    rng = random.Random(5)
    for error in (None, "unknown_hs_code", "hs_sale_type_mismatch", "unauthorised_seller"):
        validate_invoice_payload(invoice_payload(rng, 1, seller_ntn="1234567", error=error))


# (case, check, expected words); production mode unless the case says otherwise
CONFIG_CASES = [
    ("plain http gateway", lambda: _url("http://gw.fbr.gov.pk", True), "must use https"),
    ("gateway URL with password", lambda: _url("https://u:p@gw.example", True), "credentials"),
    ("gateway URL not absolute", lambda: _url("gw.fbr.gov.pk/di", True), "absolute"),
    ("gateway URL with bad port", lambda: _url("https://gw.example:99999", True), "not a valid"),
    ("empty gateway URL", lambda: _url("", False), "empty"),
    ("demo token", lambda: _secret("demo-sandbox-token"), "built-in default"),
    ("sandbox client secret", lambda: _secret("sandbox-client-secret"), "built-in default"),
    ("placeholder secret", lambda: _secret("ChangeMe"), "placeholder"),
    ("short secret", lambda: _secret("k3Y!x9"), "too short"),
    ("repetitive secret", lambda: _secret("abababababababababab"), "repetitive"),
    ("unknown mode", lambda: deployment.is_production("prod"), "RETRY_PIPELINES_ENV"),
    ("unsupported database", lambda: normalize_url("mysql://db/app"), "unsupported database"),
]


def _url(url: str, production: bool) -> None:
    problems = deployment.gateway_url_problems("FBR_API_BASE_URL", url, production=production)
    deployment.require(problems)


def _secret(value: str) -> None:
    deployment.require(deployment.secret_problems("PAYPAL_CLIENT_SECRET", value, production=True))


@pytest.mark.parametrize(
    ("check", "words"), [pytest.param(c, w, id=case) for case, c, w in CONFIG_CASES]
)
def test_bad_configuration_is_refused_with_a_specific_error(check, words):
    with pytest.raises(ValueError, match=words) as caught:
        check()
    for secret in ("demo-sandbox-token", "sandbox-client-secret", "ChangeMe", "k3Y!x9", "u:p"):
        assert secret not in str(caught.value), "a refusal must not echo the secret"


def test_the_sandbox_defaults_are_known_defaults():
    from retry_pipelines.demo import SANDBOX_TOKEN
    from retry_pipelines.sandbox.__main__ import DEFAULT_TOKEN
    from retry_pipelines.sandbox.paypal import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    for value in (SANDBOX_TOKEN, DEFAULT_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET):
        assert value in deployment.KNOWN_DEFAULT_SECRETS


def test_development_mode_allows_the_local_sandbox():
    assert deployment.gateway_url_problems("U", "http://127.0.0.1:8080", production=False) == []
    assert deployment.secret_problems("T", "demo-sandbox-token", production=False) == []


@pytest.mark.parametrize(
    ("url", "token", "words"),
    [
        ("http://gw.fbr.gov.pk", "kR8#vQ2!mZ7$wL4@pN1^", "must use https"),
        ("https://gw.fbr.gov.pk", "demo-sandbox-token", "built-in default"),
    ],
)
def test_a_production_run_with_unsafe_settings_fails_before_claiming(
    sqlite_url, sqlite_engine, monkeypatch, url, token, words
):
    monkeypatch.setenv(deployment.MODE_ENV, "production")
    seed_invoices(sqlite_engine, 5, seed=3, invalid_share=0.0)
    result = retry_failed_invoices.execute_in_process(
        resources={
            "db": DatabaseResource(url=sqlite_url),
            "fbr": FbrResource(base_url=url, token=token),
        },
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.to_string()
    assert words in message
    assert token not in message
    t = tables.invoices
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(t.c.status, t.c.attempt_count)).all()
    assert rows == [("pending", 1)] * 5, "nothing may be claimed or spent"


def test_enqueue_command_queues_good_invoices_and_lists_each_refusal(sqlite_url, tmp_path, capsys):
    import json

    from retry_pipelines.cli import main

    bad = good_payload(2)
    bad["items"][0]["quantity"] = -1
    path = tmp_path / "invoices.json"
    entries = [{"reference": "CLI-1", "payload": good_payload(1)}]
    entries.append({"reference": "CLI-2", "payload": bad})
    path.write_text(json.dumps(entries))
    assert main(["--database-url", sqlite_url, "enqueue", str(path)]) == 1
    out = capsys.readouterr().out
    assert "queued 1, refused 1" in out
    assert "refused CLI-2: items[0].quantity: must be a finite amount >= 0, got -1" in out

    path.write_text("{not json")
    assert main(["--database-url", sqlite_url, "enqueue", str(path)]) == 2
    assert "cannot read" in capsys.readouterr().err
    path.write_text('{"reference": "CLI-3"}')
    assert main(["--database-url", sqlite_url, "enqueue", str(path)]) == 2
    assert "nothing was queued" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "secret", "words"),
    [
        ("http://alerts.example/hook", "h7Kq2Lm9Xw4Rz8Tn", "URL must use https in production"),
        ("https://alerts.example/hook", "changeme", "built-in default or placeholder"),
    ],
)
def test_production_alert_webhook_with_unsafe_settings_is_refused(monkeypatch, url, secret, words):
    from retry_pipelines.defs.alerts.resources import SECRET_ENV, URL_ENV, AlertWebhookResource
    from retry_pipelines.defs.alerts.sensors import asset_check_alert_sensor

    monkeypatch.setenv(deployment.MODE_ENV, "production")
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.setenv(SECRET_ENV, secret)
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(
            instance=instance, resources={"alert_webhook": AlertWebhookResource()}
        ) as context,
    ):
        result = asset_check_alert_sensor(context)
    assert result.skip_message.startswith("alert webhook refused: ")
    assert words in result.skip_message
    assert secret not in result.skip_message


def test_a_production_paypal_run_with_a_default_secret_fails_before_claiming(
    sqlite_url, sqlite_engine, monkeypatch
):
    from datetime import UTC, datetime

    from retry_pipelines.defs.paypal.resources import PaypalResource
    from retry_pipelines.defs.paypal.retry import retry_payout_batches
    from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch

    monkeypatch.setenv(deployment.MODE_ENV, "production")
    items = [PayoutItem("p@example.com", "5.00", "USD", "p1")]
    record_batch(sqlite_engine, cycle_id="prod-1", items=items, now=datetime.now(UTC))
    paypal = PaypalResource(
        base_url="https://api-m.paypal.example",
        client_id="live-client",
        client_secret="sandbox-client-secret",
    )
    result = retry_payout_batches.execute_in_process(
        resources={"db": DatabaseResource(url=sqlite_url), "paypal": paypal},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.to_string()
    assert "PAYPAL_CLIENT_SECRET is a built-in default or placeholder value" in message
    assert "sandbox-client-secret" not in message
    b = tables.payout_batches
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(b.c.status, b.c.attempt_count)).all() == [("pending", 0)]


def test_a_weak_token_in_a_secret_file_is_refused_in_production(tmp_path, monkeypatch):
    monkeypatch.setenv(deployment.MODE_ENV, "production")
    token_file = tmp_path / "fbr-token"
    token_file.write_text("demo-sandbox-token\n")
    resource = FbrResource(base_url="https://gw.fbr.gov.pk", token_file=str(token_file))
    with pytest.raises(deployment.UnsafeConfiguration, match="built-in default") as caught:
        resource.client()
    assert str(token_file) in str(caught.value)
    assert "demo-sandbox-token" not in str(caught.value)
    token_file.write_text("kR8#vQ2!mZ7$wL4@pN1^\n")
    resource.client()  # a strong token passes
