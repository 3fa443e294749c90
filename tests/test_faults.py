"""Faults users cause: bad params, killed runs, a tracking server that is down.

Each runs the real `dvc repro` or stage command in a temporary git+DVC repo with a real
MLflow SQLite store, and checks that nothing is lost or left half-done.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run, stage_pids, wait_until, with_overrides, write_params
from mlflow.tracking import MlflowClient

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


def running_run(repo: Path, timeout: float = 120) -> Any:
    """Wait until a run is RUNNING and has started training; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in all_runs(repo) if r.info.status == "RUNNING"]
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
    run([*DVC, "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "first run"], repo)
    write_params(repo, with_overrides(tiny_params, {"model": {"units": 0}}))
    done = run([*DVC, "repro"], repo, check=False)
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "error:" in line]
    assert errors == [errors[0]] and "model.units = 0 is invalid: must be in 1..4096" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert len(all_runs(repo)) == 1
    assert run(["git", "diff", "--stat", "dvc.lock"], repo).stdout == ""


@pytest.mark.parametrize(("signum", "code", "message"), [
    (signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_or_ctrl_c_during_training_ends_the_run_killed(
        repo: Path, tiny_params: dict, signum: int, code: int, message: str) -> None:
    repro, victim = long_training(repo, tiny_params)
    (train,) = stage_pids("train", repo)
    os.kill(train, signum)
    output, _ = repro.communicate(timeout=60)
    assert repro.returncode != 0
    assert message in output and f"exited with {code}" in output
    # Signs of life while it trained: the first epoch's line, with the time left.
    (first,) = [line for line in output.splitlines() if "epoch 1/1000000: loss" in line]
    assert "elapsed, about" in first and first.endswith(" left")
    assert client(repo).get_run(victim.info.run_id).info.status == "KILLED"
    assert not (repo / "data" / "model" / "model.keras").exists()


def test_run_of_a_sigkilled_repro_is_closed_killed_by_the_next_repro(
        repo: Path, tiny_params: dict) -> None:
    repro, victim = long_training(repo, tiny_params)
    os.killpg(repro.pid, signal.SIGKILL)
    repro.wait(timeout=30)
    wait_until(lambda: not stage_pids("train", repo), 30, "the killed train has gone")
    assert client(repo).get_run(victim.info.run_id).info.status == "RUNNING"
    assert not (repo / "data" / "model" / "model.keras").exists()

    write_params(repo, tiny_params)
    run([*DVC, "repro"], repo)
    statuses = {r.info.run_id: r.info.status for r in all_runs(repo)}
    assert statuses.pop(victim.info.run_id) == "KILLED"
    assert list(statuses.values()) == ["FINISHED"]


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
