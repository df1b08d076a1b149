"""Real-world FBR DI and PayPal Payouts samples as contract fixtures.

The samples are kept beside the repository, not in it: ``<repository's parent>/shared/realworld``
(``$RETRY_PIPELINES_REALWORLD`` points elsewhere), one directory per API (``fbr/``, ``paypal/``).
Each sample is a body file (a response body byte for byte, or a request payload for ``P*``) and
``<stem>.meta.json`` naming it (``body_file``) with ``call``, ``http_status``, ``headers``,
``source``, ``provenance``, ``expected`` (``kind`` and what to assert) and ``why``.

    for s in samples("fbr"):                  # every FBR sample, sorted by file name
        classify(s.http_status, s.headers, s.body, is_post=s.call == "post")
    sample("paypal", "03_")                   # the one sample whose name starts so
    params("fbr", calls={"post", "validate"}) # pytest.param per sample, id "fbr/<stem>"

``samples``/``params`` return nothing (``params``: one skipped param) when the directory is absent,
so collection never fails; ``load_or_skip`` and ``sample`` skip with a message saying where the
samples were looked for.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENV = "RETRY_PIPELINES_REALWORLD"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO_ROOT.parent / "shared/realworld"
APIS = ("fbr", "paypal")


@dataclass(frozen=True)
class Sample:
    api: str
    """``fbr`` or ``paypal``."""
    name: str
    """The file stem: ``16_reconstructed_header01_item_errors_empty_header_error``."""
    call: str
    """``post``, ``validate``, ``request_payload`` (FBR); ``create``, ``token``, ``get_batch``."""
    http_status: int | None
    headers: dict[str, str]
    body: bytes
    """The body file's bytes, exactly as stored."""
    expected: dict[str, Any]
    why: str
    provenance: str
    meta: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.api}/{self.name}"

    @property
    def kind(self) -> str:
        return str(self.expected.get("kind", ""))

    def json(self) -> Any:
        """The body parsed as JSON (strictly: a body that is not JSON raises ``ValueError``)."""
        return json.loads(self.body)


def root() -> Path:
    """Where the samples are expected (``$RETRY_PIPELINES_REALWORLD`` wins)."""
    override = os.environ.get(ENV)
    return Path(override) if override else DEFAULT_PATH


def missing_reason() -> str | None:
    """Why the samples cannot be used, or None when they are there."""
    path = root()
    if any((path / api).is_dir() for api in APIS):
        return None
    return (
        f"real-world samples are not at {path} (keep them in shared/realworld/ beside the "
        f"repository, or set ${ENV})"
    )


@functools.cache
def _load(path: Path) -> tuple[Sample, ...]:
    found = []
    for api in APIS:
        for meta_path in sorted((path / api).glob("*.meta.json")):
            found.append(_sample(api, meta_path))
    return tuple(found)


def _sample(api: str, meta_path: Path) -> Sample:
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    name = meta_path.name.removesuffix(".meta.json")
    body_file = meta.get("body_file")
    body = (meta_path.parent / body_file).read_bytes() if body_file else b""
    expected = meta.get("expected") or {}
    return Sample(
        api=str(meta.get("api") or api),
        name=name,
        call=str(meta.get("call", "")),
        http_status=meta.get("http_status"),
        headers={str(k): str(v) for k, v in (meta.get("headers") or {}).items()},
        body=body,
        expected=expected,
        why=str(meta.get("why") or expected.get("note") or ""),
        provenance=str(meta.get("provenance", "")),
        meta=meta,
    )


def samples(api: str | None = None, calls: Iterable[str] | None = None) -> list[Sample]:
    """Every sample (of ``api``, with a call in ``calls``), sorted by API and file name; an empty
    list when the samples are absent."""
    if missing_reason():
        return []
    wanted = None if calls is None else set(calls)
    return [
        s
        for s in _load(root())
        if (api is None or s.api == api) and (wanted is None or s.call in wanted)
    ]


def load_or_skip(api: str | None = None, calls: Iterable[str] | None = None) -> list[Sample]:
    """``samples(api, calls)``, or a pytest skip saying where they were looked for."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    return samples(api, calls)


def sample(api: str, name_prefix: str) -> Sample:
    """The one sample of ``api`` whose name starts with ``name_prefix`` (``"16_"``, ``"P6"``);
    skips when the samples are absent, ``LookupError`` when none or several match."""
    matches = [s for s in load_or_skip(api) if s.name.startswith(name_prefix)]
    if len(matches) != 1:
        names = ", ".join(s.name for s in matches) or "none"
        raise LookupError(f"{api} samples starting with {name_prefix!r}: {names}")
    return matches[0]


def params(api: str | None = None, calls: Iterable[str] | None = None) -> list:
    """One ``pytest.param(sample, id="<api>/<stem>")`` per sample, for ``parametrize``; when the
    samples are absent, one param that skips saying where they were looked for."""
    reason = missing_reason()
    if reason:
        return [pytest.param(None, id="realworld-missing", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(s, id=s.id) for s in samples(api, calls)]
