"""Fixtures of the alert sensor tests (``support.attention_alerts``): ``instance`` (an ephemeral
Dagster instance) and ``receiver`` (a running signed-webhook receiver, the variables set)."""

from retry_pipelines_tests.support.attention_alerts import instance, receiver

__all__ = ["instance", "receiver"]
