"""The FBR gateway resource: base URL and token from the environment, explicit timeouts."""

import contextlib
from datetime import date
from pathlib import Path

import dagster as dg

from retry_pipelines.defs.resources import check_gateway_settings
from retry_pipelines.domain import deployment
from retry_pipelines.gateways.fbr import FbrClient, FbrSettings
from retry_pipelines.gateways.tokens import StaticToken, TokenUnavailable, UnusableToken

TOKEN_SETTING = "FBR_API_TOKEN"


class FbrResource(dg.ConfigurableResource):
    """FBR Digital Invoicing API. The token is static (issued on IRIS, valid five years)."""

    base_url: str
    token: str | None = None
    token_file: str | None = None
    token_expires_on: str | None = None
    """ISO date the token stops working, for the expiry check."""
    sandbox: bool = False
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    rate_per_second: float = 50.0

    def client(self, connections: int = 32) -> FbrClient:
        """The client, once the settings pass the deployment rules (``domain.deployment``): a
        token that could not be sent as it is (control or non-ASCII characters, whitespace at
        either end) fails the run here, before anything is claimed, naming the setting."""
        expires = date.fromisoformat(self.token_expires_on) if self.token_expires_on else None
        secrets: dict[str, str | None] = {}
        if self.token_file:
            name = f"the token in {self.token_file}"
            source = StaticToken(file=self.token_file, expires_on=expires, name=name)
            try:
                secrets = {name: source.get()}
            except UnusableToken as exc:
                raise deployment.UnsafeConfiguration(list(exc.problems)) from None
            except TokenUnavailable:
                pass  # an unreadable file is reported by the first call, naming the file
        else:
            source = StaticToken(value=self.token, expires_on=expires, name=TOKEN_SETTING)
            secrets = {TOKEN_SETTING: self.token}
        check_gateway_settings("FBR_API_BASE_URL", self.base_url, secrets)
        settings = FbrSettings(
            base_url=self.base_url,
            sandbox=self.sandbox,
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            rate_per_second=self.rate_per_second,
            burst=max(int(self.rate_per_second), 1),
            connections=connections,
        )
        return FbrClient(settings, source)

    def known_secrets(self) -> tuple[str, ...]:
        """The token's values as configured and as sent, for scrubbing what a run reports."""
        values = [self.token, self.token.strip() if self.token else None]
        if self.token_file:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                values.append(Path(self.token_file).read_text().strip())
        return tuple(v for v in values if v)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "fbr": FbrResource(
                base_url=dg.EnvVar("FBR_API_BASE_URL"), token=dg.EnvVar("FBR_API_TOKEN")
            )
        }
    )
