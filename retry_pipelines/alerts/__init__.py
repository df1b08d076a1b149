"""Alerts as signed webhooks: the payload, the signature scheme, delivery and verification.

Pure Python (httpx, no dagster): the sensors in ``defs/alerts`` turn Dagster events into
:class:`Alert` values and call :func:`send`; a receiver calls :func:`verify`.
"""

from retry_pipelines.alerts.payload import Alert, encode, to_payload
from retry_pipelines.alerts.signing import (
    SIGNATURE_HEADER,
    SIGNATURE_SCHEME,
    TIMESTAMP_HEADER,
    FutureTimestamp,
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    StaleTimestamp,
    WebhookVerificationError,
    sign,
    verify,
)
from retry_pipelines.alerts.webhook import Delivery, WebhookSettings, send

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "TIMESTAMP_HEADER",
    "Alert",
    "Delivery",
    "FutureTimestamp",
    "MalformedHeader",
    "MissingHeader",
    "SignatureMismatch",
    "StaleTimestamp",
    "WebhookSettings",
    "WebhookVerificationError",
    "encode",
    "send",
    "sign",
    "to_payload",
    "verify",
]
