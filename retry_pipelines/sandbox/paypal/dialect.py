"""What the PayPal sandbox says in error, in the shapes PayPal really sends (one place for all).

Most bodies follow PayPal's OpenAPI file (``payments_payouts_batch_v1.json``): ``name``,
``message``, ``debug_id`` (13 hex characters), ``information_link``, ``details`` and ``links``.
Where recorded answers (the samples in ``shared/realworld/paypal``) differ from the file, the
recorded shape wins, even where it breaks the schema:

- A payouts call whose bearer token is unknown or expired gets the OAuth-style 401
  ``{"error": "invalid_token", "error_description": "Token signature verification failed"}``
  (recorded on ``POST /v1/payments/payouts``); with no bearer token at all the description is
  "Authorization header does not have valid access token". No ``name``, no ``debug_id``.
- An unknown batch or item id gets 404 ``INVALID_RESOURCE_ID`` ("The requested resource ID was not
  found", empty ``details`` and ``links``), as recorded on ``GET /v1/payments/payouts/{id}``.
- 429 ``RATE_LIMIT_REACHED`` carries ``debugId`` (camelCase) and no ``Retry-After`` header.
- Fault ``http_500`` alternates between the spec's example (``INTERNAL_SERVER_ERROR`` with
  ``debug_id`` and one ``{href, rel}`` link) and the recorded ``INTERNAL_SERVICE_ERROR`` with empty
  ``details``/``links`` and no ``debug_id``; fault ``http_503`` between ``SERVICE_UNAVAILABLE`` in
  the spec's envelope and the recorded ``INTERNAL_SERVICE_ERROR`` (``information_link`` and
  ``debug_id``, no ``message``). The cycles start at a seeded point and restart on reset;
  ``/_sandbox/dialect`` pins one variant (see ``variants``).

Every response built here carries a ``Paypal-Debug-Id`` header, as PayPal's do.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from retry_pipelines.sandbox.variants import Variants

INFORMATION_LINK = "https://developer.paypal.com/docs/api/payments.payouts-batch/v1/#errors"
NOT_FOUND_LINK = "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors"
SERVICE_ERROR_LINK = "https://api.sandbox.paypal.com/docs/api/#INTERNAL_SERVICE_ERROR"
SERVER_ERROR_LINK = "https://developer.paypal.com/api/orders/v2/#error-INTERNAL_SERVER_ERROR"
CYCLES = {
    "http_500": ("spec_example", "service_error"),
    "http_503": ("service_unavailable", "internal_service_error"),
}
TOKEN_DESCRIPTIONS = {
    "missing": "Authorization header does not have valid access token",
    "unknown": "Token signature verification failed",
    "expired": "Token signature verification failed",
}
RATE_LIMIT_MESSAGE = "Too many requests. Blocked due to rate limiting."


class PaypalDialect:
    """The sandbox's shape choices for PayPal's server errors. Thread-safe."""

    def __init__(self, seed: int) -> None:
        self.variants = Variants(seed, CYCLES)

    def reset(self) -> None:
        self.variants.reset()

    def server_error(self, kind: str) -> tuple[int, bytes]:
        """The answer to fault ``http_500`` or ``http_503``, in the cycle's next shape."""
        return VARIANT_BODIES[self.variants.next(kind)]()


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def debug_id() -> str:
    return secrets.token_hex(7)[:13]


def response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with PayPal's ``Paypal-Debug-Id`` header (the body's id when it has one)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    found = (data.get("debug_id") or data.get("debugId")) if isinstance(data, dict) else None
    all_headers = {"Paypal-Debug-Id": found if isinstance(found, str) else debug_id()}
    all_headers |= dict(headers or {})
    return Response(body, status_code=status, media_type="application/json", headers=all_headers)


def link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method, "encType": "application/json"}


def error(
    status: int,
    name: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
) -> tuple[int, bytes]:
    """An error in the OpenAPI file's envelope."""
    body: dict[str, Any] = {
        "name": name,
        "message": message,
        "debug_id": debug_id(),
        "information_link": INFORMATION_LINK,
    }
    if details:
        body["details"] = details
    body["links"] = [{"href": INFORMATION_LINK, "rel": "information_link", "method": "GET"}]
    return status, dumps(body)


def invalid_token(auth_error: str) -> tuple[int, bytes]:
    """The OAuth-style 401 of a payouts call without a token PayPal holds."""
    description = TOKEN_DESCRIPTIONS.get(auth_error, TOKEN_DESCRIPTIONS["unknown"])
    return 401, dumps({"error": "invalid_token", "error_description": description})


def not_found() -> tuple[int, bytes]:
    body = {
        "name": "INVALID_RESOURCE_ID",
        "message": "The requested resource ID was not found",
        "debug_id": debug_id(),
        "information_link": NOT_FOUND_LINK,
        "details": [],
        "links": [],
    }
    return 404, dumps(body)


def rate_limited() -> tuple[int, bytes]:
    """429 as recorded: camelCase ``debugId``, no links, and no Retry-After header."""
    body = {"name": "RATE_LIMIT_REACHED", "message": RATE_LIMIT_MESSAGE, "debugId": debug_id()}
    return 429, dumps(body)


def _spec_example_500() -> tuple[int, bytes]:
    body = {
        "name": "INTERNAL_SERVER_ERROR",
        "message": "An internal server error occurred.",
        "debug_id": debug_id(),
        "links": [{"href": SERVER_ERROR_LINK, "rel": "information_link"}],
    }
    return 500, dumps(body)


def _service_error_500() -> tuple[int, bytes]:
    body = {
        "name": "INTERNAL_SERVICE_ERROR",
        "message": "An internal service error has occurred",
        "details": [],
        "links": [],
    }
    return 500, dumps(body)


def _service_unavailable_503() -> tuple[int, bytes]:
    return error(503, "SERVICE_UNAVAILABLE", "Service Unavailable.")


def _internal_service_error_503() -> tuple[int, bytes]:
    body = {
        "name": "INTERNAL_SERVICE_ERROR",
        "information_link": SERVICE_ERROR_LINK,
        "debug_id": debug_id(),
    }
    return 503, dumps(body)


VARIANT_BODIES = {
    "spec_example": _spec_example_500,
    "service_error": _service_error_500,
    "service_unavailable": _service_unavailable_503,
    "internal_service_error": _internal_service_error_503,
}


def error_name(body: bytes) -> str | None:
    """The ``name`` (or OAuth ``error``) of an error body, None if it has neither."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    name = (data.get("name") or data.get("error")) if isinstance(data, dict) else None
    return name if isinstance(name, str) else None
