"""When the FBR token stops working, from what this deployment knows (never the token itself).

FBR tokens are issued on IRIS for years and carry no expiry the API reports. Sources, first
found wins:

1. ``FBR_API_TOKEN_EXPIRES_AT``: an ISO date (``2027-06-30``) or datetime (UTC when it names no
   offset) an operator sets from IRIS;
2. the ``exp`` claim, when ``FBR_API_TOKEN`` is a JWT (read without verifying; only the claim is
   kept);
3. the expiry a run recorded in ``gateway_state`` (``FbrResource.token_expires_on``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from retry_pipelines.store.tokens import recorded_expiry

__all__ = ["TokenExpiry", "fbr_token_expiry", "jwt_expiry", "parse_expiry", "recorded_expiry"]

EXPIRES_AT_ENV = "FBR_API_TOKEN_EXPIRES_AT"
TOKEN_ENV = "FBR_API_TOKEN"


@dataclass(frozen=True)
class TokenExpiry:
    expires_at: datetime | None
    source: str
    """Where the date came from (a variable's name, ``jwt exp claim``, ``gateway_state``), or
    ``unknown``."""


def parse_expiry(text: str) -> datetime:
    """An ISO date (midnight UTC) or datetime (UTC when naive)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{EXPIRES_AT_ENV} must be an ISO date or datetime, e.g. 2027-06-30"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def jwt_expiry(token: str) -> datetime | None:
    """The ``exp`` claim of a JWT-shaped token, else None. Nothing of the token is returned."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def fbr_token_expiry(environ: Mapping[str, str], recorded: datetime | None) -> TokenExpiry:
    configured = (environ.get(EXPIRES_AT_ENV) or "").strip()
    if configured:
        return TokenExpiry(parse_expiry(configured), EXPIRES_AT_ENV)
    claimed = jwt_expiry(environ.get(TOKEN_ENV) or "")
    if claimed is not None:
        return TokenExpiry(claimed, f"{TOKEN_ENV} jwt exp claim")
    if recorded is not None:
        return TokenExpiry(recorded, "gateway_state")
    return TokenExpiry(None, "unknown")
