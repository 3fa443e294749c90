"""The champion behind a REST endpoint: the real `mlflow models serve`, on 127.0.0.1."""

import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import free_port, listening, run

from pipeline.data import ARRAY_NAMES, split_windows
from pipeline.io import read_arrays
from pipeline.paths import PREDICTIONS, WINDOWS

pytestmark = pytest.mark.slow


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` as JSON; return the JSON answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_the_served_champion_answers_a_window_as_evaluate_predicted_it(
        repo: Path, tiny_params: dict[str, Any], tmp_path: Path) -> None:
    run([sys.executable, "-m", "dvc", "repro"], repo)
    run([sys.executable, "-m", "pipeline.champion"], repo)
    name = tiny_params["tracking"]["registered_model"]
    port = free_port()
    elsewhere = tmp_path / "elsewhere"  # the server needs no project code
    elsewhere.mkdir()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m",
               f"models:/{name}@champion", "--env-manager", "local", "-h", "127.0.0.1",
               "-p", str(port)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    test = split_windows(read_arrays(repo / WINDOWS, ARRAY_NAMES), "test")
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
