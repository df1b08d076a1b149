"""The PayPal Payouts sandbox over real HTTP, judged against PayPal's own OpenAPI file.

The retry engine's PayPal promise is "one batch per sender_batch_id, whatever the wire does", so
this pins the sandbox's side of it: OAuth tokens and their expiry, every response body checked
against the schema PayPal publishes for that operation and status, dedupe by ``sender_batch_id``
and ``PayPal-Request-Id``, the batch and item progression, paging, every fault kind and whether
it created a batch, and the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from retry_pipelines.gateways.paypal_parse import Created, classify_create
from retry_pipelines.sandbox.__main__ import add_arguments, config_from_args
from retry_pipelines.sandbox.faults import ALL_FAULT_KINDS, FaultPlan
from retry_pipelines.sandbox.fbr import FbrSandboxConfig
from retry_pipelines.sandbox.paypal import (
    BATCH_PATH,
    CANCEL_PATH,
    DUPLICATE_ISSUE,
    ITEM_PATH,
    NOT_CREATING_FAULTS,
    PAYOUTS_PATH,
    PAYPAL_FAULT_KINDS,
    TOKEN_PATH,
    PaypalSandboxConfig,
    create_paypal_app,
    validate_create_request,
)
from retry_pipelines.sandbox.server import SandboxProcess, ThreadedServer
from retry_pipelines_tests.support import openapi
from retry_pipelines_tests.support.openapi import SpecMismatch

CLIENT_ID = "test-client-7c1"
CLIENT_SECRET = "test-secret-5be2d"
FAST = {"processing_after_seconds": 0.2, "final_after_seconds": 0.4}
INSTANT = {"processing_after_seconds": 0.0, "final_after_seconds": 0.0}
RANK = {"PENDING": 0, "PROCESSING": 1, "SUCCESS": 2}


def item(n=0, **changes):
    base = {
        "recipient_type": "EMAIL",
        "receiver": f"payee{n}@example.com",
        "amount": {"currency": "USD", "value": "10.00"},
        "note": "Thanks for your patronage!",
        "sender_item_id": f"item-{n}",
    }
    return base | changes


def payout(sender_batch_id="batch-1", items=None, **header):
    return {
        "sender_batch_header": {
            "sender_batch_id": sender_batch_id,
            "email_subject": "You have a payout!",
            "email_message": "You have received a payout.",
        }
        | header,
        "items": [item()] if items is None else items,
    }


class Sandbox:
    """A running sandbox, a client of it, and its state object."""

    def __init__(self, server, client, state):
        self.server, self.client, self.state = server, client, state
        self._headers = None

    @property
    def url(self):
        return self.server.url

    def token_response(self, auth=(CLIENT_ID, CLIENT_SECRET), data=None):
        form = {"grant_type": "client_credentials"} if data is None else data
        return self.client.post(TOKEN_PATH, auth=auth, data=form)

    def token(self):
        response = self.token_response()
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    @property
    def auth(self):
        if self._headers is None:
            self._headers = {"Authorization": f"Bearer {self.token()}"}
        return self._headers

    def create(self, body, *, request_id=None, headers=None):
        extra = {} if request_id is None else {"PayPal-Request-Id": request_id}
        return self.client.post(PAYOUTS_PATH, json=body, headers=(headers or self.auth) | extra)

    def batch(self, batch_id, headers=None, **params):
        path = f"/v1/payments/payouts/{batch_id}"
        return self.client.get(path, params=params, headers=headers or self.auth)

    def item(self, item_id):
        return self.client.get(f"/v1/payments/payouts-item/{item_id}", headers=self.auth)

    def cancel(self, item_id):
        return self.client.post(f"/v1/payments/payouts-item/{item_id}/cancel", headers=self.auth)

    def stats(self):
        return self.client.get("/_sandbox/stats").json()

    def records(self, **params):
        return self.client.get("/_sandbox/requests", params=params).json()

    def api_records(self):
        return [r for r in self.records() if r["route"] != TOKEN_PATH]

    def poll_batch(self, batch_id, until, **params):
        """GET the batch until ``until(body)`` (bounded): ``(body, sent, received)`` per GET."""
        seen = []
        for _ in range(400):
            sent = time.monotonic()
            response = self.batch(batch_id, **params)
            assert response.status_code == 200, response.text
            seen.append((response.json(), sent, time.monotonic()))
            if until(seen[-1][0]):
                return seen
            time.sleep(0.01)
        raise AssertionError(f"batch {batch_id} never got there: {seen[-1][0]}")

    def settled_record(self, seq):
        """The record of request ``seq`` once it no longer hangs (polls, bounded)."""
        for _ in range(300):
            found = [r for r in self.records() if r["seq"] == seq]
            if found and found[0]["status"] != "pending":
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"request {seq} still pending: {self.records()}")


def start_sandbox(stack, **config):
    config.setdefault("client_id", CLIENT_ID)
    config.setdefault("client_secret", CLIENT_SECRET)
    app = create_paypal_app(PaypalSandboxConfig(**config))
    server = stack.enter_context(ThreadedServer(app))
    client = stack.enter_context(httpx.Client(base_url=server.url, timeout=10.0))
    return Sandbox(server, client, app.state.paypal)


@pytest.fixture(scope="module")
def spec():
    """PayPal's OpenAPI document (skips, saying where it was looked for, when it is absent)."""
    return openapi.load_or_skip()


@pytest.fixture
def serve():
    """Start a sandbox (config overrides as keywords): returns a ``Sandbox``."""
    with contextlib.ExitStack() as stack:
        yield lambda **config: start_sandbox(stack, **config)


@pytest.fixture(scope="module")
def shared():
    with contextlib.ExitStack() as stack:
        yield start_sandbox(stack)


@pytest.fixture
def sandbox(shared):
    """The module's default sandbox, reset for this test (its tokens stay valid)."""
    shared.client.post("/_sandbox/reset").raise_for_status()
    return shared


