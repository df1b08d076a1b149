"""The PayPal Payouts resource: base URL and client credentials from the environment."""

import dagster as dg

from retry_pipelines.defs.resources import check_gateway_settings
from retry_pipelines.domain import deployment
from retry_pipelines.gateways.paypal import PaypalClient, PaypalSettings


class PaypalResource(dg.ConfigurableResource):
    """PayPal Payouts API (OAuth2 client credentials)."""

    base_url: str
    client_id: str
    client_secret: str
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0

    def client(self) -> PaypalClient:
        """The client, once the settings pass the deployment rules (``domain.deployment``): a
        client id or secret that could not be sent as it is (control or non-ASCII characters,
        whitespace at either end) fails the run here, before anything is claimed, naming the
        setting, never its value."""
        check_gateway_settings(
            "PAYPAL_API_BASE_URL", self.base_url, {"PAYPAL_CLIENT_SECRET": self.client_secret}
        )
        deployment.require(deployment.secret_format_problems("PAYPAL_CLIENT_ID", self.client_id))
        return PaypalClient(
            PaypalSettings(
                base_url=self.base_url,
                client_id=self.client_id,
                client_secret=self.client_secret,
                connect_timeout=self.connect_timeout_seconds,
                read_timeout=self.read_timeout_seconds,
            )
        )

    def known_secrets(self) -> tuple[str, ...]:
        """The client secret as configured and stripped, for scrubbing what a run reports."""
        return tuple(v for v in (self.client_secret, self.client_secret.strip()) if v)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "paypal": PaypalResource(
                base_url=dg.EnvVar("PAYPAL_API_BASE_URL"),
                client_id=dg.EnvVar("PAYPAL_CLIENT_ID"),
                client_secret=dg.EnvVar("PAYPAL_CLIENT_SECRET"),
            )
        }
    )
