"""The FBR sandbox over real HTTP: FBR's answers, the gateway's faults, and the processing record.

The retry engine is judged against this server (no duplicate fiscal invoices under faults), so
its wire behaviour is pinned here: every response shape, every fault kind and whether it
processed the invoice, reproducible fault sequences, and restarts on the same port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
from datetime import UTC, datetime

import httpx
import pytest

from retry_pipelines.domain.fbr_reference import (
    GOODS_STANDARD_RATE,
    HS_CODES,
    SERVICES,
    UNKNOWN_HS_CODE,
)
from retry_pipelines.sandbox.__main__ import add_arguments, config_from_args
from retry_pipelines.sandbox.faults import FAULT_KINDS, FaultPlan
from retry_pipelines.sandbox.fbr import (
    MISSING_ITEMS_CODE,
    POST_PATHS,
    VALIDATE_PATHS,
    FbrSandboxConfig,
    create_fbr_app,
    fingerprint,
)
from retry_pipelines.sandbox.fbr.dialect import THROTTLE_VARIANTS, alnum_tail, next_access_time
from retry_pipelines.sandbox.server import SandboxProcess, ThreadedServer

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POST, VALIDATE = POST_PATHS[1], VALIDATE_PATHS[1]
NTN = "1234567"
NUMBER = re.compile(r"^\d{7}(\d{6})?DI(\d{13,}|[A-Z]{6}\d{6})$")
"""Both forms: ``{NTN}DI{epoch-ms}`` and ``{NTN}DI`` + six capitals and six digits."""
HORSES = HS_CODES["0101.2100"]
assert GOODS_STANDARD_RATE in HORSES.sale_types


def item(**changes):
    base = {
        "hsCode": HORSES.code,
        "productDescription": HORSES.description,
        "rate": HORSES.rate,
        "uoM": HORSES.uom,
        "quantity": 1.0,
        "totalValues": 0.0,
        "valueSalesExcludingST": 1000.0,
        "fixedNotifiedValueOrRetailPrice": 0.0,
        "salesTaxApplicable": 180.0,
        "salesTaxWithheldAtSource": 0.0,
        "extraTax": "",
        "furtherTax": 0.0,
        "sroScheduleNo": "",
        "fedPayable": 0.0,
        "discount": 0.0,
        "saleType": GOODS_STANDARD_RATE,
        "sroItemSerialNo": "",
    }
    return base | changes


def invoice(**changes):
    base = {
        "invoiceType": "Sale Invoice",
        "invoiceDate": "2025-05-13",
        "sellerNTNCNIC": NTN,
        "sellerBusinessName": "Company 8",
        "sellerProvince": "SINDH",
        "sellerAddress": "Karachi",
        "buyerNTNCNIC": "7654321",
        "buyerBusinessName": "Buyer Ltd",
        "buyerProvince": "PUNJAB",
        "buyerAddress": "Lahore",
        "buyerRegistrationType": "Registered",
        "invoiceRefNo": "",
        "scenarioId": "SN001",
        "items": [item()],
    }
    return base | changes


@pytest.fixture
def serve():
    """Start a sandbox (config overrides as keywords): returns (server, client)."""
    with contextlib.ExitStack() as stack:

        def start(**config):
            config.setdefault("token", TOKEN)
            app = create_fbr_app(FbrSandboxConfig(**config))
            server = stack.enter_context(ThreadedServer(app))
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=10.0))
            return server, client

        yield start


@pytest.fixture(scope="module")
def shared_server():
    with ThreadedServer(create_fbr_app(FbrSandboxConfig(token=TOKEN))) as server:
        yield server


@pytest.fixture
def client(shared_server):
    """A client of the module's default sandbox, reset for this test."""
    with httpx.Client(base_url=shared_server.url, timeout=10.0) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client


def stats(client):
    return client.get("/_sandbox/stats").json()


def records(client):
    return client.get("/_sandbox/requests").json()


def settled_record(client, seq):
    """The record of request ``seq`` once it is no longer hanging (polls, bounded)."""
    for _ in range(300):
        found = [r for r in records(client) if r["seq"] == seq]
        if found and found[0]["status"] != "pending":
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"request {seq} still pending: {records(client)}")


