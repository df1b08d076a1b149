"""The deployment kit in deploy/ agrees with the code: the image's command, the workspace and the
code location name, the variables the code reads, the instance settings, and no secret in any file.
Plain parsing, no Docker or Kubernetes (test_compose_config.py runs docker-compose itself)."""

import importlib
import json
import re

import pytest

from retry_pipelines_tests.deploy import kit

CODE_TARGETS = ("code", "code-k8s")
CODE_SERVER_PREFIX = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p"]


def _compose_services() -> dict:
    return kit.load_yaml(kit.COMPOSE)["services"]


def _helm_values() -> dict:
    return kit.load_yaml(kit.HELM_VALUES)


def _pip_installs(target: str) -> list[str]:
    dockerfile = kit.read_dockerfile()
    return [
        run
        for stage in dockerfile.built_from(target)
        for run in stage.all("RUN")
        if "pip install" in run
    ]


def test_every_base_image_is_python_3_11_slim():
    dockerfile = kit.read_dockerfile()
    bases = {s.base for s in dockerfile.stages.values() if s.base not in dockerfile.stages}
    assert bases == {"python:3.11-slim"}
    assert ">=3.11" in kit.pyproject()["project"]["requires-python"]


def test_code_images_install_the_package_without_the_sandbox_webserver_or_dev_extras():
    for target in CODE_TARGETS:
        installs = " ".join(_pip_installs(target))
        assert re.search(r"pip install \.(\s|$)", installs), target
        assert "[" not in installs, f"{target} installs an extra: {installs}"
    dagster_installs = " ".join(_pip_installs("dagster"))
    assert '".[webserver]"' in dagster_installs
    assert "sandbox" not in dagster_installs
    assert "dev" not in dagster_installs


def test_the_package_is_installed_as_a_wheel():
    """The image installs the package into its virtualenv (no editable install, no source tree at
    run time): the loader's project file ships inside the package (test_installed_location.py
    loads the definitions without pyproject.toml)."""
    dockerfile = kit.read_dockerfile()
    build = dockerfile.stages["build"]
    assert "/opt/venv/bin/pip install ." in build.all("RUN")
    assert not any(" -e " in f" {run} " for run in build.all("RUN"))
    for target in (*CODE_TARGETS, "dagster"):
        copies = dockerfile.stages[target].all("COPY")
        assert any(re.fullmatch(r"--from=\S+ /opt/venv /opt/venv", c) for c in copies), target


def test_the_image_pins_the_dagster_versions_of_pyproject():
    pins = kit.pinned_versions()
    args = kit.read_dockerfile().global_args
    assert args["DAGSTER_VERSION"] == pins["dagster"] == pins["dagster-webserver"]
    assert args["DAGSTER_LIBRARIES_VERSION"] == pins["dagster-postgres"]
    k8s = " ".join(_pip_installs("code-k8s"))
    assert '"dagster==${DAGSTER_VERSION}"' in k8s
    assert '"dagster-k8s==${DAGSTER_LIBRARIES_VERSION}"' in k8s


def test_the_helm_chart_version_is_the_dagster_version():
    dagster = kit.pinned_versions()["dagster"]
    for path in (kit.HELM_VALUES, kit.DEPLOY / "README.md"):
        versions = set(re.findall(r"--version (\S+)", path.read_text(encoding="utf-8")))
        assert versions == {dagster}, path


