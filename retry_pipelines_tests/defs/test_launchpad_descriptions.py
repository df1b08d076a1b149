"""Every launchpad field of every job in the code location has help text, and every choice is an
enum whose allowed values the help names.

The walk follows each job's run config schema as the launchpad shows it: each op's ``config``
(nested graphs too) and each resource's ``config``, into nested shapes, lists, maps and optional
values. Dagster's own sections (``execution``, ``loggers``) and its default ``io_manager`` are
not ours to describe."""

from collections.abc import Iterator

import dagster as dg
import pytest

from retry_pipelines.definitions import defs

DAGSTER_RESOURCES = {"io_manager"}
"""Dagster's default I/O manager: its ``base_dir`` is Dagster's field (the report assets return
metadata only, so nothing goes through it)."""

CHOICES = {
    # (job, field path): the allowed values, or None where any values will do
    ("show_item", "ops.show_one_item.config.gateway"): {"fbr", "paypal"},
    ("resume_gateway", "ops.resume_one_gateway.config.gateway"): {"fbr", "paypal"},
    ("record_payout_batch", "ops.record_one_payout_batch.config.items[].recipient_type"): {
        "EMAIL",
        "PHONE",
        "PAYPAL_ID",
    },
    ("resolve_held_invoice", "ops.resolve_one_held_invoice.config.action"): None,
    ("override_payout_batch_status", "ops.override_one_payout_batch.config.new_status"): None,
}
"""Fields whose value is one of a fixed set: each must be an enum in the launchpad."""


def _jobs() -> list[dg.JobDefinition]:
    return list(defs().get_repository_def().get_all_jobs())


def _unwrapped(config_type):
    while isinstance(config_type, dg.Noneable):
        config_type = config_type.inner_type
    return config_type


def _fields(config_type, path: str) -> Iterator[tuple[str, dg.Field]]:
    """Every field under ``config_type`` (a config's type), with its dotted path."""
    config_type = _unwrapped(config_type)
    if isinstance(config_type, dg.Shape | dg.Permissive | dg.Selector):
        for name, field in config_type.fields.items():
            yield f"{path}.{name}", field
            yield from _fields(field.config_type, f"{path}.{name}")
    elif isinstance(config_type, dg.Array | dg.Map):
        yield from _fields(config_type.inner_type, f"{path}[]")


def _node_configs(nodes_type, path: str) -> Iterator[tuple[str, object]]:
    """Each op's ``config`` type under an ``ops`` section, graphs' inner ops included."""
    for name, node in _unwrapped(nodes_type).fields.items():
        node_type = _unwrapped(node.config_type)
        if not isinstance(node_type, dg.Shape):
            continue
        if "config" in node_type.fields:
            yield f"{path}.{name}.config", node_type.fields["config"].config_type
        if "ops" in node_type.fields:
            yield from _node_configs(node_type.fields["ops"].config_type, f"{path}.{name}.ops")


def _resource_configs(resources_type) -> Iterator[tuple[str, object]]:
    for name, resource in _unwrapped(resources_type).fields.items():
        resource_type = _unwrapped(resource.config_type)
        if name in DAGSTER_RESOURCES or not isinstance(resource_type, dg.Shape):
            continue
        if "config" in resource_type.fields:
            yield f"resources.{name}.config", resource_type.fields["config"].config_type


def launchpad_fields(job: dg.JobDefinition) -> dict[str, dg.Field]:
    """The job's launchpad fields that are ours, by path (``ops.<op>.config.<field>...``)."""
    schema = job.run_config_schema.config_type.fields
    sections = [*_node_configs(schema["ops"].config_type, "ops")]
    sections += _resource_configs(schema["resources"].config_type)
    return {
        field_path: field
        for section_path, section_type in sections
        for field_path, field in _fields(section_type, section_path)
    }


def _enum_values(field: dg.Field) -> set[str] | None:
    config_type = _unwrapped(field.config_type)
    if not isinstance(config_type, dg.Enum):
        return None
    return {value.config_value for value in config_type.enum_values}


def test_the_walk_sees_op_resource_and_nested_fields():
    """The walk itself: it reaches op config, resource config and a list's items' fields."""
    jobs = {job.name: job for job in _jobs()}
    fields = launchpad_fields(jobs["record_payout_batch"])
    assert "ops.record_one_payout_batch.config.items[].receiver" in fields
    assert "resources.fbr.config.token" in fields
    assert "resources.db.config.url" in fields
    assert not any(path.startswith("resources.io_manager") for path in fields)
    assert "ops.submit_due_invoices.config.batch_size" in launchpad_fields(
        jobs["retry_failed_invoices"]
    )


def test_every_launchpad_field_has_a_description():
    missing = [
        f"{job.name}: {path}"
        for job in _jobs()
        for path, field in launchpad_fields(job).items()
        if not (field.description or "").strip()
    ]
    assert missing == [], "launchpad fields without a description:\n" + "\n".join(missing)


def test_every_enum_field_names_its_allowed_values_in_its_help():
    unlisted = []
    for job in _jobs():
        for path, field in launchpad_fields(job).items():
            values = _enum_values(field)
            if values is None:
                continue
            absent = sorted(v for v in values if v not in (field.description or ""))
            if len(values) < 2 or absent:
                unlisted.append(f"{job.name}: {path} does not name {absent or values}")
    assert unlisted == [], "\n".join(unlisted)


@pytest.mark.parametrize(("job_name", "path"), sorted(CHOICES))
def test_choices_are_enums_in_the_launchpad(job_name, path):
    jobs = {job.name: job for job in _jobs()}
    assert job_name in jobs, f"no job {job_name}"
    fields = launchpad_fields(jobs[job_name])
    assert path in fields, f"{job_name} has no launchpad field {path}"
    values = _enum_values(fields[path])
    assert values is not None, f"{job_name}: {path} is free text, not an enum"
    expected = CHOICES[(job_name, path)]
    assert expected is None or values == expected