def conforms(spec, response, method, template):
    """The JSON body, after checking it against the spec for this operation and status."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    spec.validate_response(method, template, response.status_code, body)
    return body


def only(kind, **config):
    return {"faults": FaultPlan(faults={kind: 1.0}), **config}


# --- the OpenAPI helper ------------------------------------------------------------------------


def test_the_helper_names_the_failing_json_paths(spec):
    bad = {
        "batch_header": {
            "payout_batch_id": "X" * 31,
            "batch_status": "DONE",
            "time_created": "yesterday",
            "sender_batch_header": {},
        },
        "links": [],
    }
    with pytest.raises(SpecMismatch) as caught:
        spec.validate_response("POST", PAYOUTS_PATH, 201, bad)
    message = str(caught.value)
    for path in (
        "$.batch_header.batch_status",
        "$.batch_header.payout_batch_id",
        "$.batch_header.time_created",
        "$.links",
    ):
        assert path in message
    with pytest.raises(SpecMismatch, match=r"\$\.items\[0\]\.amount: 'value' is a required"):
        openapi.validate_request(
            "POST", PAYOUTS_PATH, payout(items=[item(amount={"currency": "USD"})])
        )
    with pytest.raises(SpecMismatch, match="'debug_id' is a required property"):
        openapi.validate_response("GET", BATCH_PATH, 404, {"name": "X", "message": "m"})
    with pytest.raises(SpecMismatch, match="payout_batch_id"):
        openapi.validate_schema("payout_item-2", {"payout_item_id": "A", "payout_item": {}})
    with pytest.raises(KeyError, match="not in the spec"):
        spec.validate_response("GET", "/v1/nowhere", 200, {})


def test_the_request_bodies_these_tests_send_match_the_spec(spec):
    bodies = [
        payout(),
        payout(items=[item(n) for n in range(25)]),
        payout(items=[item(receiver="fail@example.com"), item(receiver="unclaimed@example.com")]),
        payout(items=[item(note="ERRPYO005")]),
        payout(recipient_type="EMAIL", items=[{"receiver": "a@example.com", **_usd("1")}]),
    ]
    for body in bodies:
        spec.validate_request("POST", PAYOUTS_PATH, body)
        assert validate_create_request(body) == []


def _usd(value):
    return {"amount": {"currency": "USD", "value": value}}


# --- OAuth -------------------------------------------------------------------------------------


def test_the_right_credentials_get_a_bearer_token(sandbox):
    response = sandbox.token_response()

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"scope", "access_token", "token_type", "app_id", "expires_in", "nonce"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 32400
    assert "https://uri.paypal.com/payments/payouts" in body["scope"].split()
    assert body["app_id"].startswith("APP-")
    assert len(body["access_token"]) > 40
    assert sandbox.token() != body["access_token"]
    records = sandbox.records()
    assert [r["outcome"] for r in records] == ["token_issued", "token_issued"]
    assert CLIENT_SECRET not in json.dumps(records)
    assert body["access_token"] not in json.dumps(records)
    assert sandbox.stats()["tokens_issued"] == 2


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param((CLIENT_ID, "wrong-secret"), id="wrong-secret"),
        pytest.param(("someone-else", CLIENT_SECRET), id="wrong-id"),
        pytest.param(None, id="no-credentials"),
        pytest.param({"Authorization": f"Bearer {CLIENT_SECRET}"}, id="bearer-not-basic"),
        pytest.param({"Authorization": "Basic !!not-base64!!"}, id="garbled-basic"),
    ],
)
def test_wrong_credentials_get_invalid_client(sandbox, auth):
    if isinstance(auth, dict):
        response = sandbox.client.post(
            TOKEN_PATH, headers=auth, data={"grant_type": "client_credentials"}
        )
    else:
        response = sandbox.token_response(auth=auth)

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client Authentication failed",
    }
    [record] = sandbox.records()
    assert (record["outcome"], record["status"]) == ("unauthorized", 401)
    assert sandbox.stats()["tokens_issued"] == 0


@pytest.mark.parametrize(
    ("form", "description"),
    [({}, "Grant Type is NULL"), ({"grant_type": "password"}, "unsupported grant_type")],
)
def test_the_grant_type_must_be_client_credentials(sandbox, form, description):
    response = sandbox.token_response(data=form)
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type", "error_description": description}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer A21AAnot-issued-here"}, id="unknown-token"),
        pytest.param({"Authorization": "Basic dGVzdDp0ZXN0"}, id="basic"),
    ],
)
def test_payouts_endpoints_refuse_a_request_without_an_issued_token(spec, serve, headers):
    box = serve(**only("http_500"))
    calls = [
        (
            "POST",
            PAYOUTS_PATH,
            lambda: box.client.post(PAYOUTS_PATH, json=payout(), headers=headers),
        ),
        ("GET", BATCH_PATH, lambda: box.client.get("/v1/payments/payouts/X", headers=headers)),
        ("GET", ITEM_PATH, lambda: box.client.get("/v1/payments/payouts-item/X", headers=headers)),
        (
            "POST",
            CANCEL_PATH,
            lambda: box.client.post("/v1/payments/payouts-item/X/cancel", headers=headers),
        ),
    ]
    for _, _, call in calls:
        response = call()
        assert response.status_code == 401
        # PayPal's recorded 401 on POST /v1/payments/payouts is OAuth-style, not the OpenAPI
        # file's error_401 (shared/realworld/paypal/09_postman_create_401_invalid_token): the
        # recorded shape wins, so this body is not checked against the spec.
        body = response.json()
        assert set(body) == {"error", "error_description"}
        assert body["error"] == "invalid_token"
        assert response.headers["paypal-debug-id"]

    records = box.records()
    assert [r["outcome"] for r in records] == ["unauthorized"] * 4
    assert {r["fault"] for r in records} == {None}
    assert box.stats()["batches_created"] == 0
    # the refused create consumed no fault draw: the next good one meets the first
    assert box.create(payout()).status_code == 500


class ManualClock:
    """A sandbox clock that moves only when told to."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def test_an_expired_token_gets_invalid_token_and_a_new_one_works(serve):
    clock = ManualClock()
    box = serve(token_ttl_seconds=0.3, clock=clock)
    issued = box.token_response().json()
    assert issued["expires_in"] == 1  # the TTL rounded up
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    clock.advance(0.29)
    assert box.batch("UNKNOWNBATCH1", headers=headers).status_code == 404  # still accepted

    clock.advance(0.01)
    response = box.batch("UNKNOWNBATCH1", headers=headers)
    assert response.status_code == 401
    # the recorded OAuth-style 401 (sample paypal/09), not the spec's error_401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "Token signature verification failed",
    }
    assert box.records()[-1]["auth"] == "expired"
    refused = box.create(payout(), headers=headers)
    assert refused.status_code == 401
    assert box.stats()["batches_created"] == 0

    fresh = {"Authorization": f"Bearer {box.token()}"}
    assert box.create(payout(), headers=fresh).status_code == 201


