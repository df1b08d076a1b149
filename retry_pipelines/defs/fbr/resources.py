"""The FBR gateway resource: base URL and token read from the environment when they are used,
explicit timeouts.

The variables are not ``dg.EnvVar`` config fields: an unset one would fail every launch before a
run exists. Read here, an unset variable fails a launched run in one line naming it
(``missing``, ``defs.resources.require_variables``) and makes the sensor and schedule skip. The
token is never part of the resource's config unless a caller passes one (tests, benchmarks)."""

import contextlib
import math
from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import check_gateway_settings, env_value, require_variables
from retry_pipelines.domain import deployment
from retry_pipelines.gateways.fbr import FbrClient, FbrSettings
from retry_pipelines.gateways.tokens import StaticToken, TokenUnavailable, UnusableToken

BASE_URL_ENV = "FBR_API_BASE_URL"
TOKEN_ENV = "FBR_API_TOKEN"
RATE_ENV = "FBR_API_RATE_PER_SECOND"
DEFAULT_RATE = 50.0
MAX_RATE = 100_000.0
TOKEN_SETTING = TOKEN_ENV


class FbrResource(dg.ConfigurableResource):
    """FBR Digital Invoicing API. The token is static (issued on IRIS, valid five years)."""

    base_url: str | None = Field(
        default=None,
        description=f"Leave empty (recommended): ${BASE_URL_ENV} is read when a run starts. "
        "The FBR API's base URL, e.g. https://gw.fbr.gov.pk (https in production).",
    )
    token: str | None = Field(
        default=None,
        description=f"Leave empty (recommended): ${TOKEN_ENV} is read when a run starts, so the "
        "token never shows in run config. A token typed here is shown in the run's config.",
    )
    token_file: str | None = Field(
        default=None,
        description="A file on the code location's machine holding the token (read again after "
        f"a 401, so a rotated token is picked up); used instead of ${TOKEN_ENV}.",
    )
    token_expires_on: str | None = Field(
        default=None,
        description="ISO date the token stops working (from IRIS, e.g. 2030-06-30), for the "
        "fbr_token_not_expiring check; empty: FBR_API_TOKEN_EXPIRES_AT or the token's JWT exp.",
    )
    sandbox: bool = Field(
        default=False,
        description="Use FBR's sandbox paths (the _sb endpoints) with a sandbox token, instead of "
        "production's.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0, description="Longest wait to open a connection to FBR, in seconds."
    )
    read_timeout_seconds: float = Field(
        default=30.0, description="Longest wait for FBR's answer to one post, in seconds."
    )
    rate_per_second: float | None = Field(
        default=None,
        description=f"Most posts sent per second from this run, bursts included; empty: "
        f"${RATE_ENV}, else {DEFAULT_RATE:g} (FBR publishes no limit; a 429 pauses the gateway "
        "anyway).",
    )

    def resolved_base_url(self) -> str | None:
        """``base_url``, else ``$FBR_API_BASE_URL`` as it is now; None when neither is set."""
        return self.base_url or env_value(BASE_URL_ENV)

    def resolved_token(self) -> str | None:
        """``token``, else ``$FBR_API_TOKEN`` as it is now (not the token file's); None when
        neither is set."""
        return self.token or env_value(TOKEN_ENV)

    def resolved_rate(self) -> float:
        """``rate_per_second``, else ``$FBR_API_RATE_PER_SECOND``, else ``DEFAULT_RATE``; a value
        that is not a number in (0, ``MAX_RATE``] fails the run in one line naming the setting."""
        name, value = "rate_per_second", self.rate_per_second
        if value is None:
            raw = env_value(RATE_ENV)
            if raw is None:
                return DEFAULT_RATE
            name = RATE_ENV
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
        if not 0 < value <= MAX_RATE:  # also refuses NaN
            raise deployment.UnsafeConfiguration(
                [f"{name} must be a number of posts per second in (0, {MAX_RATE:g}]"]
            )
        return value

    def missing(self) -> list[str]:
        """The variables that must still be set before FBR can be called (empty: none)."""
        missing = [] if self.resolved_base_url() else [BASE_URL_ENV]
        if not self.token_file and not self.resolved_token():
            missing.append(TOKEN_ENV)
        return missing

    def client(self, connections: int = 32) -> FbrClient:
        """The client, once the settings pass the deployment rules (``domain.deployment``): a
        variable not set fails the step in one line naming it; a token that could not be sent as
        it is (control or non-ASCII characters, whitespace at either end) fails the run here,
        before anything is claimed, naming the setting."""
        require_variables(self.missing())
        expires = date.fromisoformat(self.token_expires_on) if self.token_expires_on else None
        base_url = self.resolved_base_url()
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
            token = self.resolved_token()
            source = StaticToken(value=token, expires_on=expires, name=TOKEN_SETTING)
            secrets = {TOKEN_SETTING: token}
        check_gateway_settings(BASE_URL_ENV, base_url, secrets)
        rate = self.resolved_rate()
        settings = FbrSettings(
            base_url=base_url or "",
            sandbox=self.sandbox,
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            rate_per_second=rate,
            burst=max(int(rate), 1),
            connections=connections,
        )
        return FbrClient(settings, source)

    def known_secrets(self) -> tuple[str, ...]:
        """The token's values as configured and as sent, for scrubbing what a run reports."""
        token = self.resolved_token()
        values = [token, token.strip() if token else None]
        if self.token_file:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                values.append(Path(self.token_file).read_text().strip())
        return tuple(v for v in values if v)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"fbr": FbrResource()})