def pin(client, **pins):
    """Pin response shapes through ``/_sandbox/dialect`` (None unpins)."""
    response = client.post("/_sandbox/dialect", json=pins)
    assert response.status_code == 200, response.text
    return response.json()


def assert_header_rejection(response, code):
    assert response.status_code == 200
    body = response.json()
    assert "invoiceNumber" not in body
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", body["dated"])
    vr = body["validationResponse"]
    assert vr["statusCode"] == "01"
    assert vr["status"] == "Invalid"
    assert vr["errorCode"] == code
    assert vr["error"]
    assert vr["invoiceStatuses"] is None


# --- FBR's answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", POST_PATHS)
def test_valid_invoice_gets_an_fbr_number_and_item_numbers(client, path):
    payload = invoice(items=[item(), item(quantity=2, valueSalesExcludingST="2000.00")])
    response = client.post(path, json=payload, headers=AUTH)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    number = body["invoiceNumber"]
    assert NUMBER.match(number)
    assert number.startswith(f"{NTN}DI")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", body["dated"])
    vr = body["validationResponse"]
    assert (vr["statusCode"], vr["status"], vr.get("errorCode", "")) == ("00", "Valid", "")
    assert [s["itemSNo"] for s in vr["invoiceStatuses"]] == ["1", "2"]
    assert [s["invoiceNo"] for s in vr["invoiceStatuses"]] == [f"{number}-1", f"{number}-2"]
    assert {(s["statusCode"], s["status"]) for s in vr["invoiceStatuses"]} == {("00", "Valid")}

    [record] = records(client)
    assert record["outcome"] == "processed"
    assert record["status"] == 200
    assert record["path"] == path
    assert record["invoice_number"] == number
    assert record["fingerprint"] == fingerprint(payload)
    assert record["fault"] is None
    assert stats(client)["processed"] == 1


@pytest.mark.parametrize(("form", "length"), [("digits", 28), ("alnum", 27)])
def test_cnic_seller_gets_a_number_of_either_form(client, form, length):
    pin(client, number=form)
    cnic = "4210112345671"
    body = client.post(POST, json=invoice(sellerNTNCNIC=cnic), headers=AUTH).json()
    assert NUMBER.match(body["invoiceNumber"])
    assert body["invoiceNumber"].startswith(f"{cnic}DI")
    assert len(body["invoiceNumber"]) == length


def post_numbers(client, count):
    return [
        client.post(POST, json=invoice(invoiceRefNo=str(i)), headers=AUTH).json()["invoiceNumber"]
        for i in range(count)
    ]


def test_fbr_numbers_are_unique_mix_both_forms_and_the_mix_replays_after_reset(client):
    numbers = post_numbers(client, 24)
    assert len(set(numbers)) == 24
    tails = [n.removeprefix(f"{NTN}DI") for n in numbers]
    digits = [t for t in tails if t.isdigit()]
    assert len(digits) == 12, "the two forms take turns"
    assert [int(t) for t in digits] == sorted({int(t) for t in digits})
    assert all(re.fullmatch(r"[A-Z]{6}[0-9]{6}", t) for t in tails if not t.isdigit())
    forms = [t.isdigit() for t in tails]
    client.post("/_sandbox/reset").raise_for_status()
    again = post_numbers(client, 24)
    assert [n.removeprefix(f"{NTN}DI").isdigit() for n in again] == forms
    assert not set(again) & set(numbers), "numbers stay unique across resets"


def test_the_alphanumeric_tail_is_one_to_one_in_the_milliseconds():
    start = 1_762_886_836_000
    tails = [alnum_tail(ms) for ms in range(start, start + 20_000)]
    assert len(set(tails)) == len(tails)
    assert all(re.fullmatch(r"[A-Z]{6}[0-9]{6}", t) for t in tails)
    assert len(f"5419764DI{tails[0]}") == len("5419764DIZLLXVR750188")