def test_expire_tokens_ends_every_token_and_the_reported_expiry_can_differ(serve):
    box = serve(expires_in_seconds=32400, token_ttl_seconds=3600)
    assert box.token_response().json()["expires_in"] == 32400
    assert box.create(payout()).status_code == 201
    assert box.client.post("/_sandbox/expire-tokens").json() == {"expired": 2}
    assert box.create(payout("batch-2")).status_code == 401
    assert box.records()[-1]["auth"] == "expired"


# --- create ------------------------------------------------------------------------------------


def test_create_answers_201_with_a_pending_batch_that_matches_the_spec(spec, sandbox):
    body = payout("batch-201", items=[item(0), item(1, amount={"currency": "USD", "value": "2.5"})])
    spec.validate_request("POST", PAYOUTS_PATH, body)
    response = sandbox.create(body)

    assert response.status_code == 201
    created = conforms(spec, response, "POST", PAYOUTS_PATH)
    header = created["batch_header"]
    batch_id = header["payout_batch_id"]
    assert header["batch_status"] == "PENDING"
    assert header["sender_batch_header"] == body["sender_batch_header"]
    assert datetime.fromisoformat(header["time_created"])
    [link] = created["links"]
    assert (link["rel"], link["method"]) == ("self", "GET")
    assert link["href"] == f"{sandbox.url}/v1/payments/payouts/{batch_id}"
    followed = sandbox.client.get(link["href"], headers=sandbox.auth)
    assert conforms(spec, followed, "GET", BATCH_PATH)["batch_header"]["amount"] == {
        "currency": "USD",
        "value": "12.50",
    }

    record, read = sandbox.api_records()
    assert (record["outcome"], record["status"], record["created"]) == ("created", 201, True)
    assert (read["outcome"], read["route"], read["payout_batch_id"]) == (
        "read",
        BATCH_PATH,
        batch_id,
    )
    assert (record["payout_batch_id"], record["sender_batch_id"]) == (batch_id, "batch-201")
    current = sandbox.stats()
    assert (current["batches_created"], current["items_created"]) == (1, 2)
    assert classify_create(201, {}, response.content) == Created(batch_id, "PENDING")


def test_the_specs_own_example_request_is_accepted(spec, sandbox):
    operation = spec.operation("POST", PAYOUTS_PATH)
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    example = next(iter(examples.values()))["value"]
    response = sandbox.create(example)
    assert response.status_code == 201, response.text
    conforms(spec, response, "POST", PAYOUTS_PATH)


def _without(key):
    def change(body):
        del body[key]

    return change


def _set_item(**changes):
    def change(body):
        body["items"][0].update(changes)

    return change


def _no_recipient_type(body):
    del body["items"][0]["recipient_type"]


def _mixed_currencies(body):
    body["items"].append(item(1, amount={"currency": "EUR", "value": "1.00"}))


# (change, failing field, does PayPal's schema itself reject it?)
INVALID = [
    pytest.param(_without("items"), "items", True, id="no-items"),
    pytest.param(lambda b: b.update(items=[]), "items", True, id="empty-items"),
    pytest.param(_without("sender_batch_header"), "sender_batch_header", True, id="no-header"),
    pytest.param(
        lambda b: b["items"][0].pop("receiver"), "items[0].receiver", True, id="no-receiver"
    ),
    pytest.param(
        _set_item(amount={"currency": "USD", "value": 10}),
        "items[0].amount.value",
        True,
        id="value-is-a-number",
    ),
    pytest.param(
        _set_item(receiver="x" * 121 + "@ex.com"), "items[0].receiver", True, id="receiver-long"
    ),
    pytest.param(
        lambda b: b["sender_batch_header"].update(sender_batch_id="b" * 257),
        "sender_batch_header.sender_batch_id",
        True,
        id="sender-batch-id-long",
    ),
    pytest.param(_set_item(note="line one\nline two"), "items[0].note", True, id="note-newline"),
    pytest.param(_set_item(purpose="BRIBES"), "items[0].purpose", True, id="purpose"),
    pytest.param(
        _set_item(notification_language="french"),
        "items[0].notification_language",
        True,
        id="language",
    ),
    pytest.param(
        _set_item(alternate_notification_method={"phone": {"country_code": "1234"}}),
        "items[0].alternate_notification_method.phone.country_code",
        True,
        id="phone",
    ),
    pytest.param(_set_item(recipient_type="FAX"), "items[0].recipient_type", False, id="type"),
    pytest.param(_no_recipient_type, "items[0].recipient_type", False, id="no-recipient-type"),
    pytest.param(
        _set_item(receiver="not-an-email"), "items[0].receiver", False, id="email-without-at"
    ),
    pytest.param(
        _set_item(amount={"currency": "USD", "value": "1.234"}),
        "items[0].amount.value",
        False,
        id="three-decimals",
    ),
    pytest.param(
        _set_item(amount={"currency": "USD", "value": "0.00"}),
        "items[0].amount.value",
        False,
        id="zero-amount",
    ),
    pytest.param(
        _set_item(amount={"currency": "usd", "value": "1.00"}),
        "items[0].amount.currency",
        False,
        id="currency-lowercase",
    ),
    pytest.param(
        _set_item(recipient_wallet="BANK"), "items[0].recipient_wallet", False, id="wallet"
    ),
    pytest.param(_mixed_currencies, "items", False, id="mixed-currencies"),
]


@pytest.mark.parametrize(("change", "field", "schema_rejects"), INVALID)
def test_an_invalid_body_gets_validation_error_and_creates_nothing(
    spec, sandbox, change, field, schema_rejects
):
    body = copy.deepcopy(payout())
    change(body)
    response = sandbox.create(body)

    assert response.status_code == 400
    error = conforms(spec, response, "POST", PAYOUTS_PATH)
    assert (error["name"], error["message"]) == (
        "VALIDATION_ERROR",
        "Invalid request - see details",
    )
    assert {"field": field, "location": "body"}.items() <= error["details"][0].items()
    assert all(d["issue"] for d in error["details"])
    [record] = sandbox.api_records()
    assert (record["outcome"], record["created"], record["error_name"]) == (
        "rejected",
        False,
        "VALIDATION_ERROR",
    )
    assert sandbox.stats()["batches_created"] == 0
    # the sandbox agrees with PayPal's schema, and is stricter only by PayPal's business rules
    if schema_rejects:
        with pytest.raises(SpecMismatch):
            spec.validate_request("POST", PAYOUTS_PATH, body)
    else:
        spec.validate_request("POST", PAYOUTS_PATH, body)


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object_gets_invalid_request(spec, sandbox, content):
    headers = sandbox.auth | {"Content-Type": "application/json"}
    response = sandbox.client.post(PAYOUTS_PATH, content=content, headers=headers)

    assert response.status_code == 400
    assert conforms(spec, response, "POST", PAYOUTS_PATH)["name"] == "INVALID_REQUEST"
    assert sandbox.stats()["batches_created"] == 0


