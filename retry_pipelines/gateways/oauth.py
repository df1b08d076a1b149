"""OAuth2 client-credentials tokens (PayPal): fetched, cached until shortly before they expire,
refreshed once when the API says the token is no longer accepted.

The answer is read through ``read_bounded`` (capped, decompressed as it arrives); one over the cap
or in an encoding not accepted is ``TokenRefused`` like any other unusable answer.

A fetch runs under an overall deadline (connect, write, read of the answer together; default
35 s); when it passes the fetch fails as ``TokenRefused`` like any other unreachable token
endpoint, so the lock that serialises fetches is never held much longer than that."""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from retry_pipelines.gateways.http import (
    RequestDeadlineExceeded,
    UnreadableBody,
    check_deadline,
    read_bounded,
    request_deadline,
    snippet,
)

DEFAULT_DEADLINE = 35.0
"""Seconds a token fetch may take in all, when the caller does not say."""


class TokenRefused(RuntimeError):
    """The token endpoint refused the client credentials (or could not be reached)."""


def parse_token(status: int, body: bytes) -> tuple[str, float]:
    """``(access_token, expires_in seconds)`` from a token endpoint's answer; ``TokenRefused``
    for any other status or an answer without a usable token (the message names the status and
    a bounded snippet, never a token: a refusal carries none)."""
    if status != 200:
        raise TokenRefused(f"token endpoint answered HTTP {status}: {snippet(body)}")
    try:
        data = json.loads(body)
        token, expires_in = str(data["access_token"]), float(data.get("expires_in", 0))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise TokenRefused("token endpoint answered without an access_token") from None
    if not token or not math.isfinite(expires_in):
        raise TokenRefused("token endpoint answered without a usable access_token")
    return token, expires_in


@dataclass
class OAuthState:
    validated_at: datetime | None = None
    expires_in: float | None = None


class ClientCredentials:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str,
        token_path: str = "/v1/oauth2/token",
        margin_seconds: float = 120.0,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("PayPal needs both a client id and a client secret")
        check_deadline("deadline", deadline)
        self._http, self._path, self._margin = http, token_path, margin_seconds
        self.deadline = deadline
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.state = OAuthState()
        self.secret = client_secret

    async def token(self, *, force: bool = False) -> str:
        async with self._lock:
            if force or self._token is None or time.monotonic() >= self._expires_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    def mark_valid(self) -> None:
        self.state.validated_at = datetime.now(UTC)

    async def _fetch(self) -> None:
        try:
            async with (
                request_deadline(self.deadline),
                self._http.stream(
                    "POST",
                    self._path,
                    data={"grant_type": "client_credentials"},
                    auth=self._auth,
                    headers={"Accept": "application/json"},
                ) as response,
            ):
                body = await read_bounded(response)
        except httpx.HTTPError as exc:
            known = isinstance(exc, RequestDeadlineExceeded | UnreadableBody)
            detail = f" ({exc})" if known else ""
            message = f"token endpoint unreachable: {type(exc).__name__}{detail}"
            raise TokenRefused(message) from None
        token, expires_in = parse_token(response.status_code, body)
        self._token = token
        self._expires_at = time.monotonic() + max(expires_in - self._margin, 0.0)
        self.state.expires_in = expires_in