@pytest.mark.parametrize("path", [POST, VALIDATE])
def test_success_bodies_come_in_the_observed_and_the_spec_shape(client, path):
    pin(client, success="observed")
    observed = client.post(path, json=invoice(), headers=AUTH).json()["validationResponse"]
    assert set(observed) == {"statusCode", "status", "invoiceStatuses"}
    assert set(observed["invoiceStatuses"][0]) == {"itemSNo", "statusCode", "status", "invoiceNo"}
    pin(client, success="spec")
    spec = client.post(path, json=invoice(), headers=AUTH).json()["validationResponse"]
    assert (set(spec) - set(observed), spec["error"]) == ({"error"}, "")
    item_keys = {"itemSNo", "statusCode", "status", "invoiceNo", "errorCode", "error"}
    assert set(spec["invoiceStatuses"][0]) == item_keys
    assert [r["shape"] for r in records(client)] == ["observed", "spec"]


def test_most_success_bodies_omit_the_error_keys(client):
    for _ in range(8):
        client.post(VALIDATE, json=invoice(), headers=AUTH)
    shapes = [r["shape"] for r in records(client)]
    assert sorted(shapes) == ["observed"] * 6 + ["spec"] * 2


def test_the_dialect_control_endpoint(client):
    known = client.get("/_sandbox/dialect").json()
    assert known["pins"] == {}
    assert set(known["variants"]["rate_limit"]) == set(THROTTLE_VARIANTS)
    assert set(known["variants"]) == {"rate_limit", "success", "number"}
    assert pin(client, rate_limit="flat_900804")["pins"] == {"rate_limit": "flat_900804"}
    assert pin(client, rate_limit=None)["pins"] == {}
    for bad in ({"rate_limit": "fault_1"}, {"nonsense": None}, {"number": 3}, [1]):
        assert client.post("/_sandbox/dialect", json=bad).status_code == 400
    pin(client, number="alnum")
    client.post("/_sandbox/reset").raise_for_status()
    assert client.get("/_sandbox/dialect").json()["pins"] == {}, "a reset drops the pins"


@pytest.mark.parametrize("path", VALIDATE_PATHS)
def test_validate_never_issues_a_number(client, path):
    response = client.post(path, json=invoice(), headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert "invoiceNumber" not in body
    vr = body["validationResponse"]
    assert (vr["statusCode"], vr["status"]) == ("00", "Valid")
    assert [(s["itemSNo"], s["statusCode"], s["invoiceNo"]) for s in vr["invoiceStatuses"]] == [
        ("1", "00", None)
    ]
    current = stats(client)
    assert current["processed"] == 0
    assert current["by_outcome"] == {"validated": 1}
    assert records(client)[0]["invoice_number"] is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param({"sellerNTNCNIC": "12345"}, "0401", id="ntn-too-short"),
        pytest.param({"sellerNTNCNIC": "123456789"}, "0401", id="ntn-9-digits"),
        pytest.param({"sellerNTNCNIC": "1234567-8"}, "0401", id="ntn-with-dash"),
        pytest.param({"sellerNTNCNIC": 1234567}, "0401", id="ntn-not-a-string"),
        pytest.param({"invoiceType": "Credit Note"}, "0003", id="invoice-type"),
        pytest.param({"invoiceDate": "13-05-2025"}, "0005", id="date-order"),
        pytest.param({"invoiceDate": "2025-02-30"}, "0005", id="date-not-real"),
        pytest.param({"invoiceDate": "20250513"}, "0005", id="date-compact"),
        pytest.param({"invoiceDate": "2025-05-13T10:00:00"}, "0005", id="date-with-time"),
        pytest.param({"sellerProvince": "NARNIA"}, "0073", id="seller-province"),
        pytest.param({"buyerProvince": None}, "0074", id="buyer-province"),
        pytest.param({"items": []}, MISSING_ITEMS_CODE, id="no-items"),
        pytest.param({"items": None}, MISSING_ITEMS_CODE, id="items-null"),
    ],
)
@pytest.mark.parametrize("path", [POST, VALIDATE])
def test_header_level_rejections(client, path, changes, code):
    response = client.post(path, json=invoice(**changes), headers=AUTH)

    assert_header_rejection(response, code)
    [record] = records(client)
    assert (record["outcome"], record["error_code"], record["invoice_number"]) == (
        "rejected",
        code,
        None,
    )
    assert stats(client)["processed"] == 0


def test_missing_items_uses_a_documented_header_code():
    assert MISSING_ITEMS_CODE == "0009"