def test_a_body_that_is_not_json_by_media_type_gets_415(spec, sandbox):
    headers = sandbox.auth | {"Content-Type": "text/plain"}
    response = sandbox.client.post(PAYOUTS_PATH, content=json.dumps(payout()), headers=headers)
    assert response.status_code == 415
    assert conforms(spec, response, "POST", PAYOUTS_PATH)["name"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    ("note", "status", "name"),
    [
        ("ERRPYO002", 403, "SENDER_EMAIL_UNCONFIRMED"),
        ("Simulate ERRPYO005 please", 422, "INSUFFICIENT_FUNDS"),
        ("ERRPYO006", 500, "INTERNAL_ERROR"),
        ("ERRPYO014", 400, "USER_BUSINESS_ERROR"),
    ],
)
def test_paypals_test_values_in_the_first_note_simulate_errors(spec, sandbox, note, status, name):
    response = sandbox.create(payout(items=[item(note=note), item(1)]))

    assert response.status_code == status
    error = conforms(spec, response, "POST", PAYOUTS_PATH)
    assert error["name"] == name
    [record] = sandbox.api_records()
    assert (record["outcome"], record["created"], record["error_name"]) == (
        "simulated_error",
        False,
        name,
    )
    assert sandbox.stats()["batches_created"] == 0
    created = classify_create(status, {}, response.content)
    assert not isinstance(created, Created)  # not mistaken for an adoptable duplicate


def test_a_test_value_without_a_simulation_creates_normally(sandbox):
    assert sandbox.create(payout(items=[item(note="ERRPYO004")])).status_code == 201


# --- dedupe ------------------------------------------------------------------------------------


def test_a_reused_sender_batch_id_is_refused_with_a_link_to_the_original(spec, sandbox):
    first = sandbox.create(payout("batch-dup"))
    original = first.json()["batch_header"]["payout_batch_id"]
    again = sandbox.create(payout("batch-dup", items=[item(5), item(6)]))

    assert again.status_code == 400
    error = conforms(spec, again, "POST", PAYOUTS_PATH)
    assert (error["name"], error["message"]) == ("USER_BUSINESS_ERROR", "User business error.")
    assert error["debug_id"]
    assert error["information_link"].startswith("https://developer.paypal.com/")
    assert isinstance(error["links"], list)
    [detail] = error["details"]
    assert (detail["field"], detail["location"], detail["issue"]) == (
        "SENDER_BATCH_ID",
        "body",
        DUPLICATE_ISSUE,
    )
    [link] = detail["link"]
    assert link["href"] == f"{sandbox.url}/v1/payments/payouts/{original}"
    assert (link["rel"], link["method"]) == ("self", "GET")
    assert classify_create(400, {}, again.content) == Created(original, None, adopted=True)

    records = sandbox.api_records()
    assert [(r["outcome"], r["created"]) for r in records] == [
        ("created", True),
        ("duplicate", False),
    ]
    assert records[1]["payout_batch_id"] == original
    current = sandbox.stats()
    assert current["batches_created"] == 1
    assert current["duplicate_create_attempts"] == 1
    assert current["sender_batch_ids_created_more_than_once"] == 0
    # other ids are not affected
    assert sandbox.create(payout("batch-other")).status_code == 201


def test_a_repeated_request_id_replays_the_first_201_and_never_makes_a_second_batch(spec, sandbox):
    first = sandbox.create(payout("batch-rid"), request_id="req-1")
    same = sandbox.create(payout("batch-rid"), request_id="req-1")
    other_body = sandbox.create(payout("batch-rid-2"), request_id="req-1")

    assert first.status_code == same.status_code == other_body.status_code == 201
    assert same.content == first.content
    assert other_body.content == first.content
    conforms(spec, same, "POST", PAYOUTS_PATH)
    records = sandbox.api_records()
    assert [r["outcome"] for r in records] == ["created", "replayed", "replayed"]
    assert {r["payout_batch_id"] for r in records} == {
        first.json()["batch_header"]["payout_batch_id"]
    }
    current = sandbox.stats()
    assert (current["batches_created"], current["request_id_replays"]) == (1, 2)
    assert current["duplicate_create_attempts"] == 1  # the replay that named batch-rid again
    # a new request id with the used sender_batch_id is the sender_batch_id refusal
    assert sandbox.create(payout("batch-rid"), request_id="req-2").status_code == 400


def test_a_request_id_whose_first_use_was_refused_is_processed_afresh(sandbox):
    refused = sandbox.create(payout(items=[]), request_id="req-x")
    created = sandbox.create(payout(), request_id="req-x")
    assert (refused.status_code, created.status_code) == (400, 201)
    assert sandbox.stats()["batches_created"] == 1


def test_concurrent_creates_of_one_sender_batch_id_make_one_batch(sandbox):
    headers = sandbox.auth

    def post(n):
        body = payout("batch-race", items=[item(n)])
        return httpx.post(f"{sandbox.url}{PAYOUTS_PATH}", json=body, headers=headers, timeout=10)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = sorted(r.status_code for r in pool.map(post, range(24)))

    assert statuses == [201] + [400] * 23
    current = sandbox.stats()
    assert (current["batches_created"], current["duplicate_create_attempts"]) == (1, 23)
    assert current["sender_batch_ids_created_more_than_once"] == 0


# --- progression, items, cancel ----------------------------------------------------------------


