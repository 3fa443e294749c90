"""Faults users cause: bad params, killed runs, a tracking server that is down.

Each runs the real `dvc repro` or stage command in a temporary git+DVC repo with a real
MLflow SQLite store, and checks that nothing is lost or left half-done.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run, stage_pids, wait_until, with_overrides, write_params
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.paths import METRICS, RUN
from pipeline.tracking.runs import RESUMES_TAG

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
LONG_TRAINING = {"train": {"epochs": 1_000_000}}


def client(repo: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


def all_runs(repo: Path) -> list[Any]:
    if not (repo / "mlflow.db").exists():
        return []
    found = client(repo).search_experiments()
    return client(repo).search_runs([e.experiment_id for e in found]) if found else []


def running_run(repo: Path, timeout: float = 120, old: tuple[str, ...] = ()) -> Any:
    """Wait until a run (not one of the `old` ids) is RUNNING and has started training;
    return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in all_runs(repo)
                   if r.info.status == "RUNNING" and r.info.run_id not in old]
        if running and "loss" in running[0].data.metrics:  # training has begun
            return running[0]
        time.sleep(0.5)
    pytest.fail("no RUNNING run appeared")


def start_repro(repo: Path) -> subprocess.Popen:
    """Start `dvc repro` in its own process group, so the whole tree can be killed."""
    # Create the store before polling it, or this process and the stage would race to
    # create its schema.
    client(repo).search_experiments()
    return subprocess.Popen([*DVC, "repro"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def long_training(repo: Path, tiny_params: dict) -> tuple[subprocess.Popen, Any]:
    """Start `dvc repro` with endless training; return it and its run once it trains."""
    write_params(repo, with_overrides(tiny_params, LONG_TRAINING))
    repro = start_repro(repo)
    return repro, running_run(repo)


def test_bad_param_fails_before_any_work_and_records_nothing(repo: Path,
                                                             tiny_params: dict) -> None:
    run([*DVC, "repro", "window"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "the series and windows"], repo)
    write_params(repo, with_overrides(tiny_params, {"model": {"units": 0}}))
    done = run([*DVC, "repro"], repo, check=False)
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "error:" in line]
    assert errors == [errors[0]] and "model.units = 0 is invalid: must be in 1..4096" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert all_runs(repo) == [] and not (repo / "data" / "model").exists()
    assert run(["git", "diff", "--stat", "dvc.lock"], repo).stdout == ""


@pytest.mark.parametrize(("signum", "code", "message"), [
    (signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_or_ctrl_c_during_training_ends_the_run_killed(
        repo: Path, tiny_params: dict, signum: int, code: int, message: str) -> None:
    repro, victim = long_training(repo, tiny_params)
    (train,) = stage_pids("train", repo)
    os.kill(train, signum)
    # Ending the run, MLflow's async queues and DVC's cleanup take seconds; minutes when
    # the suite's other worker runs a tuning study beside it.
    try:
        output, _ = repro.communicate(timeout=180)
    finally:  # a stage that did not end must not train on after the test
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
    assert repro.returncode != 0
    assert message in output and f"exited with {code}" in output
    # Signs of life while it trained: the first epoch's line, with the time left.
    (first,) = [line for line in output.splitlines() if "epoch 1/1000000: loss" in line]
    assert "elapsed, about" in first and first.endswith(" left")
    assert client(repo).get_run(victim.info.run_id).info.status == "KILLED"
    assert not (repo / "data" / "model" / "model.keras").exists()


def kill_repro_once_it_trained(repo: Path, epochs: int) -> Any:
    """Start `dvc repro`, SIGKILL its whole process tree once `epochs` epochs are in its
    new RUNNING run; return that run."""
    old = tuple(r.info.run_id for r in all_runs(repo))
    repro = start_repro(repo)
    victim = running_run(repo, old=old)
    wait_until(lambda: len(client(repo).get_metric_history(victim.info.run_id, "loss")) >= epochs,
               120, f"{epochs} epochs logged")
    os.killpg(repro.pid, signal.SIGKILL)
    repro.wait(timeout=30)
    wait_until(lambda: not stage_pids("train", repo), 30, "the killed train has gone")
    assert client(repo).get_run(victim.info.run_id).info.status == "RUNNING"
    assert not (repo / "data" / "model" / "model.keras").exists()
    return victim


def test_a_sigkilled_training_resumes_in_its_run(repo: Path, tiny_params: dict) -> None:
    # (A killed stage's run that nothing resumes is closed KILLED: test_tracking.py.)
    write_params(repo, with_overrides(tiny_params, {
        "train": {"epochs": 40, "learning_rate": 0.01, "backup_seconds": 0}}))
    victim = kill_repro_once_it_trained(repo, 15)
    (backup,) = (repo / paths.BACKUPS_DIR).iterdir()
    assert list(backup.glob("keras/*"))

    # The same params again: training goes on from its backup, in the same run.
    done = run([*DVC, "repro"], repo)
    (resuming,) = [line for line in (done.stdout + done.stderr).splitlines()
                   if "resuming training from its backup" in line]
    assert resuming.endswith("(weights, optimizer restored)")
    resumed = client(repo).get_run(victim.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags[RESUMES_TAG] == "1"
    steps = [m.step for m in client(repo).get_metric_history(victim.info.run_id, "loss")]
    assert sorted(steps) == list(range(40))  # every epoch exactly once
    assert sorted(m.step for m in client(repo).get_metric_history(
        victim.info.run_id, "val_loss")) == list(range(40))
    history = pd.read_csv(repo / "data" / "model" / "history.csv")
    assert history["epoch"].tolist() == list(range(40))
    assert json.loads((repo / RUN).read_text())["run_id"] == victim.info.run_id
    assert not backup.exists()  # removed after success
    assert [r.info.status for r in all_runs(repo)] == ["FINISHED"]

    # It ends where an uninterrupted training of the same params ends: each epoch's order
    # is the seed's and the epoch's, and the backup holds every other state.
    resumed_metrics = json.loads((repo / METRICS).read_text())
    run([*DVC, "repro", "-f", "evaluate"], repo)
    assert json.loads((repo / METRICS).read_text()) == resumed_metrics, resuming


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_tracking_server_down_fails_fast_naming_the_uri(repo: Path) -> None:
    run([*DVC, "repro", "window"], repo)
    uri = f"http://127.0.0.1:{closed_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    start = time.monotonic()
    done = run([*DVC, "repro"], repo, check=False, env=env)
    # MLflow's own retries would take about 4 minutes; what is left is starting DVC and
    # importing TensorFlow (up to 8 s alone on a busy day), so the bound is loose.
    assert time.monotonic() - start < 60
    assert done.returncode != 0
    assert f"MLflow tracking server {uri} is not reachable" in done.stdout + done.stderr
    assert "train:" not in (repo / "dvc.lock").read_text()
