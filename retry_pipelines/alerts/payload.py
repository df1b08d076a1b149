"""The alert a webhook receives: a small JSON object, every text in it scrubbed of secrets.

``{"id", "kind", "subject", "summary", "details", "occurred_at"}``: ``id`` is stable for one
alert (a receiver can drop a repeated delivery by it), ``kind`` is one of ``KINDS`` (an
``Alert`` of any other kind is refused when made), ``details`` is a JSON object whose fields
depend on the kind, and ``occurred_at`` is an ISO 8601 UTC time.

Kinds: ``run_failure``, ``asset_check_failure``, ``breaker_opened``; and those that need a person:
``items_need_attention`` (a run left items held or dead), ``gateway_paused`` (a gateway refused
the credentials and is paused), ``reconcile_unresolved`` (payout items no longer polled).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from retry_pipelines.domain.scrub import REDACTED, scrub

RUN_FAILURE = "run_failure"
ASSET_CHECK_FAILURE = "asset_check_failure"
BREAKER_OPENED = "breaker_opened"
ITEMS_NEED_ATTENTION = "items_need_attention"
GATEWAY_PAUSED = "gateway_paused"
RECONCILE_UNRESOLVED = "reconcile_unresolved"
KINDS = frozenset(
    {
        RUN_FAILURE,
        ASSET_CHECK_FAILURE,
        BREAKER_OPENED,
        ITEMS_NEED_ATTENTION,
        GATEWAY_PAUSED,
        RECONCILE_UNRESOLVED,
    }
)

_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@")


@dataclass(frozen=True)
class Alert:
    id: str
    kind: str
    subject: str
    summary: str
    occurred_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}: one of {', '.join(sorted(KINDS))}")


def scrub_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without known secrets, credential shapes or passwords in URLs (bounded)."""
    cleaned = scrub(text, secrets) or ""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", cleaned)


def _scrubbed(value: Any, secrets: tuple[str | None, ...]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, Mapping):
        return {scrub_text(str(k), secrets): _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrubbed(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub_text(str(value), secrets)


def to_payload(alert: Alert, secrets: Iterable[str | None] = ()) -> dict[str, Any]:
    """The JSON object sent for ``alert``; every string in it (keys too) is scrubbed."""
    known = tuple(secrets)
    occurred = alert.occurred_at
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return _scrubbed(
        {
            "id": alert.id,
            "kind": alert.kind,
            "subject": alert.subject,
            "summary": alert.summary,
            "details": dict(alert.details),
            "occurred_at": occurred.astimezone(UTC).isoformat(),
        },
        known,
    )


def encode(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed and sent: compact UTF-8 JSON with sorted keys."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


SECRET_ENV_VARS = ("FBR_API_TOKEN", "PAYPAL_CLIENT_SECRET", "RETRY_PIPELINES_ALERT_WEBHOOK_SECRET")
"""Environment variables whose values must never appear in an alert, whatever echoes them."""


PASSWORD_URL_ENV_VARS = ("RETRY_PIPELINES_DATABASE_URL",)
"""URLs whose password must never appear in an alert (the URL itself may)."""
PASSWORD_ENV_VARS = ("DAGSTER_PG_PASSWORD",)


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    found = [environ[name] for name in (*SECRET_ENV_VARS, *PASSWORD_ENV_VARS) if environ.get(name)]
    for name in PASSWORD_URL_ENV_VARS:
        password = _url_password(environ.get(name))
        if password:
            # as written in the URL, and as a driver would quote it back in an error
            found += sorted({password, unquote(password)})
    return found


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None