def test_a_batch_goes_pending_processing_success_on_the_real_clock(spec, serve):
    box = serve(**FAST)
    receivers = ["payee@example.com", "fail@example.com", "unclaimed+7@example.com"]
    body = payout(items=[item(n, receiver=r) for n, r in enumerate(receivers)])
    sent = time.monotonic()
    created = box.create(body)
    assert created.json()["batch_header"]["batch_status"] == "PENDING"
    batch_id = created.json()["batch_header"]["payout_batch_id"]

    polls = box.poll_batch(batch_id, lambda b: b["batch_header"]["batch_status"] == "SUCCESS")

    seen = [b for b, _, _ in polls]
    statuses = [b["batch_header"]["batch_status"] for b in seen]
    assert [RANK[s] for s in statuses] == sorted(RANK[s] for s in statuses)
    # Each GET was answered at some moment between its send and its receipt. If no two
    # consecutive answers (the create included) can be further apart than the PROCESSING
    # window, one of them fell inside it; on a stalled machine that cannot be claimed.
    moments = [(sent, None), *((s, r) for _, s, r in polls)]
    gaps = [later[1] - earlier[0] for earlier, later in itertools.pairwise(moments)]
    window = FAST["final_after_seconds"] - FAST["processing_after_seconds"]
    if max(gaps) < window:
        assert "PROCESSING" in statuses
    for body_seen in seen:
        spec.validate_response("GET", BATCH_PATH, 200, body_seen)
        header = body_seen["batch_header"]
        if header["batch_status"] != "SUCCESS":
            assert {i["transaction_status"] for i in body_seen["items"]} == {"PENDING"}
            assert "time_completed" not in header
            assert all("errors" not in i and "time_processed" not in i for i in body_seen["items"])
        if header["batch_status"] == "PENDING":
            assert header["fees"]["value"] == "0.00"

    final = seen[-1]
    header = final["batch_header"]
    assert header["batch_status"] == "SUCCESS"  # although one item FAILED
    assert header["time_completed"]
    assert "time_closed" not in header  # an item is still UNCLAIMED
    assert (header["funding_source"], header["amount"]) == (
        "BALANCE",
        {"currency": "USD", "value": "30.00"},
    )
    assert header["fees"] == {"currency": "USD", "value": "0.40"}  # the FAILED item pays none
    items = final["items"]
    assert [i["transaction_status"] for i in items] == ["SUCCESS", "FAILED", "UNCLAIMED"]
    assert [i.get("errors", {}).get("name") for i in items] == [
        None,
        "RECEIVER_ACCOUNT_INVALID",
        "RECEIVER_UNREGISTERED",
    ]
    assert ["transaction_id" in i for i in items] == [True, False, True]
    assert [i["payout_item"]["receiver"] for i in items] == receivers
    assert {i["payout_batch_id"] for i in items} == {batch_id}
    assert all(i["time_processed"] for i in items)


def test_a_batch_steps_pending_processing_success_on_a_manual_clock(spec, serve):
    clock = ManualClock()
    box = serve(clock=clock, **FAST)
    body = payout(items=[item(0), item(1, receiver="fail@example.com")])
    batch_id = box.create(body).json()["batch_header"]["payout_batch_id"]

    def look():
        return conforms(spec, box.batch(batch_id), "GET", BATCH_PATH)

    pending = look()
    assert pending["batch_header"]["batch_status"] == "PENDING"
    assert pending["batch_header"]["fees"]["value"] == "0.00"
    clock.advance(0.2)
    processing = look()
    assert processing["batch_header"]["batch_status"] == "PROCESSING"
    assert processing["batch_header"]["fees"]["value"] == "0.40"  # estimated: both items
    assert [i["transaction_status"] for i in processing["items"]] == ["PENDING", "PENDING"]
    clock.advance(0.2)
    final = look()
    assert final["batch_header"]["batch_status"] == "SUCCESS"
    assert final["batch_header"]["fees"]["value"] == "0.20"
    assert [i["transaction_status"] for i in final["items"]] == ["SUCCESS", "FAILED"]
    assert final["batch_header"]["time_closed"]


def test_items_can_be_read_and_only_unclaimed_ones_cancelled(spec, serve):
    box = serve(**INSTANT)
    body = payout(items=[item(0), item(1, receiver="unclaimed@example.com")])
    batch_id = box.create(body).json()["batch_header"]["payout_batch_id"]
    paid, unclaimed = [i["payout_item_id"] for i in box.batch(batch_id).json()["items"]]

    read = conforms(spec, box.item(unclaimed), "GET", ITEM_PATH)
    assert (read["transaction_status"], read["payout_batch_id"]) == ("UNCLAIMED", batch_id)
    assert read["sender_batch_id"] == "batch-1"
    assert read["payout_item"]["sender_item_id"] == "item-1"
    assert {link["rel"] for link in read["links"]} == {"self", "batch"}

    cancelled = box.cancel(unclaimed)
    assert cancelled.status_code == 200
    returned = conforms(spec, cancelled, "POST", CANCEL_PATH)
    assert returned["transaction_status"] == "RETURNED"
    assert returned["payout_item_fee"]["value"] == "0.00"
    assert box.item(unclaimed).json()["transaction_status"] == "RETURNED"
    after = conforms(spec, box.batch(batch_id), "GET", BATCH_PATH)
    assert [i["transaction_status"] for i in after["items"]] == ["SUCCESS", "RETURNED"]
    assert after["batch_header"]["time_closed"]  # nothing is left unclaimed

    twice = box.cancel(unclaimed)
    assert twice.status_code == 400
    assert conforms(spec, twice, "POST", CANCEL_PATH)["name"] == "ITEM_ALREADY_CANCELLED"
    refused = box.cancel(paid)
    assert refused.status_code == 400
    error = conforms(spec, refused, "POST", CANCEL_PATH)
    assert error["name"] == "ITEM_INCORRECT_STATUS"
    assert "SUCCESS" in error["message"]
    outcomes = [r["outcome"] for r in box.api_records() if r["route"] == CANCEL_PATH]
    assert outcomes == ["cancelled", "cancel_refused", "cancel_refused"]


def test_an_item_of_a_batch_still_processing_cannot_be_cancelled(spec, serve):
    box = serve(processing_after_seconds=60, final_after_seconds=60)
    batch_id = box.create(payout()).json()["batch_header"]["payout_batch_id"]
    [pending] = box.batch(batch_id).json()["items"]
    read = conforms(spec, box.item(pending["payout_item_id"]), "GET", ITEM_PATH)
    assert read["transaction_status"] == "PENDING"
    refused = box.cancel(pending["payout_item_id"])
    assert refused.status_code == 400
    assert conforms(spec, refused, "POST", CANCEL_PATH)["name"] == "ITEM_INCORRECT_STATUS"


def test_item_outcomes_are_drawn_from_the_seed(serve):
    shares = {"SUCCESS": 0.5, "FAILED": 0.25, "UNCLAIMED": 0.25}

    def outcomes(seed):
        box = serve(**INSTANT, item_outcomes=shares, faults=FaultPlan(seed=seed))
        body = payout("batch-seeded", items=[item(n) for n in range(40)])
        batch_id = box.create(body).json()["batch_header"]["payout_batch_id"]
        return [i["transaction_status"] for i in box.batch(batch_id).json()["items"]]

    first = outcomes(3)
    assert outcomes(3) == first
    assert outcomes(4) != first
    assert set(first) == {"SUCCESS", "FAILED", "UNCLAIMED"}


