"""The pipeline against a team's tracking server (a real `mlflow server` on 127.0.0.1), and
its champion behind a REST endpoint (the real `mlflow models serve`)."""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.keras
import numpy as np
import pandas as pd
import pytest
from conftest import free_port, listening, mlflow_server, post, run
from mlflow.tracking import MlflowClient

from pipeline.paths import PREDICTIONS, RUN, WINDOWS
from pipeline.windows import Windows

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """Start `mlflow server` (SQLite backend, served artifacts); yield its URI."""
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}",
                       "--artifacts-destination", str(tmp_path / "server-artifacts")) as uri:
        yield uri


SECRET = "s3cret-pw"


def secret_holders(folder: Path) -> list[str]:
    """Return the files under `folder` whose bytes hold SECRET."""
    return [str(path) for path in folder.rglob("*")
            if path.is_file() and SECRET.encode() in path.read_bytes()]


def test_pipeline_tracks_to_a_server_through_mlflow_tracking_uri(
        repo: Path, server: str, tiny_params: dict, tmp_path: Path) -> None:
    # A URI carrying credentials, as a team's might: they must never be printed or written.
    with_credentials = server.replace("http://", f"http://alice:{SECRET}@")
    on_server = {**os.environ, "MLFLOW_TRACKING_URI": with_credentials}
    done = run([sys.executable, "-m", "dvc", "repro"], repo, check=False, env=on_server)
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr
    assert f"at {server}" in done.stdout + done.stderr  # the store is named, credentials not
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
    crowned = run([sys.executable, "-m", "pipeline.champion"], repo, env=on_server)
    assert SECRET not in crowned.stdout + crowned.stderr
    assert secret_holders(repo) == []
    assert SECRET not in json.dumps([tracked.data.params, tracked.data.tags])
    # A stage that fails names the store, without its credentials.
    (repo / RUN).write_text(json.dumps({**record, "run_id": "0" * 32}))
    failed = run([sys.executable, "-m", "pipeline.stages.plot"], repo, check=False, env=on_server)
    assert failed.returncode != 0 and f"is not in the store {server}" in failed.stderr
    assert SECRET not in failed.stdout + failed.stderr
    champion = client.get_model_version_by_alias(name, "champion")
    assert (str(champion.version), champion.run_id) == ("1", tracked.info.run_id)
    assert float(champion.tags["test.free_run_mse"]) == tracked.data.metrics["test.free_run_mse"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = run([sys.executable, "-I", "-c", LOAD_CHAMPION, f"models:/{name}@champion",
                  str(steps)], elsewhere, env=on_server)
    assert loaded.stdout.splitlines()[-2:] == [f"(2, {steps}, 1)", "no-project-code"]
    check_rest_endpoint(repo, f"models:/{name}@champion", elsewhere, on_server)


def check_rest_endpoint(repo: Path, model_uri: str, elsewhere: Path,
                        env: dict[str, str]) -> None:
    """Serve `model_uri` with `mlflow models serve` outside the project: the first and last
    test windows, posted to /invocations, come back as evaluate predicted them."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    test = Windows.read(repo / WINDOWS).split("test").windows()
    table = pd.read_csv(repo / PREDICTIONS)
    with listening(command, f"http://127.0.0.1:{port}/ping", "mlflow models serve",
                   cwd=elsewhere, env=env, timeout=120):
        for index in (0, len(test["start"]) - 1):
            window = test["encoder_in"][index]  # (steps, 1): one window of the input signal
            answer = post(f"http://127.0.0.1:{port}/invocations", {"inputs": [window.tolist()]})
            predicted = np.asarray(answer["predictions"])
            expected = table[(table["split"] == "test")
                             & (table["window"] == test["start"][index])]["prediction"]
            assert predicted.shape == (1, *window.shape)
            np.testing.assert_allclose(predicted.ravel(), expected.to_numpy(), atol=1e-5)


LOAD_CHAMPION = """
import sys
import mlflow
import numpy as np
predictor = mlflow.pyfunc.load_model(sys.argv[1])
print(predictor.predict(np.zeros((2, int(sys.argv[2]), 1), np.float32)).shape)
print("no-project-code" if "pipeline" not in sys.modules else "project code loaded")
"""
