"""The alert webhook: its URL and secret come from environment variables read at each tick.

The variables are read through ``dg.EnvVar(...).get_value()`` rather than as ``dg.EnvVar``
config fields: an unset config variable fails every tick with a config error, while an unset
webhook should only make the sensors skip, saying which variable is missing. The values are never
part of the resource's config, so they never show in the UI or in run config.
"""

import os

import dagster as dg
from pydantic import Field

from retry_pipelines.alerts import WebhookSettings
from retry_pipelines.alerts.payload import secrets_from_env
from retry_pipelines.domain import deployment

URL_ENV = "RETRY_PIPELINES_ALERT_WEBHOOK_URL"
SECRET_ENV = "RETRY_PIPELINES_ALERT_WEBHOOK_SECRET"


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts go. Config holds only the names of the variables, never their values."""

    url_env: str = Field(
        default=URL_ENV,
        description="Name of the environment variable holding the webhook's URL (its value is "
        "read at each tick and never shown).",
    )
    secret_env: str = Field(
        default=SECRET_ENV,
        description="Name of the environment variable holding the HMAC secret that signs each "
        "alert (its value is read at each tick and never shown).",
    )
    timeout_seconds: float = Field(
        default=5.0,
        description="Longest wait for the webhook's answer to one delivery, in seconds.",
    )
    max_attempts: int = Field(
        default=3,
        description="Attempts to deliver one alert within a tick; one still not delivered is "
        "sent again on the next tick.",
    )

    def missing(self) -> list[str]:
        """The variables that must still be set before alerts can be sent."""
        return [name for name in (self.url_env, self.secret_env) if not dg.EnvVar(name).get_value()]

    def unsafe(self) -> list[str]:
        """Deployment rules the configured URL and secret break (``domain.deployment``): in
        production mode, a plain-http URL or a weak or default secret."""
        if self.missing():
            return []
        try:
            production = deployment.is_production(os.environ.get(deployment.MODE_ENV))
        except deployment.UnsafeConfiguration as exc:
            return list(exc.problems)
        url = dg.EnvVar(self.url_env).get_value()
        secret = dg.EnvVar(self.secret_env).get_value()
        return deployment.gateway_url_problems(
            self.url_env, url, production=production
        ) + deployment.secret_problems(self.secret_env, secret, production=production)

    def settings(self) -> WebhookSettings | None:
        if self.missing() or self.unsafe():
            return None
        return WebhookSettings(
            url=dg.EnvVar(self.url_env).get_value() or "",
            secret=dg.EnvVar(self.secret_env).get_value() or "",
            timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
        )

    def not_configured_reason(self) -> str:
        if self.missing():
            return f"alert webhook not configured: set {' and '.join(self.missing())}"
        return f"alert webhook refused: {'; '.join(self.unsafe())}"

    def known_secrets(self) -> list[str]:
        """Values an alert must never contain: the webhook's own and the gateways' credentials."""
        return secrets_from_env(os.environ)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"alert_webhook": AlertWebhookResource()})
