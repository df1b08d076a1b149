"""Run tags and pools: the names the instance's run queue and concurrency limits key on."""

GATEWAY_TAG = "retry_pipelines/gateway"
"""Which gateway a run talks to (``fbr`` or ``paypal``); the instance runs one at a time per value
(``dagster.yaml``: ``tag_concurrency_limits``)."""

FBR = "fbr"
PAYPAL = "paypal"

POOLS = {FBR: "fbr_api", PAYPAL: "paypal_api"}
"""The pool of the ops that send to each gateway; their limits are set on the instance."""


def gateway_tags(gateway: str) -> dict[str, str]:
    """The tags of every job that acts on ``gateway``'s items."""
    return {GATEWAY_TAG: gateway}
