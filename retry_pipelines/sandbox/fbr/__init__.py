"""A local FBR Digital Invoicing (DI) server: real HTTP, FBR's response shapes, injected faults.

The retry engine's hardest promise is "no duplicate fiscal invoice": FBR has no idempotency key,
so a post whose answer is lost may or may not have produced an FBR number. This server makes that
measurable. It validates invoices like FBR and issues ``{NTN}DI...`` numbers on the post paths
(``invoices``), answers like the WSO2 gateway in front of FBR (``app``, ``dialect``), and records
every request: which fault it met, whether an FBR number was issued, and the payload's
fingerprint. ``/_sandbox/stats`` then reports ``processed_more_than_once``, the number of
payloads that got two or more numbers (``state``).
"""

from retry_pipelines.sandbox.fbr.app import (
    MAX_BODY_BYTES,
    POST_PATHS,
    VALIDATE_PATHS,
    create_fbr_app,
)
from retry_pipelines.sandbox.fbr.invoices import MISSING_ITEMS_CODE, PKT
from retry_pipelines.sandbox.fbr.state import (
    FBR_FAULT_KINDS,
    FbrSandboxConfig,
    FbrSandboxState,
    fingerprint,
)

__all__ = [
    "FBR_FAULT_KINDS",
    "MAX_BODY_BYTES",
    "MISSING_ITEMS_CODE",
    "PKT",
    "POST_PATHS",
    "VALIDATE_PATHS",
    "FbrSandboxConfig",
    "FbrSandboxState",
    "create_fbr_app",
    "fingerprint",
]
