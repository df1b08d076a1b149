"""The deployment kit's files read as data, and the names the code reads from its environment, for
the tests that check one against the other (no Docker or Kubernetes needed)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retry_pipelines import config
from retry_pipelines.alerts.payload import PASSWORD_ENV_VARS, PASSWORD_URL_ENV_VARS, SECRET_ENV_VARS
from retry_pipelines.defs.alerts import attention
from retry_pipelines.defs.alerts import resources as alert_resources
from retry_pipelines.defs.fbr import resources as fbr_resources
from retry_pipelines.defs.paypal import resources as paypal_resources
from retry_pipelines.domain import deployment
from retry_pipelines.reports import tokens

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
INSTANCE = DEPLOY / "postgres" / "dagster.yaml"

CODE_SERVICE = "retry_pipelines"
LOCATION_NAME = "retry_pipelines"

APP_VARIABLES = frozenset(
    {
        config.DATABASE_URL_ENV,
        config.ADMIN_ALLOWLIST_ENV,
        fbr_resources.BASE_URL_ENV,
        fbr_resources.TOKEN_ENV,
        fbr_resources.RATE_ENV,
        tokens.EXPIRES_AT_ENV,
        paypal_resources.BASE_URL_ENV,
        paypal_resources.CLIENT_ID_ENV,
        paypal_resources.CLIENT_SECRET_ENV,
        alert_resources.URL_ENV,
        alert_resources.SECRET_ENV,
        attention.UI_URL_ENV,
        attention.THRESHOLD_ENV,
        deployment.MODE_ENV,
    }
)
"""Every variable the code location reads: gateways, app database, alerts, deployment rules."""

SECRET_VARIABLES = frozenset(
    {*SECRET_ENV_VARS, *PASSWORD_ENV_VARS, *PASSWORD_URL_ENV_VARS, paypal_resources.CLIENT_ID_ENV}
)
"""Variables whose values are credentials (a database URL carries its password)."""

SECRET_LIKE_NAME = re.compile(r"password|secret|token|credential|private|api_?key", re.IGNORECASE)
REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::\?[^}]*)?\}$")
"""``${NAME}`` or ``${NAME:?message}``: a value from the environment, with no default."""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pinned_versions() -> dict[str, str]:
    """``name -> version`` of every ``name==version`` requirement in pyproject.toml."""
    project = pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = (re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", r.strip()) for r in requirements)
    return {m.group(1).lower(): m.group(2) for m in pins if m}


def instance_variables(path: Path = INSTANCE) -> set[str]:
    """The variables an instance file reads (``env: NAME`` leaves)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"} and isinstance(node["env"], str):
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_yaml(path))
    return found


def env_example_names() -> tuple[set[str], set[str]]:
    """The names .env.example sets (``NAME=``) and those it documents commented out."""
    assigned, commented = set(), set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            assigned.add(m.group(1))
        elif m := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=\s*", line.strip()):
            commented.add(m.group(1))
    return assigned, commented


def env_example_values() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            values[m.group(1)] = m.group(2)
    return values


@dataclass
class Stage:
    """One ``FROM ... AS name`` stage of the Dockerfile: its base and its instructions."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, base first."""
        stages = [self.stages[name]]
        while stages[0].base in self.stages:
            stages.insert(0, self.stages[stages[0].base])
        return stages

    def built_from(self, name: str) -> list[Stage]:
        """Every stage whose work ends up in the target: its chain, and the stages it copies
        from (``COPY --from``), theirs too."""
        stages: list[Stage] = []
        for stage in self.chain(name):
            for args in stage.all("COPY"):
                if m := re.match(r"--from=(\S+)", args):
                    stages += [s for s in self.built_from(m.group(1)) if s not in stages]
            if stage not in stages:
                stages.append(stage)
        return stages

    def final(self, name: str) -> dict[str, str]:
        """A target's last ENV values, USER, CMD (as JSON text) and WORKDIR over its chain."""
        settings: dict[str, str] = {}
        for stage in self.chain(name):
            for keyword, args in stage.instructions:
                if keyword == "ENV":
                    settings.update(parse_env(args))
                elif keyword in ("USER", "CMD", "WORKDIR", "ENTRYPOINT"):
                    settings[keyword] = args
        return settings


def logical_lines(text: str) -> list[str]:
    """Instructions with their ``\\`` continuations joined, comments and blanks dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse_env(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args) if "=" in part)


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stage = Stage(name=name.strip(), base=base.strip())
            stages[stage.name] = stage
        elif stage is None:
            if keyword == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                global_args[key] = value
        else:
            stage.instructions.append((keyword, args))
    return Dockerfile(global_args, stages)


def code_server_command() -> list[str]:
    """The code server's command as the Dockerfile's ``code`` target runs it."""
    return json.loads(read_dockerfile().final("code")["CMD"])


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def helm_code_deployment() -> dict[str, Any]:
    (deployment_,) = load_yaml(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    return deployment_


def is_secret_name(name: str) -> bool:
    """A variable or key that holds a credential (``...SecretName`` names a Secret object)."""
    if name in SECRET_VARIABLES:
        return True
    return bool(SECRET_LIKE_NAME.search(name)) and not name.endswith("Name")


def secret_literals(node: Any, path: str = "") -> list[str]:
    """Paths of string values under a secret-like key that are not ``${NAME}`` references (names
    of Secret objects, ``...SecretName``, are not values)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if is_secret_name(str(key)) and isinstance(value, str) and not REFERENCE.match(value):
                found.append(here)
            found += secret_literals(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += secret_literals(value, f"{path}[{index}]")
    return found
