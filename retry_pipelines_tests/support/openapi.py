"""PayPal's Payouts OpenAPI file as a test oracle: does a body match the schema PayPal publishes?

The file is PayPal's own ``payments_payouts_batch_v1.json`` (OpenAPI 3.0.3). It is kept beside the
repository, not in it: ``<repository's parent>/shared/specs/paypal/payments_payouts_batch_v1.json``
(``$RETRY_PIPELINES_PAYPAL_OPENAPI`` points elsewhere). Tests call ``load_or_skip()`` so they skip
with a message saying where the file was looked for when it is absent.

Bodies are checked with openapi-schema-validator's OAS 3.0 validators (the read flavour for
responses, the write flavour for requests, so ``readOnly``/``writeOnly`` are honoured), ``$ref``
resolved through a ``referencing`` registry holding the whole document, and ``date-time`` formats
checked. A mismatch raises ``SpecMismatch`` naming each failing JSON path::

    validate_response("GET", "/v1/payments/payouts/{id}", 200, body)
    validate_request("POST", "/v1/payments/payouts", payload)
    validate_schema("payout_item-2", item)
"""

from __future__ import annotations

import functools
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPEC_ENV = "RETRY_PIPELINES_PAYPAL_OPENAPI"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_PATH = REPO_ROOT.parent / "shared/specs/paypal/payments_payouts_batch_v1.json"
SPEC_URI = "urn:paypal:payments_payouts_batch_v1"
MAX_REPORTED_ERRORS = 20

_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class SpecMismatch(AssertionError):
    """A body that does not match PayPal's schema; the message lists every failing JSON path."""


def spec_path() -> Path:
    """Where the OpenAPI file is expected (``$RETRY_PIPELINES_PAYPAL_OPENAPI`` wins)."""
    override = os.environ.get(SPEC_ENV)
    return Path(override) if override else DEFAULT_SPEC_PATH


def missing_reason() -> str | None:
    """Why the spec cannot be used, or None when it is there."""
    path = spec_path()
    if path.is_file():
        return None
    return (
        f"PayPal's OpenAPI file is not at {path} (keep payments_payouts_batch_v1.json in "
        f"shared/specs/paypal/ beside the repository, or set ${SPEC_ENV})"
    )


def load_or_skip() -> PayoutsOpenApi:
    """The spec, or a pytest skip saying where it was looked for."""
    import pytest

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    return load()


def load(path: Path | None = None) -> PayoutsOpenApi:
    """The parsed document (once per file); FileNotFoundError when it is absent."""
    return _load(Path(path or spec_path()).resolve())


@functools.cache
def _load(path: Path) -> PayoutsOpenApi:
    return PayoutsOpenApi(path)


def validate_response(method: str, path_template: str, status: int, body: Any) -> None:
    """Check a response body against the operation's schema for ``status`` (else ``default``)."""
    load().validate_response(method, path_template, status, body)


def validate_request(method: str, path_template: str, body: Any) -> None:
    """Check a request body against the operation's request body schema."""
    load().validate_request(method, path_template, body)


def validate_schema(name: str, instance: Any, *, direction: str = "response") -> None:
    """Check ``instance`` against ``#/components/schemas/<name>``."""
    load().validate_schema(name, instance, direction=direction)


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _DATE_TIME.fullmatch(instance):
        return False
    try:
        datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checkers = {**Draft4Validator.FORMAT_CHECKER.checkers, **oas30_format_checker.checkers}
    checker.checks("date-time", raises=ValueError)(_is_date_time)
    return checker


class PayoutsOpenApi:
    """One loaded copy of the document, with validators that resolve its ``$ref``s."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.document: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        self.registry = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(self.document))
        self.format_checker = _format_checker()

    # --- lookups ---

    def operation(self, method: str, path_template: str) -> dict[str, Any]:
        paths = self.document["paths"]
        if path_template not in paths:
            raise KeyError(f"{path_template!r} is not in the spec; paths: {', '.join(paths)}")
        operation = paths[path_template].get(method.lower())
        if operation is None:
            raise KeyError(f"{method.upper()} {path_template} is not in the spec")
        return operation

    def response_schema(self, method: str, path_template: str, status: int) -> dict[str, Any]:
        responses = self.operation(method, path_template)["responses"]
        code = str(status)
        key = next(
            (k for k in (code, f"{code[0]}XX", "default") if k in responses),
            None,
        )
        if key is None:
            raise SpecMismatch(
                f"{method.upper()} {path_template} documents no {status} response (nor default)"
            )
        content = responses[key].get("content", {})
        if "application/json" not in content:
            raise SpecMismatch(f"{method.upper()} {path_template} {key}: no JSON body documented")
        return content["application/json"]["schema"]

    def request_schema(self, method: str, path_template: str) -> dict[str, Any]:
        body = self.operation(method, path_template).get("requestBody")
        if body is None:
            raise SpecMismatch(f"{method.upper()} {path_template} takes no request body")
        return body["content"]["application/json"]["schema"]

    # --- validation ---

    def validate_response(self, method: str, path_template: str, status: int, body: Any) -> None:
        schema = self.response_schema(method, path_template, status)
        self._check(schema, body, OAS30ReadValidator, f"{method.upper()} {path_template} {status}")

    def validate_request(self, method: str, path_template: str, body: Any) -> None:
        schema = self.request_schema(method, path_template)
        where = f"{method.upper()} {path_template} request"
        self._check(schema, body, OAS30WriteValidator, where)

    def validate_schema(self, name: str, instance: Any, *, direction: str = "response") -> None:
        if name not in self.document["components"]["schemas"]:
            raise KeyError(f"no component schema {name!r}")
        validator = OAS30ReadValidator if direction == "response" else OAS30WriteValidator
        self._check({"$ref": f"#/components/schemas/{name}"}, instance, validator, name)

    def errors(self, schema: dict[str, Any], instance: Any, validator_class: Any) -> list[str]:
        """Every mismatch as ``"$.json.path: message"``, sorted by path."""
        root = _rooted(schema)
        validator = validator_class(
            root, registry=self.registry, format_checker=self.format_checker
        )
        found = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
        lines = []
        for error in found:
            lines.append(f"{error.json_path}: {error.message}")
            lines.extend(f"    {c.json_path}: {c.message}" for c in error.context or ())
        return lines

    def _check(self, schema: dict[str, Any], instance: Any, validator_class: Any, where: str):
        lines = self.errors(schema, instance, validator_class)
        if not lines:
            return
        shown = lines[:MAX_REPORTED_ERRORS]
        more = len(lines) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        target = schema.get("$ref", "inline schema").rsplit("/", 1)[-1]
        raise SpecMismatch(
            f"{where} does not match PayPal's schema ({target}):\n  " + "\n  ".join(shown) + tail
        )


def _rooted(node: Any) -> Any:
    """A schema taken out of the document, its ``#/...`` refs made absolute for the registry.

    Refs met after resolution are inside the registered document and resolve against its URI.
    """
    if isinstance(node, dict):
        return {
            key: f"{SPEC_URI}{value}" if _local_ref(key, value) else _rooted(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rooted(value) for value in node]
    return node


def _local_ref(key: str, value: Any) -> bool:
    return key == "$ref" and isinstance(value, str) and value.startswith("#")
