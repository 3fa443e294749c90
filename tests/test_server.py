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
    assert {item.dataset.name for item in tracked.inputs.dataset_inputs} == {
        "train", "validation", "test"}

    # The registry lives on the server too: crown the version, load it by alias elsewhere.
    name = tiny_params["tracking"]["registered_model"]
    on_server = {**os.environ, "MLFLOW_TRACKING_URI": server}
    run([sys.executable, "-m", "pipeline.champion"], repo, env=on_server)
    champion = client.get_model_version_by_alias(name, "champion")
    assert (str(champion.version), champion.run_id) == ("1", tracked.info.run_id)
    assert float(champion.tags["test.free_run_mse"]) == tracked.data.metrics["test.free_run_mse"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = run([sys.executable, "-I", "-c", LOAD_CHAMPION, f"models:/{name}@champion",
                  str(steps)], elsewhere, env=on_server)
    assert loaded.stdout.splitlines()[-2:] == [f"(2, {steps}, 1)", "no-project-code"]


LOAD_CHAMPION = """
import sys
import mlflow
import numpy as np
predictor = mlflow.pyfunc.load_model(sys.argv[1])
print(predictor.predict(np.zeros((2, int(sys.argv[2]), 1), np.float32)).shape)
print("no-project-code" if "pipeline" not in sys.modules else "project code loaded")
"""
