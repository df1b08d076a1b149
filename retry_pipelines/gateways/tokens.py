"""Static bearer tokens (FBR): read from an environment variable or a secret file, cached.

FBR tokens are issued through the IRIS portal and last five years; there is no refresh endpoint.
"Refreshing" means reading the source again, which picks up a token an operator has rotated. The
manager records when the token was loaded and last accepted, and its configured expiry date, so
a report can warn before it runs out.

A token is used exactly as read (surrounding whitespace, such as a file's final newline,
removed): one that holds a control character or a non-ASCII character could not be sent in a
header, so it is refused as unavailable, naming its source, never quoting it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from retry_pipelines.domain.deployment import secret_format_problems


class TokenUnavailable(RuntimeError):
    """No token could be read from the configured source."""


class UnusableToken(TokenUnavailable):
    """The source holds a token that cannot be sent as it is; ``problems`` name each reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


@dataclass
class TokenState:
    loaded_at: datetime | None = None
    validated_at: datetime | None = None
    expires_on: date | None = None


class StaticToken:
    def __init__(
        self,
        *,
        value: str | None = None,
        env_var: str | None = None,
        file: str | Path | None = None,
        expires_on: date | None = None,
        name: str | None = None,
    ) -> None:
        """``name``: the setting the token comes from, for messages (default: its source)."""
        if not (value or env_var or file):
            raise ValueError("a token needs a source: a value, an environment variable or a file")
        self._value, self._env_var, self._file = value, env_var, Path(file) if file else None
        self._name = name
        self._token: str | None = None
        self._lock = threading.Lock()
        self.state = TokenState(expires_on=expires_on)

    def describe(self) -> str:
        if self._file:
            return f"file {self._file}"
        return f"${self._env_var}" if self._env_var else "configured value"

    def get(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._read()
            return self._token

    def reload(self) -> str:
        """Read the source again; returns the (possibly rotated) token."""
        with self._lock:
            self._token = self._read()
            return self._token

    def mark_valid(self) -> None:
        self.state.validated_at = datetime.now(UTC)

    def _read(self) -> str:
        token = None
        if self._file is not None:
            try:
                token = self._file.read_text().strip()
            except OSError as exc:
                raise TokenUnavailable(
                    f"cannot read token file {self._file}: {exc.strerror}"
                ) from None
        elif self._env_var:
            token = (os.environ.get(self._env_var) or "").strip()
        else:
            token = (self._value or "").strip()
        if not token:
            raise TokenUnavailable(f"no token in {self.describe()}")
        problems = secret_format_problems(self._name or f"the token in {self.describe()}", token)
        if problems:
            raise UnusableToken(problems)
        self.state.loaded_at = datetime.now(UTC)
        return token
