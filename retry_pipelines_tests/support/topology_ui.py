"""What an operator does in the Dagster UI, through the webserver's GraphQL API (the same calls
the UI makes): start and stop sensors and schedules, read a pool's claimed slots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from retry_pipelines.demo.automations import SELECTOR, AutomationState, automation_states
from retry_pipelines.demo.local import LOCATION

START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } }
  ... on PythonError { message } } }"""
STOP_SCHEDULE = """mutation($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
POOLS = """{ instance { concurrencyLimits { concurrencyKey slotCount limit
  claimedSlots { runId stepKey } } } }"""


class UiError(RuntimeError):
    """The webserver refused a call or answered with an error."""


class Operator:
    """GraphQL calls on the webserver at ``client``'s base URL."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        answer = self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise UiError(f"GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]

    def start_sensor(self, name: str) -> str:
        """Turn the sensor ``name`` on; its status afterwards."""
        result = self.query(START_SENSOR, {"s": _selector("sensorName", name)})["startSensor"]
        return _status(result, "sensorState", name)

    def stop_sensor(self, name: str) -> str:
        result = self.query(STOP_SENSOR, {"id": self._state(name).state_id})["stopSensor"]
        return _status(result, "instigationState", name)

    def stop_schedule(self, name: str) -> str:
        result = self.query(STOP_SCHEDULE, {"id": self._state(name).state_id})
        return _status(result["stopRunningSchedule"], "scheduleState", name)

    def sensor_status(self, name: str) -> str:
        return self._state(name).status

    def _state(self, name: str) -> AutomationState:
        """The sensor's or schedule's current state, as the demo reads them."""
        found = automation_states(self.query)
        if name not in found:
            raise UiError(f"{name}: no such sensor or schedule in {LOCATION}")
        return found[name]

    def claimed_slots(self, pool: str) -> tuple[int | None, list[str]]:
        """The pool's limit and the run ids holding its slots (as the UI's Concurrency page)."""
        for info in self.query(POOLS)["instance"]["concurrencyLimits"]:
            if info["concurrencyKey"] == pool:
                return info["limit"], [slot["runId"] for slot in info["claimedSlots"]]
        return None, []


def _selector(key: str, name: str) -> dict[str, str]:
    return {**SELECTOR, key: name}


def _status(result: Mapping[str, Any], state_key: str, name: str, *, field: str = "status") -> str:
    state = result.get(state_key)
    if not state:
        raise UiError(f"{name}: {result.get('__typename')} {result.get('message', '')}".strip())
    return state[field]