# --- paging and reads --------------------------------------------------------------------------


def test_25_items_come_in_3_pages_of_10_with_next_and_previous_links(spec, serve):
    box = serve(**INSTANT)
    body = payout(items=[item(n) for n in range(25)])
    batch_id = box.create(body).json()["batch_header"]["payout_batch_id"]

    pages = []
    response = box.batch(batch_id, page_size=10, total_required="true")
    while True:
        page = conforms(spec, response, "GET", BATCH_PATH)
        pages.append(page)
        links = {link["rel"]: link["href"] for link in page["links"]}
        if "next" not in links:
            break
        assert len(pages) < 5
        response = box.client.get(links["next"], headers=box.auth)

    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    assert {(p["total_items"], p["total_pages"]) for p in pages} == {(25, 3)}
    rels = [sorted(link["rel"] for link in p["links"]) for p in pages]
    assert rels == [["next", "self"], ["next", "previous", "self"], ["previous", "self"]]
    senders = [i["payout_item"]["sender_item_id"] for p in pages for i in p["items"]]
    assert senders == [f"item-{n}" for n in range(25)]
    previous = next(link for link in pages[2]["links"] if link["rel"] == "previous")
    assert "page=2" in previous["href"]
    assert "page_size=10" in previous["href"]
    back = conforms(spec, box.client.get(previous["href"], headers=box.auth), "GET", BATCH_PATH)
    assert back["items"] == pages[1]["items"]

    plain = conforms(spec, box.batch(batch_id, page_size=10), "GET", BATCH_PATH)
    assert "total_items" not in plain
    assert "total_pages" not in plain
    beyond = conforms(spec, box.batch(batch_id, page=4, page_size=10), "GET", BATCH_PATH)
    assert beyond["items"] == []
    everything = conforms(spec, box.batch(batch_id), "GET", BATCH_PATH)
    assert len(everything["items"]) == 25  # default page_size is 1000
    only_header = conforms(spec, box.batch(batch_id, fields="batch_header"), "GET", BATCH_PATH)
    assert set(only_header) == {"batch_header"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": 1001}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"total_required": "maybe"}, "total_required"),
        ({"fields": "batch_header,secrets"}, "fields"),
    ],
)
def test_bad_query_values_get_validation_error(spec, sandbox, params, field):
    batch_id = sandbox.create(payout()).json()["batch_header"]["payout_batch_id"]
    response = sandbox.batch(batch_id, **params)
    assert response.status_code == 400
    error = conforms(spec, response, "GET", BATCH_PATH)
    assert error["name"] == "VALIDATION_ERROR"
    assert (error["details"][0]["field"], error["details"][0]["location"]) == (field, "query")


def test_unknown_ids_get_invalid_resource_id(spec, sandbox):
    for method, template, response in [
        ("GET", BATCH_PATH, sandbox.batch("NOSUCHBATCH01")),
        ("GET", ITEM_PATH, sandbox.item("NOSUCHITEM001")),
        ("POST", CANCEL_PATH, sandbox.cancel("NOSUCHITEM001")),
    ]:
        assert response.status_code == 404
        body = conforms(spec, response, method, template)
        assert (body["name"], body["details"], body["links"]) == ("INVALID_RESOURCE_ID", [], [])
    assert [r["outcome"] for r in sandbox.api_records()] == ["not_found"] * 3


# --- faults ------------------------------------------------------------------------------------


def assert_one_create(box, *, fault, status, outcome, created):
    [record] = [r for r in box.api_records() if r["route"] == PAYOUTS_PATH]
    assert (record["fault"], record["status"], record["outcome"]) == (fault, status, outcome)
    assert record["created"] is created
    assert (record["payout_batch_id"] is not None) == created
    current = box.stats()
    assert current["batches_created"] == int(created)
    assert current["by_fault"] == {fault: 1}
    assert (fault in NOT_CREATING_FAULTS) == (not created)
    return record


@pytest.mark.parametrize(
    ("kind", "variant", "status", "name", "in_spec"),
    [
        ("http_500", "spec_example", 500, "INTERNAL_SERVER_ERROR", True),
        # recorded without debug_id (sample paypal/13): breaks the spec's error schema
        ("http_500", "service_error", 500, "INTERNAL_SERVICE_ERROR", False),
        ("http_503", "service_unavailable", 503, "SERVICE_UNAVAILABLE", True),
        # recorded without message (sample paypal/12): breaks the spec's error schema
        ("http_503", "internal_service_error", 503, "INTERNAL_SERVICE_ERROR", False),
        ("insufficient_funds", None, 422, "INSUFFICIENT_FUNDS", True),
    ],
)
def test_error_faults_answer_paypal_error_bodies_and_create_nothing(
    spec, serve, kind, variant, status, name, in_spec
):
    box = serve(**only(kind))
    if variant is not None:
        assert box.client.post("/_sandbox/dialect", json={kind: variant}).status_code == 200
    response = box.create(payout())
    assert response.status_code == status
    error = conforms(spec, response, "POST", PAYOUTS_PATH) if in_spec else response.json()
    assert error["name"] == name
    assert response.headers["paypal-debug-id"]
    assert_one_create(box, fault=kind, status=status, outcome="fault", created=False)


def test_server_error_shapes_alternate_and_replay_after_reset(serve):
    box = serve(faults=FaultPlan(faults={"http_500": 1.0}, seed=5))

    def names():
        return [box.create(payout()).json()["name"] for _ in range(4)]

    first = names()
    assert sorted(first) == ["INTERNAL_SERVER_ERROR"] * 2 + ["INTERNAL_SERVICE_ERROR"] * 2
    assert first[0::2] == [first[0]] * 2, "the two shapes take turns"
    box.client.post("/_sandbox/reset")
    assert names() == first


def test_fault_rate_limit_answers_as_recorded_without_retry_after(spec, serve):
    box = serve(**only("rate_limit", retry_after_seconds=3))
    response = box.create(payout())
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    # recorded with camelCase debugId (sample paypal/10), which the spec's error schema refuses
    body = response.json()
    assert set(body) == {"name", "message", "debugId"}
    assert body["name"] == "RATE_LIMIT_REACHED"
    assert response.headers["paypal-debug-id"] == body["debugId"]
    record = assert_one_create(box, fault="rate_limit", status=429, outcome="fault", created=False)
    assert record["retry_after"] is None


