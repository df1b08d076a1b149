"""A job's launchpad fields as the webserver describes them (GraphQL ``runConfigSchemaOrError``):
every dict of fields an operator fills in, under each op's and each resource's ``config``, with
nested dicts (a list of dicts, e.g. a payout batch's items) followed down.

``execution`` and ``loggers`` are left out: they are Dagster's own, described by Dagster. A
resource whose config takes any value (Dagster's ``io_manager``) has no fields to describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LIST = "-"
"""A path element: one element of a list."""
SECTIONS = ("ops", "resources")
MAX_DEPTH = 8

SCHEMA_QUERY = """
query($selector: PipelineSelector!) { runConfigSchemaOrError(selector: $selector) {
  __typename
  ... on RunConfigSchema { rootConfigType { key } allConfigTypes { __typename key
    ... on CompositeConfigType { fields { name description configTypeKey } }
    ... on WrappingConfigType { ofType { key } } } }
  ... on PythonError { message } ... on PipelineNotFoundError { message }
  ... on InvalidSubsetError { message } } }
"""


@dataclass(frozen=True)
class Container:
    """One dict of launchpad fields: where it is (``path`` of keys, ``LIST`` for a list
    element), its config type's key and its fields' descriptions ('' when a field has none)."""

    path: tuple[str, ...]
    type_key: str
    fields: dict[str, str]

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def probe_yaml(self) -> tuple[str, int]:
        """YAML reaching this dict with one of its fields, and the 0-based line of that field:
        with the editor's cursor there, the launchpad's help panel shows this dict."""
        lines: list[str] = []
        depth, in_list = 0, False
        for key in self.path:
            if key == LIST:
                depth, in_list = depth + 1, True
                continue
            lines.append(f"{_indent(depth, in_list)}{key}:")
            depth, in_list = depth + 1, False
        lines.append(f"{_indent(depth, in_list)}{self.probe}: 0")
        return "\n".join(lines) + "\n", len(lines) - 1

    @property
    def probe(self) -> str:
        """The field the probe YAML names."""
        return sorted(self.fields)[0]


def _indent(depth: int, list_element: bool) -> str:
    return "  " * (depth - 1) + "- " if list_element else "  " * depth


def selector(job: str, location: str, repository: str) -> dict[str, str]:
    return {
        "repositoryLocationName": location,
        "repositoryName": repository,
        "pipelineName": job,
    }


def containers(schema: dict[str, Any]) -> list[Container]:
    """Every dict of fields under ``ops.<op>.config`` and ``resources.<resource>.config`` of a
    ``RunConfigSchema`` answer."""
    types = {t["key"]: t for t in schema["allConfigTypes"]}
    root = types[schema["rootConfigType"]["key"]]
    found: list[Container] = []
    for section in SECTIONS:
        members = _field(root, section)
        if members is None:
            continue
        for member in _composite(types, members["configTypeKey"]).get("fields") or []:
            config = _field(_composite(types, member["configTypeKey"]), "config")
            if config is not None:
                path = (section, member["name"], "config")
                _walk(types, config["configTypeKey"], path, found)
    return found


def _field(config_type: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((f for f in config_type.get("fields") or [] if f["name"] == name), None)


def _composite(types: dict[str, dict], key: str) -> dict[str, Any]:
    config_type = types[key]
    while config_type["__typename"] in ("NullableConfigType", "ArrayConfigType"):
        config_type = types[config_type["ofType"]["key"]]
    return config_type


def _walk(types: dict[str, dict], key: str, path: tuple[str, ...], found: list[Container]):
    if len(path) > MAX_DEPTH:
        return
    config_type = types[key]
    kind = config_type["__typename"]
    if kind == "NullableConfigType":
        _walk(types, config_type["ofType"]["key"], path, found)
    elif kind == "ArrayConfigType":
        _walk(types, config_type["ofType"]["key"], (*path, LIST), found)
    elif kind == "CompositeConfigType" and config_type["fields"]:
        fields = config_type["fields"]
        found.append(Container(path, key, {f["name"]: f["description"] or "" for f in fields}))
        for f in fields:
            _walk(types, f["configTypeKey"], (*path, f["name"]), found)


def normalized(text: str | None) -> str:
    """``text`` with its whitespace runs made single spaces (the UI wraps long descriptions)."""
    return " ".join((text or "").split())
