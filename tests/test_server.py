"""The pipeline against a team's tracking server: a real `mlflow server` on 127.0.0.1."""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.keras
import numpy as np
import pytest
from conftest import mlflow_server, run
from mlflow.tracking import MlflowClient

from pipeline.paths import RUN

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """Start `mlflow server` (SQLite backend, served artifacts); yield its URI."""
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}",
                       "--artifacts-destination", str(tmp_path / "server-artifacts")) as uri:
        yield uri


def test_pipeline_tracks_to_a_server_through_mlflow_tracking_uri(
        repo: Path, server: str, tiny_params: dict, tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "dvc", "repro"], repo, check=False,
               env={**os.environ, "MLFLOW_TRACKING_URI": server})
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (repo / "mlflow.db").exists()  # nothing fell back to the local store

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name(tiny_params["tracking"]["experiment"])
    (tracked,) = client.search_runs([experiment.experiment_id])
    assert tracked.info.status == "FINISHED"
    assert tracked.info.artifact_uri.startswith("mlflow-artifacts:")
    assert len(client.get_metric_history(tracked.info.run_id, "loss")) == (
        tiny_params["train"]["epochs"])
    assert {a.path for a in client.list_artifacts(tracked.info.run_id, "plots")} == {
        "plots/series.png", "plots/loss.png", "plots/predictions.png"}
    downloaded = client.download_artifacts(tracked.info.run_id, "plots/loss.png",
                                           str(tmp_path))
    assert Path(downloaded).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    mlflow.set_tracking_uri(server)
    record = json.loads((repo / RUN).read_text())
    predictor = mlflow.pyfunc.load_model(record["predictor_uri"])
    steps = tiny_params["window"]["steps"]
    assert predictor.predict(np.zeros((3, steps, 1), np.float32)).shape == (3, steps, 1)
    model = mlflow.keras.load_model(record["model_uri"])
    assert len(model.inputs) == 2
    assert run(["git", "status", "--porcelain", "mlflow.db"], repo).stdout == ""
