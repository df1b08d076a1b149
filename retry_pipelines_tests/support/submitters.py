"""A submit step the test scripts, in process: it stands where ``engine.fbr.submitter(client)``
and ``engine.paypal.retry.submitter(engine, client)`` stand, answering each claimed row with the
``Submission`` its script names (no HTTP, no sandbox)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import RowMapping

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.engine.pipeline import Submission


class ScriptedSubmitter:
    """``submit(row)`` answers from ``script[key(row)]``; ``calls`` lists the keys in the order
    the requests left."""

    def __init__(
        self, script: Mapping[Any, Submission], *, key: Callable[[RowMapping], Any]
    ) -> None:
        self.script, self.key = dict(script), key
        self.calls: list[Any] = []

    async def __call__(self, row: RowMapping) -> Submission:
        key = self.key(row)
        self.calls.append(key)
        return self.script[key]


def fbr_accepted(number: str) -> Submission:
    return Submission(None, 200, 15.0, {"fbr_invoice_number": number})


def paypal_created(payout_batch_id: str) -> Submission:
    fields = {"paypal_batch_id": payout_batch_id, "paypal_batch_status": "PENDING"}
    return Submission(None, 201, 20.0, fields)


def transient() -> Submission:
    failure = Failure(ErrorType.TRANSIENT, "service unavailable", error_code="HTTP_503")
    return Submission(failure, 503, 8.0)


def rate_limited(retry_after: float) -> Submission:
    failure = Failure(
        ErrorType.RATE_LIMIT,
        "throttled: Message throttled out",
        error_code="900800",
        http_status=429,
        retry_after=retry_after,
    )
    return Submission(failure, 429, 4.0)


def token_refused() -> Submission:
    failure = Failure(ErrorType.TOKEN_EXPIRED, "invalid credentials", error_code="900901")
    return Submission(failure, 401, 3.0)


def ambiguous_timeout() -> Submission:
    failure = Failure(
        ErrorType.NETWORK, "ReadTimeout: no answer", Delivery.AMBIGUOUS, error_code="ReadTimeout"
    )
    return Submission(failure, None, 30_000.0)


def permanent(code: str = "0052") -> Submission:
    failure = Failure(ErrorType.PERMANENT, "refused for good", error_code=code, http_status=400)
    return Submission(failure, 400, 6.0)
