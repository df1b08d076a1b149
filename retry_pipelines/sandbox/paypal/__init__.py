"""A local PayPal Payouts v1 server: real HTTP, OAuth tokens, PayPal's shapes, injected faults.

A retrying client must never make a second payout batch, whatever the wire does; this server
keeps PayPal's guards against it (``state``) and records every request, so ``/_sandbox/stats``
can show it did not happen. Its response bodies follow PayPal's OpenAPI file
(``payments_payouts_batch_v1.json``, v1.9; the tests validate them against it) except where
recorded answers differ (``dialect``). ``app`` serves the endpoints, ``validation`` judges a
create's body, ``batches`` makes batches progress and read, ``config`` holds the knobs.
"""

from retry_pipelines.sandbox.paypal.app import (
    BATCH_PATH,
    CANCEL_PATH,
    ITEM_PATH,
    MAX_BODY_BYTES,
    PAYOUTS_PATH,
    TOKEN_PATH,
    create_paypal_app,
)
from retry_pipelines.sandbox.paypal.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    NOT_CREATING_FAULTS,
    PAYPAL_FAULT_KINDS,
    PaypalSandboxConfig,
)
from retry_pipelines.sandbox.paypal.state import DUPLICATE_ISSUE, PaypalSandboxState
from retry_pipelines.sandbox.paypal.validation import validate_create_request

__all__ = [
    "BATCH_PATH",
    "CANCEL_PATH",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DUPLICATE_ISSUE",
    "ITEM_PATH",
    "MAX_BODY_BYTES",
    "NOT_CREATING_FAULTS",
    "PAYOUTS_PATH",
    "PAYPAL_FAULT_KINDS",
    "TOKEN_PATH",
    "PaypalSandboxConfig",
    "PaypalSandboxState",
    "create_paypal_app",
    "validate_create_request",
]
