"""Where runs are stored, and how params that change on a resumed run are recorded."""

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import store, tracking
from pipeline.errors import InputError, PipelineError


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
        run_id = run.run_id
    client = MlflowClient(store.tracking_uri())
    experiment = client.get_experiment_by_name("exp")
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags[tracking.PID_TAG] == str(os.getpid())
    with tracking.new_run("exp") as second:
        assert second.experiment_id == experiment.experiment_id


def test_changed_param_on_a_resumed_run_is_tagged_not_lost(root: Path) -> None:
    with tracking.new_run("exp") as run:
        run.log_params({"plot.dpi": 100, "plot.start_points": (0, 24)})
    with tracking.resumed_run(run.run_id) as resumed:
        resumed.log_params({"plot.dpi": 50, "plot.start_points": (0, 24)})
    data = MlflowClient(store.tracking_uri()).get_run(run.run_id).data
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
        run.log_metrics([("loss", 1.0 / (step + 1), step) for step in range(1500)])
    history = MlflowClient(store.tracking_uri()).get_metric_history(run.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1500))


def test_an_error_in_the_stage_ends_the_run_failed_and_is_not_masked(root: Path) -> None:
    with pytest.raises(ZeroDivisionError), tracking.new_run("exp") as run:
        run.log_params({"a": 1})
        _ = 1 / 0
    assert MlflowClient(store.tracking_uri()).get_run(run.run_id).info.status == "FAILED"


def test_a_deleted_experiment_is_an_error_naming_it(root: Path) -> None:
    with tracking.new_run("gone") as run:
        pass
    MlflowClient(store.tracking_uri()).delete_experiment(run.experiment_id)
    with pytest.raises(PipelineError, match=r"MLflow experiment 'gone' is deleted"), \
            tracking.new_run("gone"):
        pass
