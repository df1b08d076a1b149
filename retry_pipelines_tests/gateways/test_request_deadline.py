"""Every gateway request ends within its overall deadline, even against a server that trickles.

httpx's read timeout is per read: a server sending one byte every 0.5 s never trips a 2 s read
timeout. The server here does exactly that (from the status line, or only the body), and records
what it saw; each test asserts from the server's side that the client hung up before the trickle
was done, and from the client's side how the call was classified. No wall-clock thresholds: the
read timeout (2 s) is far longer than the gap between bytes, so only the deadline (1 s) can end a
call, and the trickle would take far longer than the test waits.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import httpx
import pytest

from retry_pipelines.domain.errors import Delivery, ErrorType
from retry_pipelines.gateways.fbr import FbrClient, FbrSettings
from retry_pipelines.gateways.http import RequestDeadlineExceeded
from retry_pipelines.gateways.oauth import ClientCredentials, TokenRefused
from retry_pipelines.gateways.paypal import PaypalClient, PaypalSettings
from retry_pipelines.gateways.tokens import StaticToken
from retry_pipelines_tests.support.loop_server import LoopServer

INTERVAL = 0.5
"""Seconds between two trickled bytes."""
DEADLINE = 1.0
READ_TIMEOUT = 2.0
"""Longer than INTERVAL: the per-read timeout never trips against the trickle."""

FBR_ACCEPTED = json.dumps(
    {
        "invoiceNumber": "7000007DI1747119701593",
        "dated": "2025-05-13 12:01:41",
        "validationResponse": {"statusCode": "00", "status": "Valid", "errorCode": ""},
    }
).encode()
TOKEN_BODY = json.dumps({"access_token": "A21AA-token", "expires_in": 32400}).encode()
PAYPAL_BATCH = json.dumps(
    {"batch_header": {"payout_batch_id": "PB-1", "batch_status": "PENDING"}, "items": []}
).encode()


@dataclass
class Trickle:
    """One trickled answer, as the server saw it."""

    path: str
    total: int
    sent: int = 0
    client_left: threading.Event = field(default_factory=threading.Event)
    finished: bool = False


class TrickleServer(LoopServer):
    """A raw HTTP/1.1 server in a thread. Paths in ``trickle`` get their answer one byte per
    ``INTERVAL`` (``"all"``: from the status line on; ``"body"``: headers at once, then the
    body); other paths in ``answers`` are answered at once."""

    def __init__(self, trickle: dict[str, str], answers: dict[str, bytes]) -> None:
        super().__init__()
        self.trickle, self.answers = trickle, answers
        self.trickles: list[Trickle] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path, length = _request_line_path(head), _content_length(head)
            await reader.readexactly(length)
            body = self.answers.get(path, b"{}")
            headers = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            mode = self.trickle.get(path)
            if mode is None:
                writer.write(headers + body)
                await writer.drain()
            elif mode == "body":
                writer.write(headers)
                await writer.drain()
                await self._trickle(path, body, reader, writer)
            else:
                await self._trickle(path, headers + body, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _trickle(
        self, path: str, data: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        record = Trickle(path, len(data))
        self.trickles.append(record)

        async def watch() -> None:  # the client sends nothing more: EOF means it hung up
            await reader.read(1)
            record.client_left.set()

        watcher = asyncio.create_task(watch())
        try:
            for i in range(len(data)):
                if record.client_left.is_set():
                    return
                writer.write(data[i : i + 1])
                await writer.drain()
                record.sent += 1
                await asyncio.sleep(INTERVAL)
            record.finished = True
        except ConnectionError:
            record.client_left.set()
        finally:
            watcher.cancel()


def _request_line_path(head: bytes) -> str:
    target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
    return target.split("?", 1)[0]


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _hung_up_early(server: TrickleServer, path: str) -> Trickle:
    """The trickle to ``path``, once the server saw the client leave before it was done."""
    [record] = [t for t in server.trickles if t.path == path]
    assert record.client_left.wait(10), f"the client never hung up on {path}"
    assert not record.finished
    assert record.sent < record.total
    return record


def _fbr(url: str) -> FbrClient:
    settings = FbrSettings(
        base_url=url,
        connect_timeout=1.0,
        read_timeout=READ_TIMEOUT,
        request_deadline=DEADLINE,
        rate_per_second=1000,
        burst=1000,
    )
    return FbrClient(settings, StaticToken(value="fbr-token"))


def _paypal(url: str) -> PaypalClient:
    settings = PaypalSettings(
        url,
        "client-id",
        "client-secret",
        connect_timeout=1.0,
        read_timeout=READ_TIMEOUT,
        request_deadline=DEADLINE,
    )
    return PaypalClient(settings)


FBR_POST = "/di_data/v1/di/postinvoicedata"
FBR_VALIDATE = "/di_data/v1/di/validateinvoicedata"
TOKEN = "/v1/oauth2/token"
PAYOUTS = "/v1/payments/payouts"


@pytest.mark.parametrize("mode", ["all", "body"])
def test_fbr_post_ends_at_its_deadline_as_an_ambiguous_network_failure(mode):
    with TrickleServer({FBR_POST: mode}, {FBR_POST: FBR_ACCEPTED}) as server:

        async def go():
            async with _fbr(server.url) as client:
                return await client.post_invoice({"items": []})

        result = asyncio.run(go())
        _hung_up_early(server, FBR_POST)
    failure = result.outcome
    assert (failure.error_type, failure.delivery) == (ErrorType.NETWORK, Delivery.AMBIGUOUS)
    assert failure.error_code == "RequestDeadlineExceeded"
    assert failure.message == "RequestDeadlineExceeded: request deadline of 1 s passed"
    assert result.http_status is None


def test_fbr_validation_ends_at_its_deadline_and_was_not_delivered():
    with TrickleServer({FBR_VALIDATE: "body"}, {FBR_VALIDATE: FBR_ACCEPTED}) as server:

        async def go():
            async with _fbr(server.url) as client:
                return await client.validate_invoice({"items": []})

        result = asyncio.run(go())
        _hung_up_early(server, FBR_VALIDATE)
    assert (result.outcome.error_type, result.outcome.delivery) == (
        ErrorType.NETWORK,
        Delivery.NOT_DELIVERED,
    )


def test_paypal_create_ends_at_its_deadline_as_an_ambiguous_network_failure():
    answers = {TOKEN: TOKEN_BODY, PAYOUTS: PAYPAL_BATCH}
    with TrickleServer({PAYOUTS: "all"}, answers) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.create_payout({"items": []}, request_id="RQ-1")

        result = asyncio.run(go())
        _hung_up_early(server, PAYOUTS)
    failure = result.outcome
    assert (failure.error_type, failure.delivery) == (ErrorType.NETWORK, Delivery.AMBIGUOUS)
    assert failure.error_code == "RequestDeadlineExceeded"
    assert "request deadline of 1 s passed" in failure.message


def test_paypal_get_ends_at_its_deadline_with_a_read_timeout():
    answers = {TOKEN: TOKEN_BODY, f"{PAYOUTS}/PB-1": PAYPAL_BATCH}
    with TrickleServer({f"{PAYOUTS}/PB-1": "body"}, answers) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.get_batch("PB-1")

        with pytest.raises(httpx.ReadTimeout, match="request deadline of 1 s passed") as caught:
            asyncio.run(go())
        _hung_up_early(server, f"{PAYOUTS}/PB-1")
    assert isinstance(caught.value, RequestDeadlineExceeded)


def test_oauth_token_call_ends_at_its_deadline_as_token_refused():
    with TrickleServer({TOKEN: "body"}, {TOKEN: TOKEN_BODY}) as server:

        async def go():
            async with httpx.AsyncClient(
                base_url=server.url, timeout=httpx.Timeout(READ_TIMEOUT, connect=1.0)
            ) as http:
                oauth = ClientCredentials(
                    http, client_id="client-id", client_secret="client-secret", deadline=DEADLINE
                )
                return await oauth.token()

        with pytest.raises(TokenRefused, match="request deadline of 1 s passed"):
            asyncio.run(go())
        _hung_up_early(server, TOKEN)


def test_paypal_create_whose_token_call_trickles_was_not_delivered():
    with TrickleServer({TOKEN: "all"}, {TOKEN: TOKEN_BODY, PAYOUTS: PAYPAL_BATCH}) as server:

        async def go():
            async with _paypal(server.url) as client:
                return await client.create_payout({"items": []}, request_id="RQ-1")

        result = asyncio.run(go())
        # the 401-free path fetches the token once; the create itself was never sent
        _hung_up_early(server, TOKEN)
    failure = result.outcome
    assert (failure.error_type, failure.delivery) == (
        ErrorType.TOKEN_EXPIRED,
        Delivery.NOT_DELIVERED,
    )
    assert "request deadline of 1 s passed" in failure.message