def test_faults_touch_only_the_create(serve):
    box = serve(**only("http_500"))
    assert box.token_response().status_code == 200
    assert box.batch("NOSUCHBATCH01").status_code == 404
    assert box.item("NOSUCHITEM001").status_code == 404
    assert box.create(payout()).status_code == 500
    assert box.stats()["by_fault"] == {"http_500": 1}


def test_fault_connection_drop_gives_a_transport_error_and_creates_nothing(serve):
    box = serve(**only("connection_drop"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        box.create(payout())
    assert_one_create(
        box, fault="connection_drop", status="dropped", outcome="fault", created=False
    )
    assert box.client.get("/_sandbox/health").status_code == 200


def impatient(box):
    return httpx.Client(base_url=box.url, timeout=httpx.Timeout(5.0, read=0.4))


def test_fault_read_timeout_hangs_before_creating(serve):
    box = serve(**only("read_timeout", hang_seconds=2.0))
    with impatient(box) as client, pytest.raises(httpx.ReadTimeout):
        client.post(PAYOUTS_PATH, json=payout(), headers=box.auth)
    seq = box.api_records()[0]["seq"]
    record = box.settled_record(seq)
    assert (record["fault"], record["status"], record["created"]) == (
        "read_timeout",
        "dropped",
        False,
    )
    assert box.stats()["batches_created"] == 0


def test_fault_read_timeout_answers_an_empty_504_to_a_patient_client(serve):
    box = serve(**only("read_timeout", hang_seconds=0.2))
    response = box.create(payout())
    assert (response.status_code, response.content) == (504, b"")
    assert_one_create(box, fault="read_timeout", status=504, outcome="fault", created=False)


def test_fault_response_lost_creates_the_batch_but_the_client_times_out(serve):
    box = serve(**only("response_lost", hang_seconds=2.0))
    with impatient(box) as client, pytest.raises(httpx.ReadTimeout):
        client.post(PAYOUTS_PATH, json=payout(), headers=box.auth)
    assert box.stats()["batches_created"] == 1  # created, and the client cannot know
    record = box.settled_record(box.api_records()[0]["seq"])
    assert (record["fault"], record["status"], record["outcome"]) == (
        "response_lost",
        "dropped",
        "created",
    )
    assert record["created"] is True


def test_fault_response_lost_answers_an_empty_201_to_a_patient_client(serve):
    box = serve(**only("response_lost", hang_seconds=0.2))
    response = box.create(payout())
    assert (response.status_code, response.content) == (201, b"")
    assert_one_create(box, fault="response_lost", status=201, outcome="created", created=True)


def test_a_lost_create_is_recovered_by_retrying_with_the_same_ids(spec, serve):
    # a seed whose first draw is response_lost and whose next draws are clean
    seed = next(s for s in range(1000) if _draws(s) == ["response_lost", None, None])
    box = serve(faults=FaultPlan(faults={"response_lost": 0.5}, seed=seed), hang_seconds=2.0)
    with impatient(box) as client, pytest.raises(httpx.ReadTimeout):
        client.post(
            PAYOUTS_PATH,
            json=payout("batch-lost"),
            headers=box.auth | {"PayPal-Request-Id": "req-lost"},
        )
    lost_batch = box.stats()["batches_created"], box.api_records()[0]["payout_batch_id"]
    assert lost_batch[0] == 1

    replayed = box.create(payout("batch-lost"), request_id="req-lost")
    assert replayed.status_code == 201
    assert (
        conforms(spec, replayed, "POST", PAYOUTS_PATH)["batch_header"]["payout_batch_id"]
        == (lost_batch[1])
    )
    refused = box.create(payout("batch-lost"))
    assert classify_create(400, {}, refused.content) == Created(lost_batch[1], None, adopted=True)
    current = box.stats()
    assert (current["batches_created"], current["sender_batch_ids_created_more_than_once"]) == (
        1,
        0,
    )
    assert current["duplicate_create_attempts"] == 2


def _draws(seed, n=3):
    chooser = FaultPlan(faults={"response_lost": 0.5}, seed=seed).chooser()
    return [chooser.choose() for _ in range(n)]


def test_fault_malformed_json_creates_the_batch_and_truncates_the_answer(serve):
    box = serve(**only("malformed_json"))
    response = box.create(payout())
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    assert response.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert_one_create(box, fault="malformed_json", status=201, outcome="created", created=True)


def test_every_paypal_fault_kind_is_covered_here():
    covered = {
        "http_500",
        "http_503",
        "insufficient_funds",
        "rate_limit",
        "connection_drop",
        "read_timeout",
        "response_lost",
        "malformed_json",
    }
    assert covered == PAYPAL_FAULT_KINDS
    assert set(ALL_FAULT_KINDS) >= PAYPAL_FAULT_KINDS
    assert {"response_lost", "malformed_json"} == PAYPAL_FAULT_KINDS - NOT_CREATING_FAULTS


def test_the_same_seed_replays_the_same_fault_sequence_over_creates_only(serve):
    mix = {"http_500": 0.3, "http_503": 0.2, "rate_limit": 0.2}
    box = serve(faults=FaultPlan(faults=mix, seed=42))

    def sequence():
        for n in range(30):
            box.create(payout(f"batch-{n}"))
            box.batch("NOSUCHBATCH01")  # reads draw nothing
            if n == 10:
                box.create(payout("x"), headers={"Authorization": "Bearer nope"})
        return [
            r["fault"]
            for r in box.api_records()
            if r["route"] == PAYOUTS_PATH and r["auth"] is None
        ]

    first = sequence()
    chooser = FaultPlan(faults=mix, seed=42).chooser()
    assert first == [chooser.choose() for _ in range(30)]
    assert len(set(first) - {None}) == 3
    box.client.post("/_sandbox/reset")
    assert sequence() == first


# --- control endpoints, config, CLI ------------------------------------------------------------


def test_control_endpoints_need_no_token_and_meet_no_faults(serve):
    box = serve(**only("connection_drop"))
    health = box.client.get("/_sandbox/health").json()
    assert (health["status"], health["service"]) == ("ok", "paypal")
    assert box.client.get("/_sandbox/stats").json()["requests"] == 0
    assert box.client.get("/_sandbox/requests").json() == []
    assert box.client.post("/_sandbox/reset").status_code == 200


def test_stats_requests_and_reset(sandbox):
    assert sandbox.token()
    sandbox.create(payout("a"))
    sandbox.create(payout("a"))
    sandbox.create(payout("b", items=[]))
    sandbox.batch("NOSUCHBATCH01")
    current = sandbox.stats()
    assert current["requests"] == 5  # with the token request
    assert current["by_outcome"] == {
        "token_issued": 1,
        "created": 1,
        "duplicate": 1,
        "rejected": 1,
        "not_found": 1,
    }
    assert current["by_path"] == {TOKEN_PATH: 1, PAYOUTS_PATH: 3, BATCH_PATH: 1}
    assert current["by_status"] == {"200": 1, "201": 1, "400": 2, "404": 1}
    assert [r["seq"] for r in sandbox.records()] == [1, 2, 3, 4, 5]
    assert [r["seq"] for r in sandbox.records(since=3)] == [4, 5]

    sandbox.client.post("/_sandbox/reset")
    assert sandbox.stats()["requests"] == 0
    assert sandbox.stats()["batches_created"] == 0
    assert sandbox.create(payout("a")).status_code == 201  # ids forgotten, token still valid


def test_config_validation():
    with pytest.raises(ValueError, match="client_secret"):
        PaypalSandboxConfig(client_secret="")
    with pytest.raises(ValueError, match="':'"):
        PaypalSandboxConfig(client_id="a:b")
    with pytest.raises(ValueError, match="must not exceed"):
        PaypalSandboxConfig(processing_after_seconds=3, final_after_seconds=2)
    with pytest.raises(ValueError, match="token_ttl_seconds"):
        PaypalSandboxConfig(token_ttl_seconds=-1)
    with pytest.raises(ValueError, match="unknown item outcome"):
        PaypalSandboxConfig(item_outcomes={"LOST": 0.1})
    with pytest.raises(ValueError, match="at most 1"):
        PaypalSandboxConfig(item_outcomes={"FAILED": 0.7, "UNCLAIMED": 0.7})
    with pytest.raises(ValueError, match=r"html_502 not supported here"):
        PaypalSandboxConfig(faults=FaultPlan(faults={"html_502": 0.1}))
    with pytest.raises(ValueError, match=r"insufficient_funds not supported here"):
        FbrSandboxConfig(token="t", faults=FaultPlan(faults={"insufficient_funds": 0.1}))
    FbrSandboxConfig(token="t", faults=FaultPlan(faults={"http_503": 0.1}))  # FBR has a plain 503
    assert dict(FaultPlan.parse("http_503=0.1,insufficient_funds=0.2").faults) == {
        "http_503": 0.1,
        "insufficient_funds": 0.2,
    }


def test_cli_options_build_the_paypal_config(monkeypatch):
    monkeypatch.setenv("PAYPAL_CLIENT_ID", "env-id")
    monkeypatch.setenv("PAYPAL_CLIENT_SECRET", "env-secret")
    parser = add_arguments(argparse.ArgumentParser())
    argv = (
        "--gateway paypal --faults http_503=0.1,response_lost=0.05 --seed 4 --latency-ms 15 "
        "--retry-after 7 --hang-seconds 3 --processing-after 0.5 --final-after 1.5 "
        "--token-ttl 60 --item-outcomes failed=0.1,UNCLAIMED=0.2"
    )
    args = parser.parse_args(argv.split())
    config = config_from_args(args)
    assert isinstance(config, PaypalSandboxConfig)
    assert (config.client_id, config.client_secret) == ("env-id", "env-secret")
    assert dict(config.faults.faults) == {"http_503": 0.1, "response_lost": 0.05}
    assert (config.faults.seed, config.faults.latency_ms) == (4, 15.0)
    assert (config.retry_after_seconds, config.hang_seconds) == (7, 3.0)
    assert (config.processing_after_seconds, config.final_after_seconds) == (0.5, 1.5)
    assert config.token_ttl_seconds == 60
    assert dict(config.item_outcomes) == {"FAILED": 0.1, "UNCLAIMED": 0.2}

    monkeypatch.delenv("PAYPAL_CLIENT_ID")
    monkeypatch.delenv("PAYPAL_CLIENT_SECRET")
    plain = config_from_args(parser.parse_args(["--gateway", "paypal"]))
    assert (plain.client_id, plain.final_after_seconds) == ("sandbox-client-id", 2.0)
    given = parser.parse_args(["--gateway", "paypal", "--client-id", "i", "--client-secret", "s"])
    assert (config_from_args(given).client_id, config_from_args(given).client_secret) == ("i", "s")
    assert isinstance(config_from_args(parser.parse_args([])), FbrSandboxConfig)

    for argv, message in [
        (["--gateway", "paypal", "--token", "x"], "--token"),
        (["--gateway", "paypal", "--authorized-ntn", "1234567"], "--authorized-ntn"),
        (["--client-id", "x"], "--client-id"),
        (["--gateway", "paypal", "--faults", "html_502=0.1"], "unknown fault kind 'html_502'"),
        (["--gateway", "paypal", "--item-outcomes", "FAILED"], "STATUS=P"),
    ]:
        with pytest.raises(ValueError, match=message):
            config_from_args(parser.parse_args(argv))


def test_the_cli_serves_paypal_in_a_process_without_printing_the_secret():
    args = ["--gateway", "paypal", "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET]
    with SandboxProcess([*args, "--processing-after", "0", "--final-after", "0"]) as proc:
        with httpx.Client(base_url=proc.url, timeout=10.0) as client:
            token = client.post(
                TOKEN_PATH,
                auth=(CLIENT_ID, CLIENT_SECRET),
                data={"grant_type": "client_credentials"},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            created = client.post(PAYOUTS_PATH, json=payout(), headers=headers)
            batch_id = created.json()["batch_header"]["payout_batch_id"]
            read = client.get(f"/v1/payments/payouts/{batch_id}", headers=headers).json()
        assert read["batch_header"]["batch_status"] == "SUCCESS"
        assert proc.stats()["batches_created"] == 1
        url = proc.url
    assert proc.returncode is not None
    output = proc.output()
    assert url in output
    assert "PayPal Payouts sandbox" in output
    assert CLIENT_SECRET not in output
    assert "--client-secret" in output  # where it came from, not what it is


def test_the_cli_refuses_a_fault_the_paypal_sandbox_lacks():
    with pytest.raises(RuntimeError, match="unknown fault kind 'empty_body'"):
        SandboxProcess(["--gateway", "paypal", "--faults", "empty_body=0.5"]).start()
