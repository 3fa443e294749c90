"""Working as a team: a DVC remote, a shared `mlflow server`, experiments from other clones.

Every command is the real tool's: git, `dvc push`/`pull`, `dvc exp push`/`pull`/`show`/
`apply`, and a real `mlflow server` on 127.0.0.1. Two clones stand in for two machines.
"""

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import clone, experiment_table, mlflow_server, run, share
from mlflow.tracking import MlflowClient

from pipeline.paths import METRICS, MODEL, PREDICTOR, STAGES

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
OUTPUTS = [path for io_ in STAGES.values() for path in io_.writes]


def ran(output: str) -> list[str]:
    """Return the stages a `dvc repro` or `dvc exp run` output says it ran."""
    return [line.split("'")[1] for line in output.splitlines()
            if line.startswith("Running stage '")]


def test_a_clone_pulls_the_results_and_reproduces_nothing(repo: Path, tmp_path: Path) -> None:
    share(repo, tmp_path / "dvc-remote")
    assert ran(run([*DVC, "repro"], repo).stdout) == list(STAGES)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    run([*DVC, "push"], repo)

    other = clone(repo, tmp_path / "clone")
    assert not (other / METRICS).exists()
    run([*DVC, "pull"], other)
    assert "up to date" in run([*DVC, "status"], other).stdout
    assert ran(run([*DVC, "repro"], other).stdout) == []
    for path in OUTPUTS:
        assert (other / path).read_bytes() == (repo / path).read_bytes(), path


def test_an_experiment_run_on_another_machine_comes_home(repo: Path, tmp_path: Path,
                                                         tiny_params: dict[str, Any]) -> None:
    # Two machines sharing one study and one remote: tests/test_tune.py.
    origin = tmp_path / "origin.git"
    share(repo, tmp_path / "dvc-remote", origin)
    name, seed = "seed-7", 7
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}",
                       "--artifacts-destination", str(tmp_path / "server-artifacts")) as server:
        shared = {**os.environ, "MLFLOW_TRACKING_URI": server}
        machine = clone(origin, tmp_path / "machine")
        done = run([*DVC, "exp", "run", "-n", name, "-S", f"train.seed={seed}"], machine,
                   env=shared)
        assert ran(done.stdout) == list(STAGES)
        run([*DVC, "exp", "push", "origin", name], machine)

        home = clone(origin, tmp_path / "home")
        run([*DVC, "exp", "pull", "origin", name], home)
        shown = experiment_table(home)[name]
        assert shown["train.seed"] == str(seed)
        assert float(shown["test.free_run_mse"]) >= 0

        # Its outputs come back from the DVC remote: nothing is trained again.
        run([*DVC, "exp", "apply", name], home)
        assert (home / METRICS).read_bytes() == (machine / METRICS).read_bytes()
        assert (home / MODEL).is_file() and (home / PREDICTOR).is_file()
        assert ran(run([*DVC, "repro"], home, env=shared).stdout) == []

        client = MlflowClient(server)
        experiment = client.get_experiment_by_name(tiny_params["tracking"]["experiment"])
        (tracked,) = client.search_runs([experiment.experiment_id])
        assert tracked.info.run_name == tracked.data.tags.get("dvc.experiment") == name
        assert tracked.info.status == "FINISHED"