def test_token_bound_to_other_sellers_rejects_with_0401(serve):
    _, client = serve(authorized_ntns=frozenset({"7000007"}))
    assert_header_rejection(client.post(POST, json=invoice(), headers=AUTH), "0401")
    ok = client.post(POST, json=invoice(sellerNTNCNIC="7000007"), headers=AUTH).json()
    assert ok["invoiceNumber"].startswith("7000007DI")


def test_province_names_are_case_insensitive(client):
    body = client.post(POST, json=invoice(sellerProvince="Sindh"), headers=AUTH).json()
    assert NUMBER.match(body["invoiceNumber"])


@pytest.mark.parametrize(
    ("bad_item", "code"),
    [
        pytest.param(item(hsCode=UNKNOWN_HS_CODE), "0019", id="unknown-hs-code"),
        pytest.param(item(hsCode=None), "0019", id="no-hs-code"),
        pytest.param(item(saleType=SERVICES), "0052", id="sale-type-mismatch"),
        pytest.param(item(quantity="many"), "0021", id="quantity-not-numeric"),
        pytest.param(item(quantity=-1), "0021", id="quantity-negative"),
        pytest.param(item(valueSalesExcludingST="-5.00"), "0021", id="value-negative"),
        pytest.param(item(salesTaxApplicable=True), "0021", id="value-boolean"),
    ],
)
@pytest.mark.parametrize("path", [POST, VALIDATE])
def test_item_level_rejections(client, path, bad_item, code):
    response = client.post(path, json=invoice(items=[item(), bad_item]), headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert "invoiceNumber" not in body
    vr = body["validationResponse"]
    assert (vr["statusCode"], vr["status"]) == ("00", "invalid")
    first, second = vr["invoiceStatuses"]
    assert (first["itemSNo"], first["statusCode"], first["invoiceNo"]) == ("1", "00", None)
    assert (second["itemSNo"], second["statusCode"], second["errorCode"]) == ("2", "01", code)
    assert second["status"] == "Invalid"
    assert second["invoiceNo"] is None
    assert second["error"]
    assert records(client)[0]["outcome"] == "rejected"
    assert stats(client)["processed"] == 0


@pytest.mark.parametrize(
    ("content", "fingerprinted"),
    [(b"{not json", False), (b"[1, 2]", True), (b"", False), (b'"text"', True)],
)
def test_a_body_that_is_not_a_json_object_gets_400_and_is_not_processed(
    client, content, fingerprinted
):
    response = client.post(
        POST, content=content, headers=AUTH | {"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["status"] == 400
    [record] = records(client)
    assert (record["outcome"], record["status"]) == ("rejected", 400)
    assert (record["fingerprint"] is not None) == fingerprinted
    assert stats(client)["processed"] == 0


# --- the gateway's credentials check -----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        ({}, 900902, "Missing Credentials"),
        ({"Authorization": f"Basic {TOKEN}"}, 900902, "Missing Credentials"),
        ({"Authorization": "Bearer"}, 900902, "Missing Credentials"),
        ({"Authorization": "Bearer wrong-token"}, 900901, "Invalid Credentials"),
    ],
)
def test_credentials_are_checked_before_anything_else(serve, headers, code, message):
    _, client = serve(faults=FaultPlan(faults={"http_500": 1.0}))
    response = client.post(POST, json=invoice(sellerNTNCNIC="bad"), headers=headers)

    assert response.status_code == 401
    fault = response.json()["fault"]
    assert (fault["code"], fault["message"]) == (code, message)
    assert fault["description"]
    [record] = records(client)
    assert (record["outcome"], record["fault"], record["status"]) == ("unauthorized", None, 401)
    assert stats(client)["processed"] == 0


def test_bearer_scheme_is_case_insensitive(client):
    response = client.post(POST, json=invoice(), headers={"Authorization": f"bearer {TOKEN}"})
    assert NUMBER.match(response.json()["invoiceNumber"])


def test_reload_token_after_refuses_one_request_then_accepts_the_same_token(serve):
    _, client = serve(reload_token_after=2)
    statuses = [
        client.post(POST, json=invoice(invoiceRefNo=str(i)), headers=AUTH).status_code
        for i in range(6)
    ]
    assert statuses == [200, 200, 401, 200, 200, 401]
    refused = [r for r in records(client) if r["status"] == 401]
    assert {(r["fault"], r["outcome"]) for r in refused} == {("token_reload", "fault")}
    assert stats(client)["processed"] == 4


# --- faults ------------------------------------------------------------------------------------


def only(kind, **config):
    return {"faults": FaultPlan(faults={kind: 1.0}), **config}


def assert_one_record(client, *, fault, status, outcome, processed):
    [record] = records(client)
    assert (record["fault"], record["status"], record["outcome"]) == (fault, status, outcome)
    assert (record["invoice_number"] is not None) == processed
    current = stats(client)
    assert current["processed"] == int(processed)
    assert current["by_fault"] == {fault: 1}
    return record


def test_fault_http_500(serve):
    _, client = serve(**only("http_500"))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {"error": "Contact Administrator"}
    assert_one_record(client, fault="http_500", status=500, outcome="fault", processed=False)


def test_fault_html_502(serve):
    _, client = serve(**only("html_502"))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert "Bad Gateway" in response.text
    assert_one_record(client, fault="html_502", status=502, outcome="fault", processed=False)


def test_fault_rate_limit(serve):
    _, client = serve(**only("rate_limit", retry_after_seconds=3))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    fault = response.json()["fault"]
    assert (fault["code"], fault["message"]) == (900800, "Message throttled out")
    record = assert_one_record(
        client, fault="rate_limit", status=429, outcome="fault", processed=False
    )
    assert record["retry_after"] == 3
    assert record["shape"] == "fault_900800", "the first throttle episode carries Retry-After"


THROTTLES = {
    # variant: (status, the body's code, Retry-After sent)
    "fault_900800": (429, 900800, True),
    "fault_900802": (429, 900802, False),
    "flat_900804": (429, "900804", False),
    "hard_limit_900801": (503, 900801, False),
}


def throttle_code(body):
    return body["fault"]["code"] if "fault" in body else body["code"]


@pytest.mark.parametrize("variant", THROTTLES)
def test_each_throttle_variant_can_be_pinned(serve, variant):
    _, client = serve(**only("rate_limit", retry_after_seconds=3))
    pin(client, rate_limit=variant)
    response = client.post(POST, json=invoice(), headers=AUTH)
    status, code, has_retry_after = THROTTLES[variant]
    assert (response.status_code, throttle_code(response.json())) == (status, code)
    assert ("retry-after" in response.headers) is has_retry_after
    [record] = records(client)
    assert (record["shape"], record["status"], record["outcome"]) == (variant, status, "fault")
    assert record["retry_after"] == (3 if has_retry_after else None)
    assert stats(client)["processed"] == 0


def test_next_access_time_is_wso2s_format_a_few_seconds_ahead():
    moment = datetime(2026, 4, 16, 23, 59, 58, 300_000, tzinfo=UTC)
    assert next_access_time(moment, 1) == "2026-Apr-17 00:00:00+0000 UTC"
    assert next_access_time(moment, 0) == "2026-Apr-17 00:00:00+0000 UTC"
    assert next_access_time(moment.replace(microsecond=0), 3) == "2026-Apr-17 00:00:01+0000 UTC"


def test_a_throttle_episode_keeps_its_variant_and_episodes_rotate_through_all(serve):
    _, client = serve(faults=FaultPlan(faults={"http_500": 1.0}, seed=4))
    for _ in range(4):  # four episodes: three throttles in a row, then a plain request
        client.post("/_sandbox/outage", json={"fault": "rate_limit", "requests": 3})
        for _ in range(4):
            client.post(POST, json=invoice(), headers=AUTH)
    shapes = [r["shape"] for r in records(client)]
    episodes = [shapes[i : i + 3] for i in range(0, 16, 4)]
    assert all(len(set(e)) == 1 for e in episodes), episodes
    assert episodes[0][0] == "fault_900800"
    assert {e[0] for e in episodes} == set(THROTTLES)
    assert shapes[3::4] == [None] * 4
    client.post("/_sandbox/reset")
    client.post("/_sandbox/outage", json={"fault": "rate_limit", "requests": 1})
    client.post(POST, json=invoice(), headers=AUTH)
    assert records(client)[0]["shape"] == "fault_900800", "a reset replays the rotation"


def test_fault_forbidden_is_the_gateways_403_900908(serve):
    _, client = serve(**only("forbidden"))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 403
    fault = response.json()["fault"]
    assert (fault["code"], fault["message"]) == (900908, "Resource forbidden ")
    assert "/di_data/v1" in fault["description"]
    assert_one_record(client, fault="forbidden", status=403, outcome="fault", processed=False)


def test_fault_401_with_the_right_token(serve):
    _, client = serve(**only("fault_401"))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 401
    assert response.json()["fault"]["code"] == 900901
    assert_one_record(client, fault="fault_401", status=401, outcome="fault", processed=False)


def test_fault_empty_body(serve):
    _, client = serve(**only("empty_body"))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 200
    assert response.content == b""
    assert_one_record(client, fault="empty_body", status=200, outcome="fault", processed=False)


def test_fault_malformed_json_processes_the_invoice(serve):
    _, client = serve(**only("malformed_json"))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    record = assert_one_record(
        client, fault="malformed_json", status=200, outcome="processed", processed=True
    )
    assert NUMBER.match(record["invoice_number"])


def test_fault_connection_drop_gives_a_transport_error_and_does_not_process(serve):
    server, client = serve(**only("connection_drop"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(POST, json=invoice(), headers=AUTH)
    assert_one_record(
        client, fault="connection_drop", status="dropped", outcome="fault", processed=False
    )
    assert httpx.get(f"{server.url}/_sandbox/health").status_code == 200


def hanging_client(url):
    return httpx.Client(base_url=url, timeout=httpx.Timeout(5.0, read=0.5))


def test_fault_read_timeout_hangs_before_processing(serve):
    server, client = serve(**only("read_timeout", hang_seconds=2.0))
    with hanging_client(server.url) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(POST, json=invoice(), headers=AUTH)
    record = settled_record(client, 1)
    assert (record["fault"], record["outcome"], record["status"]) == (
        "read_timeout",
        "fault",
        "dropped",
    )
    assert record["invoice_number"] is None
    assert stats(client)["processed"] == 0


def test_fault_read_timeout_answers_504_to_a_patient_client(serve):
    _, client = serve(**only("read_timeout", hang_seconds=0.2))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert response.status_code == 504
    assert response.content == b""
    assert_one_record(client, fault="read_timeout", status=504, outcome="fault", processed=False)


def test_fault_response_lost_processes_but_never_answers_in_time(serve):
    server, client = serve(**only("response_lost", hang_seconds=2.0))
    with hanging_client(server.url) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(POST, json=invoice(), headers=AUTH)
    current = stats(client)
    assert (current["processed"], current["by_outcome"]) == (1, {"processed": 1})
    record = settled_record(client, 1)
    assert (record["fault"], record["status"]) == ("response_lost", "dropped")
    assert NUMBER.match(record["invoice_number"])


def test_fault_response_lost_answers_an_empty_200_to_a_patient_client(serve):
    _, client = serve(**only("response_lost", hang_seconds=0.2))
    response = client.post(POST, json=invoice(), headers=AUTH)
    assert (response.status_code, response.content) == (200, b"")
    assert_one_record(
        client, fault="response_lost", status=200, outcome="processed", processed=True
    )


def test_control_endpoints_need_no_token_and_meet_no_faults(serve):
    _, client = serve(**only("connection_drop"))
    health = client.get("/_sandbox/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert client.get("/_sandbox/stats").json()["requests"] == 0
    assert client.get("/_sandbox/requests").json() == []
    assert client.post("/_sandbox/reset").status_code == 200


def test_stats_and_reset(serve):
    _, client = serve(faults=FaultPlan(faults={"http_500": 0.5}, seed=1))
    for i in range(10):
        client.post(POST, json=invoice(invoiceRefNo=str(i)), headers=AUTH)
    client.post(VALIDATE, json=invoice(), headers=AUTH)
    client.post(POST, json=invoice())
    current = stats(client)
    assert current["requests"] == 12
    assert sum(current["by_outcome"].values()) == 12
    assert current["by_outcome"]["unauthorized"] == 1
    assert current["processed"] == current["by_outcome"].get("processed", 0)
    assert current["by_path"] == {POST: 11, VALIDATE: 1}
    assert current["by_fault"].get("http_500", 0) == current["by_status"].get("500", 0)
    assert [r["seq"] for r in records(client)] == list(range(1, 13))
    assert client.get("/_sandbox/requests", params={"since": 10}).json()[0]["seq"] == 11

    client.post("/_sandbox/reset")
    assert stats(client)["requests"] == 0
    assert stats(client)["processed"] == 0
    assert records(client) == []


# --- the processing record ---------------------------------------------------------------------


def test_posting_the_same_payload_twice_counts_one_duplicate(client):
    payload = invoice()
    first = client.post(POST, json=payload, headers=AUTH).json()["invoiceNumber"]
    second = client.post(POST, json=payload, headers=AUTH).json()["invoiceNumber"]
    client.post(VALIDATE, json=payload, headers=AUTH)
    client.post(POST, json=invoice(invoiceRefNo="other"), headers=AUTH)

    assert first != second
    current = stats(client)
    assert current["processed"] == 3
    assert current["distinct_processed"] == 2
    assert current["processed_more_than_once"] == 1


def test_fingerprint_ignores_key_order():
    payload = invoice()
    reordered = dict(reversed(list(payload.items())))
    assert fingerprint(reordered) == fingerprint(payload)
    assert fingerprint(invoice(invoiceRefNo="x")) != fingerprint(payload)


# --- reproducible fault plans ------------------------------------------------------------------

MIXED = {"http_500": 0.25, "rate_limit": 0.2, "empty_body": 0.15, "fault_401": 0.1}


def fault_sequence(client, n=40):
    for i in range(n):
        client.post(POST, json=invoice(invoiceRefNo=str(i)), headers=AUTH)
    return [r["fault"] for r in records(client)]


def test_the_same_seed_replays_the_same_fault_sequence(serve):
    plan = FaultPlan(faults=MIXED, seed=42)
    first = fault_sequence(serve(faults=plan)[1])
    _, client = serve(faults=FaultPlan(faults=MIXED, seed=42))
    second = fault_sequence(client)
    other = fault_sequence(serve(faults=FaultPlan(faults=MIXED, seed=43))[1])

    assert first == second
    assert first != other
    assert None in first
    assert len(set(first) - {None}) >= 3
    chooser = plan.chooser()
    assert first == [chooser.choose() for _ in range(40)]

    client.post("/_sandbox/reset")
    assert fault_sequence(client) == first


def test_probability_mix_is_roughly_honoured():
    chooser = FaultPlan(faults={"http_500": 0.3, "html_502": 0.1}, seed=7).chooser()
    draws = [chooser.choose() for _ in range(10_000)]
    assert 2700 < draws.count("http_500") < 3300
    assert 800 < draws.count("html_502") < 1200
    assert set(draws) == {None, "http_500", "html_502"}


def test_latency_draws_stay_within_base_plus_jitter():
    plan = FaultPlan(latency_ms=20, latency_jitter_ms=10, seed=3)
    draws = [plan.chooser().latency_seconds() for _ in range(3)]
    assert len(set(draws)) == 1
    chooser = plan.chooser()
    assert all(0.020 <= chooser.latency_seconds() <= 0.030 for _ in range(200))


def test_parse_reads_kinds_seed_and_latency():
    plan = FaultPlan.parse(
        " http_500=0.05, html_502=0.05,rate_limit=0.05 ", seed=9, latency_ms=12.5
    )
    assert dict(plan.faults) == {"http_500": 0.05, "html_502": 0.05, "rate_limit": 0.05}
    assert (plan.seed, plan.latency_ms, plan.latency_jitter_ms) == (9, 12.5, 0.0)
    assert FaultPlan.parse(plan.spec) == FaultPlan(faults=plan.faults)
    assert dict(FaultPlan.parse("").faults) == {}
    assert dict(FaultPlan.parse(None).faults) == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus=0.1", r"unknown fault kind 'bogus'; known kinds: .*connection_drop.*http_500"),
        ("http_500=0.6,html_502=0.6", "sum to 1.2"),
        ("http_500=-0.1", r"within \[0, 1\]"),
        ("http_500=1.5", r"within \[0, 1\]"),
        ("http_500=often", "not a number"),
        ("http_500=nan", "finite"),
        ("http_500", "kind=probability"),
        ("=0.5", "kind=probability"),
        ("http_500=0.1,http_500=0.2", "twice"),
    ],
)
def test_parse_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        FaultPlan.parse(spec)


def test_plan_validation_errors():
    with pytest.raises(ValueError, match=r"known kinds: .*rate_limit"):
        FaultPlan(faults={"teapot": 0.1})
    with pytest.raises(ValueError, match="latency_ms"):
        FaultPlan(latency_ms=-1)
    with pytest.raises(ValueError, match="latency_jitter_ms"):
        FaultPlan(latency_jitter_ms=float("inf"))
    with pytest.raises(ValueError, match=r"known kinds: http_500$"):
        FaultPlan.parse("html_502=0.1", known={"http_500"})
    with pytest.raises(ValueError, match="not supported here"):
        FaultPlan(faults={"html_502": 0.1}).require({"http_500"})
    assert set(FAULT_KINDS) >= {"connection_drop", "response_lost", "read_timeout"}


def test_config_validation():
    with pytest.raises(ValueError, match="token"):
        FbrSandboxConfig(token="")
    with pytest.raises(ValueError, match="7 or 13 digits"):
        FbrSandboxConfig(token=TOKEN, authorized_ntns=frozenset({"12"}))
    with pytest.raises(ValueError, match="reload_token_after"):
        FbrSandboxConfig(token=TOKEN, reload_token_after=0)


# --- runners -----------------------------------------------------------------------------------


def test_stop_and_start_on_the_same_port_refuses_connections_between_and_keeps_state(serve):
    server, _ = serve()
    url = server.url
    assert httpx.post(f"{url}{POST}", json=invoice(), headers=AUTH).status_code == 200

    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}{POST}", json=invoice(), headers=AUTH)

    server.start()
    assert server.url == url
    second = httpx.post(f"{url}{POST}", json=invoice(), headers=AUTH)
    assert NUMBER.match(second.json()["invoiceNumber"])
    current = httpx.get(f"{url}/_sandbox/stats").json()
    assert (current["requests"], current["processed"], current["processed_more_than_once"]) == (
        2,
        2,
        1,
    )


def test_cli_options_build_the_config(monkeypatch):
    monkeypatch.setenv("FBR_API_TOKEN", "from-env")
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "--faults",
            "http_500=0.1,connection_drop=0.05",
            "--seed",
            "4",
            "--latency-ms",
            "15",
            "--retry-after",
            "7",
            "--hang-seconds",
            "3",
            "--authorized-ntn",
            "1234567",
            "--authorized-ntn",
            "4210112345671",
        ]
    )
    config = config_from_args(args)
    assert config.token == "from-env"
    assert config.authorized_ntns == frozenset({"1234567", "4210112345671"})
    assert dict(config.faults.faults) == {"http_500": 0.1, "connection_drop": 0.05}
    assert (config.faults.seed, config.faults.latency_ms) == (4, 15.0)
    assert (config.retry_after_seconds, config.hang_seconds) == (7, 3.0)
    assert (args.host, args.port) == ("127.0.0.1", 8765)

    monkeypatch.delenv("FBR_API_TOKEN")
    assert config_from_args(parser.parse_args([])).token == "sandbox-token"
    assert config_from_args(parser.parse_args(["--token", "x"])).token == "x"


def test_sandbox_process_serves_reports_and_stops():
    with SandboxProcess(["--token", TOKEN, "--seed", "5", "--authorized-ntn", NTN]) as proc:
        response = httpx.post(f"{proc.url}{POST}", json=invoice(), headers=AUTH, timeout=10.0)
        assert NUMBER.match(response.json()["invoiceNumber"])
        assert proc.stats()["processed"] == 1
        assert [r["outcome"] for r in proc.requests()] == ["processed"]
        proc.reset()
        assert proc.stats()["requests"] == 0
        url = proc.url
    assert proc.returncode is not None
    output = proc.output()
    assert url in output
    assert TOKEN not in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sandbox/health")


def test_sandbox_process_reports_a_failed_start():
    with pytest.raises(RuntimeError, match="unknown fault kind 'bogus'"):
        SandboxProcess(["--faults", "bogus=0.5"]).start()
    with pytest.raises(ValueError, match="--port"):
        SandboxProcess(["--port", "9999"])
