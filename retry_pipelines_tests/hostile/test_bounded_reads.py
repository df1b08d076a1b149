"""Every client (FBR, PayPal create and reads, OAuth, the alert webhook) reads through one bounded
path: huge bodies and gzip bombs are abandoned at the cap without growing memory, redirects are
never followed, unknown encodings and bad JSON are clear failures, a lying ``total_pages`` is not
followed, and a trickling webhook receiver is abandoned at the attempt deadline.

Memory is measured in a child process (peak RSS, ``VmHWM``, before and after the call); the
hostile server runs in this process and makes its huge bodies on the fly. No wall-clock checks:
abandonment is asserted from the server's side.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from retry_pipelines.alerts import WebhookSettings, send
from retry_pipelines.domain.errors import Delivery, ErrorType
from retry_pipelines.gateways.fbr import POST_PATH, FbrClient, FbrSettings
from retry_pipelines.gateways.http import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    UnreadableBody,
    read_bounded,
)
from retry_pipelines.gateways.oauth import ClientCredentials, TokenRefused
from retry_pipelines.gateways.paypal import (
    PAYOUTS_PATH,
    MalformedAnswer,
    PaypalClient,
    PaypalSettings,
    max_pages,
)
from retry_pipelines.gateways.tokens import StaticToken
from retry_pipelines_tests.support.alert_receiver import sample_alert
from retry_pipelines_tests.support.hostile_server import Answer, HostileServer, Huge, gzip_bomb

TOKEN_PATH = "/v1/oauth2/token"
BATCH_PATH = f"{PAYOUTS_PATH}/PB-1"
HOOK_PATH = "/hook/tok"
TOKEN = Answer(200, {"access_token": "A21AA-token", "expires_in": 32400})
PAGE = {"batch_header": {"payout_batch_id": "PB-1", "batch_status": "PENDING"}, "items": []}
HUGE = 300 * 1024 * 1024
RSS_LIMIT_KB = 50 * 1024
CREATE_BODY = {"sender_batch_header": {"sender_batch_id": "S-1"}, "items": []}


def _paypal(url: str) -> PaypalClient:
    return PaypalClient(PaypalSettings(url, "client-id", "client-secret", read_timeout=10.0))


def _fbr(url: str) -> FbrClient:
    return FbrClient(FbrSettings(url, read_timeout=10.0), StaticToken(value="fbr-token-1"))


def _webhook(url: str, **settings) -> WebhookSettings:
    return WebhookSettings(url=url + HOOK_PATH, secret="hook-secret-1", **settings)


async def _call(kind: str, url: str) -> str:
    """One call of client ``kind`` against ``url``; a short description of what came back."""
    if kind == "fbr":
        async with _fbr(url) as client:
            result = await client.post_invoice({"invoiceType": "Sale Invoice"})
        return f"{result.outcome.error_code} {result.outcome.delivery}"
    if kind == "paypal_create":
        async with _paypal(url) as client:
            result = await client.create_payout(CREATE_BODY, request_id="R-1")
        return f"{result.outcome.error_code} {result.outcome.delivery}"
    if kind == "paypal_get":
        async with _paypal(url) as client:
            try:
                await client.get_batch("PB-1")
            except httpx.HTTPError as exc:
                return type(exc).__name__
        return "read"
    if kind == "oauth":
        async with httpx.AsyncClient(base_url=url) as http:
            try:
                await ClientCredentials(http, client_id="id", client_secret="secret").token()
            except TokenRefused as exc:
                return str(exc)
        return "token"
    delivery = await asyncio.to_thread(send, sample_alert(), _webhook(url), sleep=lambda _: None)
    return f"delivered={delivery.delivered} attempts={delivery.attempts}"


def call(kind: str, url: str) -> str:
    return asyncio.run(_call(kind, url))


HOSTILE_PATH = {
    "fbr": POST_PATH,
    "paypal_create": PAYOUTS_PATH,
    "paypal_get": BATCH_PATH,
    "oauth": TOKEN_PATH,
    "webhook": HOOK_PATH,
}
EXPECTED = {
    "fbr": "BODY_TOO_LARGE ambiguous",
    "paypal_create": "BODY_TOO_LARGE ambiguous",
    "paypal_get": "BodyTooLarge",
    "oauth": "token endpoint unreachable: BodyTooLarge (response body over 1,000,000 bytes",
    "webhook": "delivered=True attempts=1",
}
CHILD = """
import json, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from retry_pipelines_tests.hostile.test_bounded_reads import call
before = hwm()
result = call(sys.argv[1], sys.argv[2])
print(json.dumps({"before": before, "after": hwm(), "result": result}))
"""


def _hostile(kind: str, answer: Answer) -> dict[str, Answer]:
    return {TOKEN_PATH: TOKEN, HOSTILE_PATH[kind]: answer}


@pytest.mark.parametrize("kind", list(HOSTILE_PATH))
@pytest.mark.parametrize("shape", ["huge_body", "gzip_bomb"])
def test_a_huge_body_or_gzip_bomb_is_abandoned_at_the_cap_without_growing_memory(kind, shape):
    status = 201 if kind == "paypal_create" else 200
    if shape == "huge_body":
        answer = Answer(status, Huge(HUGE), {"Content-Type": "application/json"}, chunked=True)
    else:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        answer = Answer(status, gzip_bomb(), headers)
    with HostileServer(_hostile(kind, answer)) as server:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, kind, server.url],
            capture_output=True,
            text=True,
            check=True,
        )
        [seen] = server.hits(HOSTILE_PATH[kind])  # sent once, never again
        assert seen.done.wait(30)
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["result"].startswith(EXPECTED[kind])
    growth = report["after"] - report["before"]
    sys.stdout.write(f"\n{kind} {shape}: peak RSS +{growth} kB\n")  # shown with -s
    assert growth < RSS_LIMIT_KB
    if shape == "huge_body":  # the bomb (~1 MB) may fit in the socket buffers before the client
        assert seen.client_left  # stops; the huge body is abandoned far before its end
        assert seen.sent < HUGE // 10


def test_a_body_of_exactly_the_cap_is_read_and_one_byte_more_is_not():
    async def read(size: int) -> bytes:
        routes = {"/x": Answer(200, Huge(size), chunked=True)}
        with HostileServer(routes) as server:
            async with httpx.AsyncClient() as http, http.stream("GET", server.url + "/x") as r:
                return await read_bounded(r)

    assert len(asyncio.run(read(MAX_BODY_BYTES))) == MAX_BODY_BYTES
    with pytest.raises(BodyTooLarge, match="over 1,000,000 bytes"):
        asyncio.run(read(MAX_BODY_BYTES + 1))


def test_a_declared_length_over_the_cap_is_refused_before_reading():
    with HostileServer({BATCH_PATH: Answer(200, Huge(HUGE)), TOKEN_PATH: TOKEN}) as server:
        assert call("paypal_get", server.url) == "BodyTooLarge"
        [seen] = server.hits(BATCH_PATH)
        assert seen.done.wait(30)
    assert seen.client_left
    assert seen.sent < HUGE // 10


@pytest.mark.parametrize("kind", ["fbr", "paypal_create", "webhook"])
def test_a_redirect_is_never_followed_so_nothing_is_sent_twice(kind):
    moved = Answer(307, b"", {"Location": "/elsewhere"})
    routes = _hostile(kind, moved) | {"/elsewhere": Answer(200, PAGE)}
    with HostileServer(routes) as server:
        result = call(kind, server.url)
        assert len(server.hits(HOSTILE_PATH[kind], "POST")) == 1
        assert server.hits("/elsewhere") == []
    if kind == "webhook":
        assert result == "delivered=False attempts=1"
    else:  # a Failure (a Created outcome has no error code)
        assert result.split()[0] not in ("", "None")


def test_paypal_create_redirect_is_a_failure_not_a_created_batch():
    moved = Answer(302, b"", {"Location": "/elsewhere"})
    with HostileServer({PAYOUTS_PATH: moved, TOKEN_PATH: TOKEN}) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.create_payout(CREATE_BODY, request_id="R-1")

        result = asyncio.run(go())
        assert server.hits("/elsewhere") == []
    assert result.http_status == 302
    assert result.outcome.error_type is not None  # a Failure, never Created


def test_a_paypal_read_redirect_raises_and_is_not_followed():
    routes = {BATCH_PATH: Answer(301, b"", {"Location": "/elsewhere"}), TOKEN_PATH: TOKEN}
    with HostileServer(routes) as server:
        assert call("paypal_get", server.url) == "HTTPStatusError"
        assert server.hits("/elsewhere") == []


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_an_encoding_not_asked_for_is_a_classified_failure(encoding):
    answer = Answer(201, b"\x00\x01garbage", {"Content-Encoding": encoding})
    with HostileServer({PAYOUTS_PATH: answer, TOKEN_PATH: TOKEN}) as server:
        assert call("paypal_create", server.url) == "UNREADABLE_BODY ambiguous"
        assert len(server.hits(PAYOUTS_PATH)) == 1


def test_a_malformed_gzip_body_is_unreadable_not_a_crash():
    answer = Answer(200, b"\x1f\x8b\x08\x00garbage-not-gzip", {"Content-Encoding": "gzip"})
    with HostileServer({"/x": answer}) as server:

        async def go():
            async with httpx.AsyncClient() as http, http.stream("GET", server.url + "/x") as r:
                return await read_bounded(r)

        with pytest.raises(UnreadableBody, match="malformed compressed body"):
            asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not JSON"),
        ([1, 2, 3], "a JSON list, not an object"),
        ('"just a string"', "a JSON str, not an object"),
    ],
)
def test_a_paypal_read_that_is_not_a_json_object_is_malformed(body, message):
    with HostileServer({BATCH_PATH: Answer(200, body), TOKEN_PATH: TOKEN}) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.get_batch("PB-1")

        with pytest.raises(MalformedAnswer, match=message):
            asyncio.run(go())


def test_a_lying_total_pages_is_not_followed():
    lie = Answer(200, PAGE | {"items": [{"payout_item_id": "I"}], "total_pages": 1_000_000})
    with HostileServer({BATCH_PATH: lie, TOKEN_PATH: TOKEN}) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.get_batch("PB-1")

        with pytest.raises(MalformedAnswer, match="total_pages is 1,000,000; a batch holds"):
            asyncio.run(go())
        assert len(server.hits(BATCH_PATH)) == 1


def test_paging_stops_at_the_pages_a_full_batch_can_fill():
    assert max_pages(1000) == 15
    pages = max_pages(1000)

    def page(seen):
        number = int(dict(p.split("=") for p in seen.query.split("&"))["page"])
        items = [{"payout_item_id": f"I-{number}-{i}"} for i in range(2)]
        return Answer(200, PAGE | {"items": items, "total_pages": pages})

    with HostileServer({BATCH_PATH: page, TOKEN_PATH: TOKEN}) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.get_batch("PB-1")

        data = asyncio.run(go())
        assert len(server.hits(BATCH_PATH)) == pages
    assert len(data["items"]) == 2 * pages
    assert len({item["payout_item_id"] for item in data["items"]}) == 2 * pages


def test_an_empty_page_ends_the_read_even_if_more_pages_are_claimed():
    claims = Answer(200, PAGE | {"items": [], "total_pages": 5})
    with HostileServer({BATCH_PATH: claims, TOKEN_PATH: TOKEN}) as server:
        assert call("paypal_get", server.url) == "read"
        assert len(server.hits(BATCH_PATH)) == 1


def test_a_trickling_webhook_receiver_is_abandoned_at_the_attempt_deadline():
    slow = Answer(200, b"x" * 10_000, trickle=0.2)
    with HostileServer({HOOK_PATH: slow}) as server:
        settings = _webhook(
            server.url, timeout=2.0, connect_timeout=1.0, deadline=1.0, max_attempts=1
        )
        delivery = send(sample_alert(), settings, sleep=lambda _: None)
        [seen] = server.hits(HOOK_PATH)
        assert seen.done.wait(30)
    assert not delivery.delivered
    assert delivery.error.startswith("RequestDeadlineExceeded: request deadline of 1 s passed")
    assert seen.client_left
    assert seen.sent < 10_000
    assert "hook-secret-1" not in delivery.error
    assert "/hook/tok" not in delivery.error


def test_an_oauth_answer_in_an_unknown_encoding_is_token_refused():
    answer = Answer(200, b"\x00", {"Content-Encoding": "br"})
    with HostileServer({TOKEN_PATH: answer}) as server:
        result = call("oauth", server.url)
    assert result.startswith("token endpoint unreachable: UnreadableBody")
    assert "Content-Encoding 'br'" in result


def test_an_fbr_body_over_the_cap_on_a_validate_is_not_delivered():
    answer = Answer(200, Huge(MAX_BODY_BYTES + 10), chunked=True)
    with HostileServer({"/di_data/v1/di/validateinvoicedata": answer}) as server:

        async def go():
            async with _fbr(server.url) as client:
                return await client.validate_invoice({"invoiceType": "Sale Invoice"})

        result = asyncio.run(go())
    failure = result.outcome
    assert (failure.error_type, failure.delivery) == (ErrorType.UNKNOWN, Delivery.NOT_DELIVERED)
    assert failure.error_code == "BODY_TOO_LARGE"
