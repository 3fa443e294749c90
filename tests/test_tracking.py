"""Where runs are stored, and how params that change on a resumed run are recorded."""

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline import store, tracking
from pipeline.errors import InputError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default store at a fresh repo root through DVC_ROOT, as DVC does."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_store_is_under_dvc_root_wherever_the_stage_runs(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = root / ".dvc" / "tmp" / "exps" / "copy"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # where `dvc exp run --temp` runs a stage
    assert store.tracking_uri() == f"sqlite:///{root / 'mlflow.db'}"
    assert store.artifact_location(store.tracking_uri()) == (root / "mlartifacts").as_uri()


def test_tracking_uri_env_overrides_and_servers_choose_their_artifacts(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert store.tracking_uri() == "http://127.0.0.1:5000"
    assert store.artifact_location(store.tracking_uri()) is None


def test_new_run_creates_the_experiment_with_an_absolute_artifact_root(root: Path) -> None:
    with tracking.new_run("exp") as run:
        run_id = run.info.run_id
    client = MlflowClient(store.tracking_uri())
    experiment = client.get_experiment_by_name("exp")
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    assert client.get_run(run_id).info.status == "FINISHED"
    with tracking.new_run("exp") as second:
        assert second.info.experiment_id == experiment.experiment_id


def test_changed_param_on_a_resumed_run_is_tagged_not_lost(root: Path) -> None:
    with tracking.new_run("exp") as run:
        run_id = run.info.run_id
        tracking.log_params(run_id, {"plot.dpi": 100, "plot.start_points": (0, 24)})
    with tracking.resumed_run(run_id):
        tracking.log_params(run_id, {"plot.dpi": 50, "plot.start_points": (0, 24)})
    data = MlflowClient(store.tracking_uri()).get_run(run_id).data
    assert data.params == {"plot.dpi": "100", "plot.start_points": "[0, 24]"}
    assert data.tags["plot.dpi"] == "50"
    assert "plot.start_points" not in data.tags


def test_resuming_a_run_the_store_does_not_have_names_run_and_store(root: Path) -> None:
    with tracking.new_run("exp"):
        pass
    with (pytest.raises(InputError, match=r"run 0123abcd is not in the store sqlite:///"),
          tracking.resumed_run("0123abcd")):
        pass


def test_metric_series_are_logged_with_their_steps(root: Path) -> None:
    with tracking.new_run("exp") as run:
        tracking.log_metric_series(run.info.run_id,
                                   [("loss", 1.0 / (step + 1), step) for step in range(1500)])
    history = MlflowClient(store.tracking_uri()).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1500))
    assert mlflow.active_run() is None