def test_images_run_as_a_non_root_user_with_dagster_home_set():
    dockerfile = kit.read_dockerfile()
    helm_home = _helm_values()["global"]["dagsterHome"]
    for target in (*CODE_TARGETS, "dagster"):
        final = dockerfile.final(target)
        user = final["USER"].split(":")[0]
        assert user.isdigit(), target
        assert int(user) != 0, target
        assert final["DAGSTER_HOME"] == helm_home, target
        assert "ENTRYPOINT" not in final, "the chart's args must replace CMD as they are"
    uid = int(dockerfile.final("code")["USER"].split(":")[0])
    security = kit.helm_code_deployment()["podSecurityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == uid


def test_the_code_server_command_serves_the_code_location_of_the_workspace():
    command = kit.code_server_command()
    assert command[: len(CODE_SERVER_PREFIX)] == CODE_SERVER_PREFIX
    for target in CODE_TARGETS:
        assert json.loads(kit.read_dockerfile().final(target)["CMD"]) == command
    assert _compose_services()[kit.CODE_SERVICE]["command"] == command
    deployment = kit.helm_code_deployment()
    port = int(kit.option(command, "-p"))
    assert command[len(CODE_SERVER_PREFIX) + 1 :] == deployment["codeServerArgs"]
    assert deployment["port"] == port

    (local,) = kit.load_yaml(kit.ROOT / "workspace.yaml")["load_from"]
    module, attribute = kit.option(command, "-m"), kit.option(command, "-a")
    assert module == local["python_module"]["module_name"]
    assert attribute == local["python_module"]["attribute"]
    assert module == f"{kit.pyproject()['tool']['dg']['project']['root_module']}.definitions"
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_location_name_is_retry_pipelines_everywhere():
    (local,) = kit.load_yaml(kit.ROOT / "workspace.yaml")["load_from"]
    (compose,) = kit.load_yaml(kit.DEPLOY / "workspace.yaml")["load_from"]
    (helm,) = _helm_values()["dagsterWebserver"]["workspace"]["servers"]
    names = {
        local["python_module"]["location_name"],
        compose["grpc_server"]["location_name"],
        helm["name"],
        kit.pyproject()["tool"]["dg"]["project"]["code_location_name"],
        kit.option(kit.code_server_command(), "--location-name"),
    }
    assert names == {kit.LOCATION_NAME}
    port = int(kit.option(kit.code_server_command(), "-p"))
    assert compose["grpc_server"]["host"] == kit.CODE_SERVICE
    assert compose["grpc_server"]["port"] == port
    assert helm["host"] == kit.helm_code_deployment()["name"]
    assert helm["port"] == port


def test_compose_passes_every_variable_the_code_reads_to_the_code_server():
    code = _compose_services()[kit.CODE_SERVICE]
    assert code["env_file"] == ".env"
    assigned, commented = kit.env_example_names()
    documented = assigned | commented | set(code["environment"])
    assert not kit.APP_VARIABLES - documented
    # Run workers are the code server's subprocesses: they load the instance there too.
    assert kit.instance_variables() <= set(code["environment"])


def test_compose_webserver_and_daemon_reach_the_instance_but_no_app_secret():
    services = _compose_services()
    instance = kit.instance_variables()
    for name in ("webserver", "daemon"):
        service = services[name]
        assert set(service["environment"]) == instance, name
        assert "env_file" not in service, name


def test_compose_mounts_the_instance_file_as_dagster_home_and_the_workspace():
    dockerfile = kit.read_dockerfile()
    services = _compose_services()
    for name, target in (
        (kit.CODE_SERVICE, "code"),
        ("webserver", "dagster"),
        ("daemon", "dagster"),
    ):
        final = dockerfile.final(target)
        mounts = services[name]["volumes"]
        assert f"./postgres/dagster.yaml:{final['DAGSTER_HOME']}/dagster.yaml:ro" in mounts
        if target == "dagster":
            workspace = kit.option(services[name]["command"], "-w")
            assert f"./workspace.yaml:{final['WORKDIR']}/{workspace}:ro" in mounts
        assert services[name]["build"]["target"] == target


def test_compose_requires_the_secrets_it_cannot_start_without():
    services = _compose_services()
    required = {
        services["postgresql"]["environment"]["POSTGRES_PASSWORD"],
        services[kit.CODE_SERVICE]["environment"]["DAGSTER_PG_PASSWORD"],
        services[kit.CODE_SERVICE]["environment"]["RETRY_PIPELINES_DATABASE_URL"],
        services["migrate"]["environment"]["RETRY_PIPELINES_DATABASE_URL"],
    }
    assert all(":?" in value for value in required), required


def test_helm_passes_every_variable_the_code_reads_to_the_code_server_and_its_runs():
    deployment = kit.helm_code_deployment()
    env = {entry["name"]: entry for entry in deployment["env"]}
    assert not kit.APP_VARIABLES - set(env)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    for name, entry in env.items():
        if kit.is_secret_name(name):
            assert "value" not in entry, name
            assert entry["valueFrom"]["secretKeyRef"]["key"] == name
    url = env["RETRY_PIPELINES_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert url.get("optional", False) is False, "without it the code would use SQLite in the pod"
    assert env["RETRY_PIPELINES_ENV"]["value"] == "production"


def test_helm_runs_the_k8s_image_target_under_a_tag_of_its_own():
    image = kit.helm_code_deployment()["image"]
    assert image["repository"].endswith("/retry-pipelines-code-k8s")
    assert "code-k8s" in kit.read_dockerfile().stages
    assert str(image["tag"]) not in ("", "latest")
    assert _helm_values()["runLauncher"]["type"] == "K8sRunLauncher"


def test_no_secret_value_is_written_in_any_file():
    for path in (kit.COMPOSE, kit.HELM_VALUES, kit.INSTANCE, kit.ROOT / "dagster.yaml"):
        assert kit.secret_literals(kit.load_yaml(path)) == [], path
    assert {k: v for k, v in kit.env_example_values().items() if v} == {}
    dockerfile = kit.read_dockerfile()
    for stage in dockerfile.stages.values():
        for args in stage.all("ENV") + stage.all("ARG"):
            names = [part.split("=", 1)[0] for part in args.split()]
            assert not any(kit.is_secret_name(name) for name in names), args
    assert kit.instance_variables() & kit.SECRET_VARIABLES == {"DAGSTER_PG_PASSWORD"}


def test_the_dockerignore_sends_only_what_the_image_copies():
    patterns = [
        line.strip()
        for line in (kit.ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in kit.read_dockerfile().stages.values()
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert included == copied
    assert "**/.env" in patterns


@pytest.mark.parametrize("instance", [kit.INSTANCE, kit.ROOT / "dagster.yaml"])
def test_helm_tag_limit_and_run_monitoring_agree_with_the_instance_files(instance):
    values, settings = _helm_values(), kit.load_yaml(instance)
    helm_runs = values["concurrency"]["runs"]
    assert (
        helm_runs["tagConcurrencyLimits"]
        == settings["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    (limit,) = helm_runs["tagConcurrencyLimits"]
    assert limit == {
        "key": "retry_pipelines/gateway",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    }
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] is settings["run_monitoring"]["enabled"] is True
    assert (
        monitoring["freeSlotsAfterRunEndSeconds"]
        == settings["run_monitoring"]["free_slots_after_run_end_seconds"]
    )
    assert settings["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_helm_instance_settings_equal_the_deployment_instance_file():
    values, settings = _helm_values(), kit.load_yaml(kit.INSTANCE)
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert (
        concurrency["runs"]["maxConcurrentRuns"]
        == settings["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert _snake_keys(concurrency["pools"]) == settings["concurrency"]["pools"]
    monitoring = _snake_keys(values["dagsterDaemon"]["runMonitoring"])
    assert monitoring.items() >= settings["run_monitoring"].items()
    assert monitoring["max_resume_run_attempts"] == 0
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    # The chart refuses run limits set both here and under `concurrency`.
    assert not coordinator["config"]["queuedRunCoordinator"]
    assert values["telemetry"]["enabled"] is settings["telemetry"]["enabled"]


def _snake_keys(mapping: dict) -> dict:
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in mapping.items()}


def test_the_migration_job_runs_the_code_image_against_the_app_database_secret():
    job = kit.load_yaml(kit.DEPLOY / "helm" / "migrate-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    image = kit.helm_code_deployment()["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert container["command"] == _compose_services()["migrate"]["command"]
    (env,) = container["env"]
    helm_env = {e["name"]: e for e in kit.helm_code_deployment()["env"]}
    assert env == helm_env["RETRY_PIPELINES_DATABASE_URL"]
    assert kit.secret_literals(job) == []
