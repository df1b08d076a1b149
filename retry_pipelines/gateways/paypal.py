"""PayPal Payouts client: create a batch with stable idempotency ids, read batches and items.

``sender_batch_id`` and ``PayPal-Request-Id`` come from the batch's row and never change across
retries; a create that may have reached PayPal is retried with the same pair, and PayPal's
"already exists" answer is turned into the original batch (see ``paypal_parse``).

Every request (the create, each page or item read, the OAuth token fetch) runs under an overall
deadline (``PaypalSettings.deadline``: connect, write and reading the body together), so a server
that trickles its answer cannot hold a call much longer than that. A create whose deadline passes
is a NETWORK failure like a read timeout, ambiguous (PayPal may have created the batch; the retry
reuses the same ids); a read raises ``RequestDeadlineExceeded`` (an ``httpx.ReadTimeout``); a token
fetch becomes ``TokenRefused``. A create that meets a 401 fetches a new token and sends again, each
request with its own deadline: at most four deadlines for one ``create_payout``.

Bodies are read through ``read_bounded`` (a capped, decompressed-as-it-arrives stream), redirects
are never followed, and a batch read stops at ``max_pages``: a batch holds at most
``MAX_BATCH_ITEMS`` items, so an answer claiming more pages than that (or a page that is not a
JSON object) is ``MalformedAnswer``, raised after one GET, never followed.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways.http import (
    ACCEPT_ENCODING,
    check_timeouts,
    overall_deadline,
    read_bounded,
    request_deadline,
    transport_failure,
)
from retry_pipelines.gateways.oauth import ClientCredentials, TokenRefused
from retry_pipelines.gateways.paypal_parse import Created, classify_create

PAYOUTS_PATH = "/v1/payments/payouts"
MAX_BATCH_ITEMS = 15_000
"""PayPal's limit on the items of one payout batch."""
PAGE_SIZE = 1000
"""PayPal's largest ``page_size`` for a batch read."""


class MalformedAnswer(ValueError):
    """PayPal answered a read with something it cannot really send (not a JSON object, more
    pages than a batch can fill). The message is bounded."""


def max_pages(page_size: int) -> int:
    """The most pages a batch read can need at ``page_size`` items a page."""
    return math.ceil(MAX_BATCH_ITEMS / page_size)


@dataclass(frozen=True)
class PaypalSettings:
    base_url: str
    client_id: str
    client_secret: str
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    request_deadline: float | None = None
    """Seconds one request may take in all (connect, write, read of the whole body); ``None``:
    ``read_timeout + connect_timeout``."""

    def __post_init__(self) -> None:
        check_timeouts(self)

    @property
    def deadline(self) -> float:
        """The overall deadline of one request, in seconds."""
        return overall_deadline(self)


@dataclass(frozen=True, slots=True)
class CreateResult:
    outcome: Created | Failure
    http_status: int | None
    latency_ms: float


class PaypalClient:
    def __init__(self, settings: PaypalSettings, *, http: httpx.AsyncClient | None = None):
        self.settings = settings
        self._http = http or httpx.AsyncClient(
            base_url=settings.base_url,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            follow_redirects=False,
            headers={"Accept-Encoding": ACCEPT_ENCODING},
        )
        self.oauth = ClientCredentials(
            self._http,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            deadline=settings.deadline,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PaypalClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def create_payout(self, body: dict[str, Any], *, request_id: str) -> CreateResult:
        """POST the batch; a 401 refreshes the token once and retries (it was not processed)."""
        start = time.perf_counter()
        result = await self._create(body, request_id, force_token=False)
        if result.http_status == 401:
            result = await self._create(body, request_id, force_token=True)
        return CreateResult(
            result.outcome, result.http_status, (time.perf_counter() - start) * 1000
        )

    async def _create(self, body: dict, request_id: str, *, force_token: bool) -> CreateResult:
        try:
            token = await self.oauth.token(force=force_token)
        except TokenRefused as exc:
            failure = Failure(ErrorType.TOKEN_EXPIRED, str(exc), Delivery.NOT_DELIVERED, "OAUTH")
            return CreateResult(failure, None, 0.0)
        headers = {
            "Authorization": f"Bearer {token}",
            "PayPal-Request-Id": request_id,
            "Accept": "application/json",
        }
        try:
            async with (
                request_deadline(self.settings.deadline),
                self._http.stream("POST", PAYOUTS_PATH, json=body, headers=headers) as response,
            ):
                content = await read_bounded(response)
        except (httpx.HTTPError, OSError) as exc:
            return CreateResult(transport_failure(exc, side_effects=True), None, 0.0)
        if response.status_code != 401:
            self.oauth.mark_valid()
        outcome = classify_create(response.status_code, response.headers, content)
        return CreateResult(outcome, response.status_code, 0.0)

    async def get_batch(
        self, payout_batch_id: str, *, page_size: int = PAGE_SIZE
    ) -> dict[str, Any]:
        """The batch header and every item, following at most ``max_pages(page_size)`` pages."""
        items: list[dict] = []
        page, header, limit = 1, None, max_pages(page_size)
        while True:
            data = await self._get(
                f"{PAYOUTS_PATH}/{payout_batch_id}",
                params={"page": page, "page_size": page_size, "total_required": "true"},
            )
            header = data.get("batch_header", header)
            page_items = data.get("items") or []
            if not isinstance(page_items, list):
                raise MalformedAnswer(f"page {page}: items is a {type(page_items).__name__}")
            items.extend(page_items)
            total_pages = _total_pages(data.get("total_pages"), limit, page_size)
            if page >= total_pages or not page_items:
                return {"batch_header": header, "items": items}
            page += 1

    async def get_item(self, payout_item_id: str) -> dict[str, Any]:
        return await self._get(f"/v1/payments/payouts-item/{payout_item_id}")

    async def _get(self, path: str, params: dict | None = None) -> dict[str, Any]:
        """One GET's JSON object; raises ``httpx.HTTPError`` (including a body over the cap) or
        ``MalformedAnswer``."""
        for force in (False, True):
            token = await self.oauth.token(force=force)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            async with (
                request_deadline(self.settings.deadline),
                self._http.stream("GET", path, params=params, headers=headers) as response,
            ):
                body = await read_bounded(response)
            if response.status_code != 401:
                break
        response.raise_for_status()
        self.oauth.mark_valid()
        try:
            data = json.loads(body)
        except ValueError:
            raise MalformedAnswer(f"GET {path[:100]}: not JSON") from None
        if not isinstance(data, dict):
            raise MalformedAnswer(f"GET {path[:100]}: a JSON {type(data).__name__}, not an object")
        return data


def _total_pages(value: Any, limit: int, page_size: int) -> int:
    """``total_pages`` as PayPal may really send it (absent: 1)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MalformedAnswer(f"total_pages is {str(value)[:40]!r}, not a page count")
    if value > limit:
        raise MalformedAnswer(
            f"total_pages is {value:,}; a batch holds at most {MAX_BATCH_ITEMS:,} items"
            f" ({limit} pages of {page_size}): not followed"
        )
    return value
