"""The registry logic on a real SQLite store: tags, the best version, a named version."""

import copy
from pathlib import Path

import mlflow
import pytest
from conftest import default_params, with_overrides
from mlflow.tracking import MlflowClient

from pipeline.errors import PipelineError
from pipeline.params import parse_params
from pipeline.tracking import registry, store

NAME = "sin-cos-seq2seq"


DATA = "0123abcd"  # a data digest


def tracked_run(experiment: str, mse: float | None, test_mse: float = 1.0,
                tags: dict[str, str] | None = None) -> str:
    """Open and end a run in `experiment` trained on DATA (unless `tags` say other),
    logging validation.free_run_mse if given (and a test.free_run_mse); return its id."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(tags={registry.DATA_TAG: DATA, **(tags or {})}) as opened:
        if mse is not None:
            mlflow.log_metrics({registry.RANKING_METRIC: mse, registry.REPORTED_METRIC: test_mse})
    return opened.info.run_id


def register(run_id: str) -> str:
    """Register a version of NAME for `run_id` (no model files needed); return its number."""
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    return str(client.create_model_version(NAME, f"runs:/{run_id}/predictor", run_id).version)


def test_the_best_version_is_the_lowest_validation_mse_among_this_experiments_versions(
        root: Path) -> None:
    store.connect()
    register(tracked_run("mine", 0.5, test_mse=0.001))  # best on test: never the criterion
    better = register(tracked_run("mine", 0.1, test_mse=0.3))
    tracked_run("mine", 0.01)  # better still, but never registered
    register(tracked_run("mine", None))  # registered, never evaluated
    register(tracked_run("someone else's", 0.001))  # another experiment
    experiment = mlflow.get_experiment_by_name("mine").experiment_id
    chosen, metrics = registry.best_version(NAME, experiment, DATA)
    assert str(chosen.version) == better
    assert (metrics[registry.RANKING_METRIC], metrics[registry.REPORTED_METRIC]) == (0.1, 0.3)
    registry.crown(NAME, chosen.version)
    assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == better


def test_the_champion_answers_the_same_question_and_is_never_a_pruned_trial(
        root: Path) -> None:
    store.connect()
    mine = register(tracked_run("mine", 0.5))
    # Better on validation, but on another series (another question, other inputs), or
    # stopped early by a study's pruner: never chosen.
    other = register(tracked_run("mine", 0.001, tags={registry.DATA_TAG: "ffff0000"}))
    register(tracked_run("mine", 0.01, tags={registry.PRUNED_TAG: "true"}))
    experiment = mlflow.get_experiment_by_name("mine").experiment_id
    assert str(registry.best_version(NAME, experiment, DATA)[0].version) == mine
    assert str(registry.best_version(NAME, experiment, "ffff0000")[0].version) == other
    with pytest.raises(PipelineError, match=r"trained on the data params\.yaml names"):
        registry.best_version(NAME, experiment, "no such data")


def test_tags_carry_each_splits_free_running_mse(root: Path) -> None:
    store.connect()
    version = register(tracked_run("mine", 0.2))
    registry.tag_version(NAME, version, {"test.free_run_mse": 0.2, "train.free_run_mse": 0.1,
                                         "test.skill_vs_mean": 0.9})
    tags = MlflowClient().get_model_version(NAME, version).tags
    assert (tags["test.free_run_mse"], tags["train.free_run_mse"]) == ("0.2", "0.1")
    assert "test.skill_vs_mean" not in tags  # on the run, not one request per version tag


def test_no_evaluated_version_and_a_missing_version_are_one_line_errors(root: Path) -> None:
    store.connect()
    register(tracked_run("mine", None))
    experiment = mlflow.get_experiment_by_name("mine").experiment_id
    with pytest.raises(PipelineError, match=f"no version of registered model '{NAME}' trained "
                                            r"on the data params.yaml names has a "
                                            r"validation\.free_run_mse"):
        registry.best_version(NAME, experiment, DATA)
    with pytest.raises(PipelineError, match=f"registered model '{NAME}' has no version '4'"):
        registry.named_version(NAME, "4")


def test_the_data_digest_follows_the_series_not_the_window_length(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    raw = default_params()
    functions = registry.data_digest(parse_params(raw))
    longer = with_overrides(raw, {"window": {"steps": 20}})
    assert registry.data_digest(parse_params(longer)) == functions  # a study may vary it
    moved = with_overrides(raw, {"generate": {"x_stop_pi": 4.0}})
    assert registry.data_digest(parse_params(moved)) != functions
    unused = copy.deepcopy(raw)
    unused["generate"]["csv"]["target"] = "other"  # the CSV settings, unused here
    assert registry.data_digest(parse_params(unused)) == functions
    own = with_overrides(raw, {"generate": {"source": "csv"}})
    own["generate"]["csv"]["path"] = "mine.csv"
    (tmp_path / "mine.csv").write_text("t,u,y\n0,1,2\n", encoding="utf-8")
    mine = registry.data_digest(parse_params(own))
    assert mine != functions
    (tmp_path / "mine.csv").write_text("t,u,y\n0,1,3\n", encoding="utf-8")  # an edit
    assert registry.data_digest(parse_params(own)) != mine
