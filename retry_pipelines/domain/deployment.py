"""Configuration rules for a deployment: gateway URLs and secrets.

Always: a gateway URL must be an absolute http(s) URL with a host and no credentials in it, and a
secret (token, client id or secret) must not be empty and must be exactly what is sent: printable
ASCII, no control character (a newline would break the request header), no whitespace at either
end (the value checked is the value sent, never a stripped copy). In production mode
(``RETRY_PIPELINES_ENV=production``) also: only HTTPS, and no weak or default secret (shorter
than 16 characters, fewer than 8 distinct characters, a placeholder such as ``changeme``, or one
of the sandbox's and demo's built-in values). Messages name the setting and the rule, never the
secret's value.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MODE_ENV = "RETRY_PIPELINES_ENV"
PRODUCTION = "production"
MIN_SECRET_LENGTH = 16
MIN_DISTINCT_CHARACTERS = 8

KNOWN_DEFAULT_SECRETS = frozenset(
    {
        # the local sandboxes' and the demo's built-in credentials
        "sandbox-token",
        "demo-sandbox-token",
        "sandbox-client-id",
        "sandbox-client-secret",
    }
)
PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "token",
        "test",
        "testing",
        "example",
        "default",
        "sandbox",
        "demo",
        "xxx",
        "todo",
        "replace-me",
        "your-token-here",
        "your-secret-here",
    }
)


class UnsafeConfiguration(ValueError):
    """A setting breaks a deployment rule; ``problems`` lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


def is_production(mode: str | None) -> bool:
    """``mode`` is the value of ``RETRY_PIPELINES_ENV``; anything but a known one is refused."""
    value = (mode or "development").strip().lower()
    if value not in (PRODUCTION, "development"):
        raise UnsafeConfiguration(
            [f"{MODE_ENV} must be 'production' or 'development', got {mode!r}"]
        )
    return value == PRODUCTION


def gateway_url_problems(name: str, url: str | None, *, production: bool) -> list[str]:
    if not url or not url.strip():
        return [f"{name} is empty"]
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        # checked as the client will use it: a trailing newline would fail every request
        return [f"{name} contains whitespace or a control character (a trailing newline?)"]
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        return [f"{name} is not a valid URL ({exc})"]
    if parts.scheme not in ("http", "https") or not host:
        return [f"{name} must be an absolute http(s) URL with a host"]
    problems = []
    if parts.username or parts.password:
        problems.append(f"{name} must not carry credentials; use the credential settings")
    if production and parts.scheme != "https":
        problems.append(f"{name} must use https in production (plain http would expose secrets)")
    return problems


def secret_format_problems(name: str, value: str | None) -> list[str]:
    """What makes ``value`` unusable as a credential, in any mode; never quotes the value."""
    if not value or not value.strip():
        return [f"{name} is empty"]
    problems = []
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        problems.append(f"{name} contains a control character (a newline, tab or similar)")
    if not value.isascii():
        problems.append(f"{name} contains a non-ASCII character")
    if value != value.strip():
        problems.append(f"{name} has whitespace at its start or end")
    return problems


def secret_problems(name: str, value: str | None, *, production: bool) -> list[str]:
    """``secret_format_problems``, then in production the strength rules, applied to the exact
    value (a padded default is refused as padded, never let through as a different string)."""
    problems = secret_format_problems(name, value)
    if problems or not production:
        return problems
    value = value or ""
    if value in KNOWN_DEFAULT_SECRETS or value.lower() in PLACEHOLDERS:
        return [f"{name} is a built-in default or placeholder value; set the real credential"]
    if len(value) < MIN_SECRET_LENGTH:
        return [f"{name} is too short for production (at least {MIN_SECRET_LENGTH} characters)"]
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return [f"{name} is too repetitive for production (a real credential is random)"]
    return []


def require(problems: list[str]) -> None:
    if problems:
        raise UnsafeConfiguration(problems)
