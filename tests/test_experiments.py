"""Experiments as users run them: reruns are bit-identical; queued runs in parallel land safely."""

import contextlib
import json
import os
import signal
import sys
import time
import urllib.parse
from pathlib import Path

import keras
import numpy as np
import pytest
from browser import render
from conftest import mlflow_server, run
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
CELERY = Path(".dvc", "tmp", "exps", "celery")  # DVC's queue workers: logs and pid files


def results(repo: Path) -> tuple[list[np.ndarray], str]:
    """Return the trained weights and metrics.json's text."""
    model = keras.models.load_model(repo / "data" / "model" / "model.keras", safe_mode=True)
    return model.get_weights(), (repo / "data" / "metrics" / "metrics.json").read_text()


def test_same_params_give_identical_weights_and_metrics_with_1_or_2_threads(
        repo: Path) -> None:
    run([*DVC, "repro"], repo)
    first_weights, first_metrics = results(repo)
    # TensorFlow uses every core by default (two here): try one as well.
    threads = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    for env in ({}, threads):
        run([*DVC, "repro", "-f"], repo, env={**os.environ, **env})
        weights, metrics = results(repo)
        assert metrics == first_metrics
        for before, after in zip(first_weights, weights, strict=True):
            np.testing.assert_array_equal(before, after)


def wait_for_queue(repo: Path, timeout: float = 300) -> str:
    """Wait until no queued experiment is queued or running; return the last status.

    A queue still busy after `timeout` s fails the test with DVC's worker logs.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run([*DVC, "queue", "status"], repo).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(3)
    workers = {log.name: log.read_text(errors="replace")[-3000:]
               for log in (repo / CELERY).glob("*.out")}
    pytest.fail(f"queue still busy after {timeout} s:\n{status}\nworker logs: {workers}")


def end_workers(repo: Path) -> None:
    """Stop the queue's workers, and kill any still alive (one can hang on shutdown)."""
    run([*DVC, "queue", "stop", "--kill"], repo, check=False, timeout=60)
    for pid_file in (repo / CELERY).glob("*.pid"):
        pid = pid_file.read_text().strip()
        try:  # the pid may have been reused since: kill only this repo's worker
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ValueError):
            continue
        if b"queue-worker" in arguments:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_queued_experiments_run_in_parallel_all_land_in_the_root_store(
        repo: Path, tiny_params: dict) -> None:
    assert not (repo / "mlflow.db").exists()
    for units in (2, 3, 4, 5):
        run([*DVC, "exp", "run", "--queue", "-S", f"model.units={units}"], repo)
    run([*DVC, "queue", "start", "-j", "2"], repo)
    try:
        status = wait_for_queue(repo)
    finally:
        end_workers(repo)
    failed = [line.split()[1] for line in status.splitlines() if line.endswith("Failed")]
    logs = {name: run([*DVC, "queue", "logs", name], repo, check=False).stdout[-3000:]
            for name in failed}
    assert status.count("Success") == 4, (status, logs)

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tiny_params["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["model.units"] for r in runs) == ["2", "3", "4", "5"]
    names = set(run([*DVC, "exp", "list", "--name-only"], repo).stdout.split())
    assert len(names) == 4
    for tracked in runs:
        assert tracked.info.status == "FINISHED"
        assert tracked.info.run_name in names
        assert tracked.data.tags["dvc.experiment"] == tracked.info.run_name
        figures = {a.path for a in client.list_artifacts(tracked.info.run_id, "plots")}
        assert len(figures) == 3
    assert experiment.artifact_location == (repo / "mlartifacts").as_uri()
    # Registered side by side: one version per run, numbered 1..4 whichever came first.
    versions = client.search_model_versions(
        f"name = '{tiny_params['tracking']['registered_model']}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3", "4"]
    assert {v.run_id for v in versions} == {r.info.run_id for r in runs}

    # The comparison, as a person sees it in the MLflow UI.
    first, second = runs[:2]
    query = urllib.parse.urlencode({
        "runs": json.dumps([first.info.run_id, second.info.run_id]),
        "experiments": json.dumps([experiment.experiment_id])})
    with mlflow_server(f"sqlite:///{repo / 'mlflow.db'}") as ui:
        screenshot = repo.parent / "compare-runs.png"
        page = render(f"{ui}/#/compare-runs?{query}", repo.parent / "chromium", screenshot)
    assert first.info.run_name in page and second.info.run_name in page
    assert "test.free_run_mse" in page
    assert screenshot.stat().st_size > 10_000
