"""The ``retry_pipelines`` code location's sensors and schedules, paused while the demo runs and
restored afterwards, through the webserver's GraphQL API. The demo runs the Dagster daemon (to
start its queued runs), and the daemon also evaluates automations: many run by default (the retry
sensors, ``stuck_locks_sensor``, the alert sensors, the worklist's sensor and schedule, the
report schedules) and would launch runs of their own on the demo's data.

``pause`` writes every RUNNING sensor and schedule to ``demo_paused_automations.json`` in the home
(``PAUSE_FILE``), with whether that state was the default from code, BEFORE it stops any, so a
demo killed half-way leaves a record. ``restore`` undoes it from that file: an automation that
ran by default is reset to its default (``resetSensor``/``resetSchedule``), one started by hand
is started again (``startSensor``/``startSchedule``); then the file is deleted. The demo restores
at its end (also on an error) and, before pausing, from a file an interrupted demo left: so
``make demo`` again is how to restore them. ``retry-pipelines dev`` cannot restore them itself (it
becomes ``dagster dev``), so it says in one line that the file is there (``paused_note``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retry_pipelines.demo.launch import REPOSITORY, DemoUiError
from retry_pipelines.demo.local import LOCATION

PAUSE_FILE = "demo_paused_automations.json"
SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
KINDS = ("sensor", "schedule")

_LIST = """query List($selector: RepositorySelector!) {
  %(root)s(repositorySelector: $selector) { __typename
    ... on %(plural)s { results { name canReset %(state)s { id status } } }
    ... on Error { message } } }"""
_STOP = """mutation Stop($id: String!) { %s(id: $id) { __typename ... on Error { message } } }"""
_RESTORE = """mutation Restore($selector: %(type)s!) {
  %(field)s(%(arg)s: $selector) { __typename ... on Error { message } } }"""
_GRAPHQL = {
    "sensor": {
        "list": _LIST % {"root": "sensorsOrError", "plural": "Sensors", "state": "sensorState"},
        "root": "sensorsOrError",
        "state": "sensorState",
        "stop": _STOP % "stopSensor",
        "type": "SensorSelector",
        "arg": "sensorSelector",
        "name": "sensorName",
        "done": {"StopSensorMutationResult", "Sensor"},
    },
    "schedule": {
        "list": _LIST
        % {"root": "schedulesOrError", "plural": "Schedules", "state": "scheduleState"},
        "root": "schedulesOrError",
        "state": "scheduleState",
        "stop": _STOP % "stopRunningSchedule",
        "type": "ScheduleSelector",
        "arg": "scheduleSelector",
        "name": "scheduleName",
        "done": {"ScheduleStateResult"},
    },
}
Query = Callable[[str, Mapping[str, Any] | None], dict]
"""``Launcher.query``: a GraphQL query or mutation's ``data``."""


@dataclass(frozen=True)
class Automation:
    kind: str
    """sensor or schedule"""
    name: str
    default: bool
    """Its state was the default from code (nothing stored: ``canReset`` false)."""


@dataclass(frozen=True)
class AutomationState:
    automation: Automation
    status: str
    """RUNNING or STOPPED"""
    state_id: str


def automation_states(query: Query) -> dict[str, AutomationState]:
    """Every sensor and schedule of the code location, by name, with its current state."""
    found: dict[str, AutomationState] = {}
    for kind in KINDS:
        graphql = _GRAPHQL[kind]
        answer = query(graphql["list"], {"selector": SELECTOR})[graphql["root"]]
        if "results" not in answer:
            raise DemoUiError(f"listing the {kind}s of {LOCATION}: {_refusal(answer)}")
        for item in answer["results"]:
            state = item[graphql["state"]]
            automation = Automation(kind, item["name"], default=not item["canReset"])
            found[item["name"]] = AutomationState(automation, state["status"], state["id"])
    return found


def pause(query: Query, home: Path) -> list[Automation]:
    """Stop every running sensor and schedule of the code location, having first written them
    to the pause file in ``home``; the ones stopped."""
    running = [s for s in automation_states(query).values() if s.status == "RUNNING"]
    _write(home, [state.automation for state in running])
    for state in running:
        graphql = _GRAPHQL[state.automation.kind]
        answer = next(iter(query(graphql["stop"], {"id": state.state_id}).values()))
        if answer["__typename"] not in graphql["done"]:
            raise DemoUiError(f"stopping {state.automation.name}: {_refusal(answer)}")
    return [state.automation for state in running]


def restore(query: Query, home: Path) -> int | None:
    """Restore what the pause file in ``home`` lists and delete it; how many it listed, None if
    there was no file. One that no longer exists is passed over; if any other is refused, the
    file keeps those and ``DemoUiError`` says which."""
    path = home / PAUSE_FILE
    if not path.exists():
        return None
    listed = read_pause_file(path)
    refused: list[tuple[Automation, str]] = []
    for automation in listed:
        graphql = _GRAPHQL[automation.kind]
        field = f"{'reset' if automation.default else 'start'}{automation.kind.capitalize()}"
        mutation = _RESTORE % {"type": graphql["type"], "field": field, "arg": graphql["arg"]}
        selector = {**SELECTOR, graphql["name"]: automation.name}
        answer = query(mutation, {"selector": selector})[field]
        if answer["__typename"] not in graphql["done"] and "NotFound" not in answer["__typename"]:
            refused.append((automation, _refusal(answer)))
    if refused:
        _write(home, [automation for automation, _ in refused])
        reasons = "; ".join(f"{automation.name}: {why}" for automation, why in refused)
        raise DemoUiError(f"could not restore {len(refused)} automations ({reasons}); see {path}")
    path.unlink()
    return len(listed)


def read_pause_file(path: Path) -> list[Automation]:
    try:
        listed = json.loads(path.read_text())["paused"]
        return [Automation(a["kind"], a["name"], bool(a["default"])) for a in listed]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoUiError(
            f"{path} is not a pause file the demo wrote ({type(exc).__name__}: {exc}); start "
            f"{LOCATION}'s sensors and schedules in the UI (Automation), then delete it"
        ) from exc


def paused_note(home: Path) -> str | None:
    """One line for ``retry-pipelines dev`` when an interrupted demo left automations paused."""
    path = home / PAUSE_FILE
    if not path.exists():
        return None
    return (
        f"automations: an interrupted demo left {LOCATION}'s sensors and schedules paused (listed "
        f"in {path}); `make demo` restores them first, or start them in the UI (Automation)"
    )


def _write(home: Path, automations: list[Automation]) -> None:
    body = {"location": LOCATION, "paused": [asdict(a) for a in automations]}
    path = home / PAUSE_FILE
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(body, indent=2) + "\n")
    partial.replace(path)  # never a half-written file


def _refusal(answer: Mapping[str, Any]) -> str:
    return f"{answer.get('__typename')} {answer.get('message', '')}".strip()
