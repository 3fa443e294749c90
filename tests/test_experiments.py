"""Experiments as users run them: reruns are bit-identical; queued runs in parallel land safely."""

import contextlib
import json
import os
import shutil
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

from pipeline.paths import RUN
from pipeline.tracking.runs import MODEL_RUN_TAG

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
CELERY = Path(".dvc", "tmp", "exps", "celery")  # DVC's queue workers: logs and pid files


def results(repo: Path) -> tuple[list[np.ndarray], str]:
    """Return the trained weights and metrics.json's text."""
    model = keras.models.load_model(repo / "data" / "model" / "model.keras", safe_mode=True)
    return model.get_weights(), (repo / "data" / "metrics" / "metrics.json").read_text()


def test_same_params_give_identical_weights_and_metrics_with_1_or_2_threads(
        repo: Path, tiny_params: dict) -> None:
    run([*DVC, "repro"], repo)  # TensorFlow uses every core by default (two here)...
    first_weights, first_metrics = results(repo)
    # The store deleted too: nothing changed, so DVC would skip every stage; -f runs them
    # again, and the new store gets the one new run.
    (repo / "mlflow.db").unlink()
    shutil.rmtree(repo / "mlartifacts")
    one_thread = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    output = run([*DVC, "repro", "-f"], repo, env={**os.environ, **one_thread}).stdout  # ...or one
    assert output.count("Running stage") == 5
    weights, metrics = results(repo)
    assert metrics == first_metrics
    for before, after in zip(first_weights, weights, strict=True):
        np.testing.assert_array_equal(before, after)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tiny_params["tracking"]["experiment"])
    (fresh,) = client.search_runs([experiment.experiment_id])
    assert fresh.info.status == "FINISHED"
    assert fresh.info.run_id == json.loads((repo / RUN).read_text())["run_id"]
    assert len(client.list_artifacts(fresh.info.run_id, "plots")) == 3


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


QUEUED = {"dpi50": "plot.dpi=50", "units3": "model.units=3"}


def test_queued_experiments_run_in_parallel_each_in_its_own_run(
        repo: Path, tiny_params: dict) -> None:
    run([*DVC, "repro"], repo)  # the workspace's run
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tiny_params["tracking"]["experiment"])
    (workspace,) = client.search_runs([experiment.experiment_id])
    figures = {a.path: a.file_size for a in client.list_artifacts(workspace.info.run_id, "plots")}
    # A plot-only experiment (DVC restores everything else from its run-cache: the
    # workspace's model) and one that trains, both at once.
    for name, setting in QUEUED.items():
        run([*DVC, "exp", "run", "--queue", "-n", name, "-S", setting], repo)
    run([*DVC, "queue", "start", "-j", "2"], repo)
    try:
        status = wait_for_queue(repo)
    finally:
        end_workers(repo)
    failed = [line.split()[1] for line in status.splitlines() if line.endswith("Failed")]
    logs = {name: run([*DVC, "queue", "logs", name], repo, check=False).stdout[-3000:]
            for name in failed}
    assert status.count("Success") == len(QUEUED), (status, logs)

    # The workspace's run is as it was: no experiment wrote into it.
    again = client.get_run(workspace.info.run_id)
    assert again.data.tags == workspace.data.tags and again.data.params == workspace.data.params
    assert {a.path: a.file_size for a in client.list_artifacts(
        workspace.info.run_id, "plots")} == figures
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])
            if r.info.run_id != workspace.info.run_id}
    assert set(runs) == set(QUEUED)
    for name, tracked in runs.items():
        assert tracked.info.status == "FINISHED"
        assert tracked.data.tags["dvc.experiment"] == name
        key, value = QUEUED[name].split("=")
        assert tracked.data.params[key] == value
        assert len(client.list_artifacts(tracked.info.run_id, "plots")) == 3
        assert "test.free_run_mse" in tracked.data.metrics
    reused = runs["dpi50"]  # the model, its curves and metrics: the workspace's
    assert reused.data.tags[MODEL_RUN_TAG] == workspace.info.run_id
    assert reused.data.metrics["test.free_run_mse"] == (
        workspace.data.metrics["test.free_run_mse"])
    assert len(client.get_metric_history(reused.info.run_id, "loss")) == (
        tiny_params["train"]["epochs"])
    assert MODEL_RUN_TAG not in runs["units3"].data.tags
    assert experiment.artifact_location == (repo / "mlartifacts").as_uri()
    # Registered side by side: one version per trained model.
    versions = client.search_model_versions(
        f"name = '{tiny_params['tracking']['registered_model']}'")
    assert {str(v.version): v.run_id for v in versions} == {
        "1": workspace.info.run_id, "2": runs["units3"].info.run_id}

    # The comparison, as a person sees it in the MLflow UI.
    first, second = runs["dpi50"], runs["units3"]
    query = urllib.parse.urlencode({
        "runs": json.dumps([first.info.run_id, second.info.run_id]),
        "experiments": json.dumps([experiment.experiment_id])})
    with mlflow_server(f"sqlite:///{repo / 'mlflow.db'}") as ui:
        screenshot = repo.parent / "compare-runs.png"
        page = render(f"{ui}/#/compare-runs?{query}", repo.parent / "chromium", screenshot)
    assert first.info.run_name in page and second.info.run_name in page
    assert "test.free_run_mse" in page
    assert screenshot.stat().st_size > 10_000
