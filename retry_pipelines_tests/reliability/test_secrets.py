"""After full runs of both gateways' jobs with faults (and a run that fails on refused
credentials), the FBR token and the PayPal client secret appear nowhere: not in the Dagster
instance (event log, run storage, compute logs: every file under DAGSTER_HOME), not in the app
database file, not in the processes' output."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.crash import dagster_env, run_to_completion

pytestmark = pytest.mark.reliability

FBR_TOKEN = "fbr-Tk-7Qm2VxP9sLw4RzN8"
PAYPAL_ID, PAYPAL_SECRET = "pp-client-3Fh8", "pp-Sec-Jd82KqLm5XnW0vBz"
WRONG_SECRET = "pp-Wrong-Hq4T7cYp1MeR9"
CONFIG = """ops:
  {op}:
    config:
      batch_size: 10
      max_in_flight: 4
      time_budget_seconds: 60
      base_delay_seconds: 0.05
      max_delay_seconds: 0.1
      cooldown_seconds: 0.05
"""
FBR_CONFIG = "      token_pause_seconds: 0\n"
"""A 401 answered again after the token reload (fault_401 twice in a row) pauses FBR for no time:
a run that ends with its gateway paused for refused credentials fails, and this run must succeed
whichever invoices meet the faults."""


def _hits(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


def test_no_secret_reaches_the_instance_the_database_or_the_output(tmp_path):
    db_path = tmp_path / "app" / "app.db"
    db_url = f"sqlite:///{db_path}"
    engine = make_engine(db_url)
    from retry_pipelines.store import migrate

    migrate.upgrade(engine)
    seed_invoices(engine, 60, seed=2, invalid_share=0.1)
    now = datetime.now(UTC)
    for n in range(30):
        items = [PayoutItem(f"s{n}@example.com", "3.00", "USD", f"s{n}")]
        record_batch(engine, cycle_id=f"secrets-{n}", items=items, now=now)
    engine.dispose()
    configs = {}
    for op in ("submit_due_invoices", "submit_due_batches"):
        configs[op] = tmp_path / f"{op}.yaml"
        configs[op].write_text(CONFIG.format(op=op) + FBR_CONFIG * (op == "submit_due_invoices"))

    fbr_args = ["--authorized-ntn", DEFAULT_SELLER_NTN, "--token", FBR_TOKEN, "--seed", "4"]
    fbr_args += ["--faults", "fault_401=0.1,http_500=0.05,malformed_json=0.05,read_timeout=0.05"]
    fbr_args += ["--hang-seconds", "1"]
    paypal_args = ["--gateway", "paypal", "--client-id", PAYPAL_ID, "--client-secret"]
    paypal_args += [PAYPAL_SECRET, "--faults", "http_500=0.1,response_lost=0.05,http_503=0.05"]
    paypal_args += ["--hang-seconds", "1", "--final-after", "0.2", "--processing-after", "0.1"]
    outputs = []
    with SandboxProcess(fbr_args) as fbr, SandboxProcess(paypal_args) as paypal:
        gateways = {
            "FBR_API_BASE_URL": fbr.url,
            "FBR_API_TOKEN": FBR_TOKEN,
            "PAYPAL_API_BASE_URL": paypal.url,
            "PAYPAL_CLIENT_ID": PAYPAL_ID,
            "PAYPAL_CLIENT_SECRET": PAYPAL_SECRET,
        }
        env = dagster_env(tmp_path, db_url, gateways)
        for job, config in (
            ("retry_failed_invoices", configs["submit_due_invoices"]),
            ("retry_payout_batches", configs["submit_due_batches"]),
        ):
            proc = run_to_completion(job, env, config)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            outputs.append(proc.stdout + proc.stderr)
        proc = run_to_completion("reconcile_payout_batches", env, None)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        outputs.append(proc.stdout + proc.stderr)
        # PayPal refuses the credentials: whatever the run makes of it, nothing may echo them.
        engine = make_engine(db_url)
        items = [PayoutItem("late@example.com", "3.00", "USD", "late")]
        record_batch(engine, cycle_id="secrets-late", items=items, now=datetime.now(UTC))
        engine.dispose()
        refused = run_to_completion(
            "retry_payout_batches", {**env, "PAYPAL_CLIENT_SECRET": WRONG_SECRET}, None
        )
        outputs.append(refused.stdout + refused.stderr)
        assert paypal.stats()["by_status"].get("401"), "PayPal must have refused a token"
        assert fbr.stats()["by_fault"].get("fault_401"), "the 401 path must have been taken"

    secrets = [FBR_TOKEN, PAYPAL_SECRET, WRONG_SECRET]
    assert _hits(Path(env["DAGSTER_HOME"]), secrets) == []
    assert _hits(db_path.parent, secrets) == []
    for output in outputs:
        assert all(s not in output for s in secrets)
    assert list(Path(env["DAGSTER_HOME"]).rglob("*")), "the instance must have stored the runs"
