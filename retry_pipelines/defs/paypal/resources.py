"""The PayPal Payouts resource: base URL and client credentials read from the environment when
they are used (not ``dg.EnvVar`` config fields, so an unset one fails a launched run in one line
naming it, and the sensor and schedules skip; see ``defs.fbr.resources``)."""

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import check_gateway_settings, env_value, require_variables
from retry_pipelines.domain import deployment
from retry_pipelines.gateways.paypal import PaypalClient, PaypalSettings

BASE_URL_ENV = "PAYPAL_API_BASE_URL"
CLIENT_ID_ENV = "PAYPAL_CLIENT_ID"
CLIENT_SECRET_ENV = "PAYPAL_CLIENT_SECRET"


class PaypalResource(dg.ConfigurableResource):
    """PayPal Payouts API (OAuth2 client credentials)."""

    base_url: str | None = Field(
        default=None,
        description=f"Leave empty (recommended): ${BASE_URL_ENV} is read when a run starts. "
        "https://api-m.paypal.com (live) or https://api-m.sandbox.paypal.com.",
    )
    client_id: str | None = Field(
        default=None,
        description=f"Leave empty (recommended): ${CLIENT_ID_ENV} is read when a run starts.",
    )
    client_secret: str | None = Field(
        default=None,
        description=f"Leave empty (recommended): ${CLIENT_SECRET_ENV} is read when a run starts, "
        "so the secret never shows in run config. A secret typed here is shown in the run's "
        "config.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0, description="Longest wait to open a connection to PayPal, in seconds."
    )
    read_timeout_seconds: float = Field(
        default=30.0, description="Longest wait for PayPal's answer to one request, in seconds."
    )

    def resolved(self) -> dict[str, str | None]:
        """Each setting's variable name -> its value (config first, else the environment as it
        is now; None when neither is set)."""
        return {
            BASE_URL_ENV: self.base_url or env_value(BASE_URL_ENV),
            CLIENT_ID_ENV: self.client_id or env_value(CLIENT_ID_ENV),
            CLIENT_SECRET_ENV: self.client_secret or env_value(CLIENT_SECRET_ENV),
        }

    def missing(self) -> list[str]:
        """The variables that must still be set before PayPal can be called (empty: none)."""
        return [name for name, value in self.resolved().items() if not value]

    def client(self) -> PaypalClient:
        """The client, once the settings pass the deployment rules (``domain.deployment``): a
        variable not set fails the step in one line naming it; a client id or secret that could
        not be sent as it is (control or non-ASCII characters, whitespace at either end) fails
        the run here, before anything is claimed, naming the setting, never its value."""
        require_variables(self.missing())
        values = self.resolved()
        base_url, client_id = values[BASE_URL_ENV], values[CLIENT_ID_ENV]
        secret = values[CLIENT_SECRET_ENV]
        check_gateway_settings(BASE_URL_ENV, base_url, {CLIENT_SECRET_ENV: secret})
        deployment.require(deployment.secret_format_problems(CLIENT_ID_ENV, client_id))
        return PaypalClient(
            PaypalSettings(
                base_url=base_url or "",
                client_id=client_id or "",
                client_secret=secret or "",
                connect_timeout=self.connect_timeout_seconds,
                read_timeout=self.read_timeout_seconds,
            )
        )

    def known_secrets(self) -> tuple[str, ...]:
        """The client secret as configured and stripped, for scrubbing what a run reports."""
        secret = self.resolved()[CLIENT_SECRET_ENV]
        return tuple(v for v in (secret, secret.strip() if secret else None) if v)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"paypal": PaypalResource()})
