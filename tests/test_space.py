"""The tuning study's parts that need no DVC run: the search space, the -S arguments, the
reason a failed experiment gives, and the epochs whose prediction figure is logged."""

import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import ROOT

from pipeline.errors import ParamsError, PipelineError
from pipeline.params import load_params, parse_params
from pipeline.tracking.images import image_epochs
from pipeline.tune import TrialSeededTPE, improvements, require_committed
from pipeline.tuning.experiment import failure_reason, set_param
from pipeline.tuning.space import load_space, parse_space


def space(entries: dict[str, Any]) -> dict[str, Any]:
    """Return a tune.yaml content with these space entries."""
    return {"study": "s", "seed": 0, "space": entries}


def test_the_committed_space_is_valid_and_suggests_params_yaml_values() -> None:
    params = load_params(ROOT / "params.yaml")
    loaded = load_space(ROOT / "tune.yaml", params)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    values = loaded.suggest(trial)
    assert set(values) == set(loaded.space)
    assert values["model.cell"] in {"simple_rnn", "gru", "lstm"}
    assert isinstance(values["model.units"], int) and 8 <= values["model.units"] <= 96
    assert isinstance(values["train.learning_rate"], float)
    assert values["train.epochs"] in {100, 200, 300, 400}
    assert values["train.early_stopping_patience"] == 100  # a fixed value
    assert trial.params.keys() == set(values) - {"train.early_stopping_patience"}


@pytest.mark.parametrize(("entries", "message"), [
    ({"model.unitz": {"low": 1, "high": 4}},
     r"tune.yaml: space.model.unitz is not a params.yaml key"),
    ({"train.learning_rate": {"low": 0.001, "high": 2.0}},
     r"space.train.learning_rate allows 2.0, which params.yaml does not \(.*must be in \(0, 1\]"),
    ({"model.cell": {"choices": ["lstm", "transformer"]}},
     r"space.model.cell allows 'transformer'"),
    ({"window.steps": {"choices": [8, 500]}},  # too long for the series: a relation
     r"space.window.steps allows 500.*must be less than generate.points"),
    ({"model.units": {"low": 64, "high": 8}}, r"space.model.units = .* must be less than"),
    ({"train.learning_rate": {"low": 0.0, "high": 0.1, "log": True}},
     r"a log range needs low > 0"),
    ({"model.units": {"choices": []}}, r"space.model.units = \{'choices': \[\]\} is invalid"),
    ({}, r"tune.yaml: space is invalid"),
])
def test_a_bad_space_is_one_line_naming_the_entry(entries: dict[str, Any], message: str,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(space(entries)), encoding="utf-8")
    with pytest.raises(ParamsError, match=message) as raised:
        load_space(path, load_params(ROOT / "params.yaml"))
    assert "\n" not in str(raised.value)


def test_a_bad_study_name_or_seed_is_named() -> None:
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ParamsError, match="study is invalid"):
        parse_space({**space({"model.units": 8}), "study": "my study/1"}, params, Path("t"))
    with pytest.raises(ParamsError, match="seed is invalid"):
        parse_space({**space({"model.units": 8}), "seed": -1}, params, Path("t"))


def test_set_param_writes_values_yaml_reads_back_as_they_were() -> None:
    for key, value in (("train.learning_rate", 1e-5), ("train.learning_rate", 0.0123),
                       ("model.units", 64), ("model.cell", "lstm"), ("flag", True)):
        argument = set_param(key, value)
        name, text = argument.split("=", 1)
        assert name == key
        assert yaml.safe_load(text) == value
    assert set_param("train.learning_rate", 1e-5) == "train.learning_rate=0.00001"


def test_failure_reason_prefers_the_stages_one_line_error() -> None:
    output = ["Running stage 'train':", "> python -m pipeline.stages.train",
              "07:01:02 pipeline: error: params.yaml: train.devices = 3 is invalid: this "
              "machine has 0 GPU(s) and 1 CPU device(s)",
              "ERROR: failed to reproduce 'train': failed to run: python -m ..., exited with 2"]
    assert failure_reason(output).startswith("params.yaml: train.devices = 3 is invalid")
    assert failure_reason(output[-1:]).startswith("failed to reproduce 'train'")
    assert failure_reason(["", "Killed", ""]) == "Killed"


@pytest.mark.parametrize(("epochs", "count", "expected"), [
    (80, 8, {0, 11, 23, 34, 45, 56, 68, 79}),
    (3, 8, {0, 1, 2}),
    (400, 1, {399}),
    (80, 0, set()),
])
def test_prediction_images_are_spread_over_training(epochs: int, count: int,
                                                     expected: set[int]) -> None:
    assert image_epochs(epochs, count) == expected


def test_the_best_so_far_curve_lists_each_improvement_once() -> None:
    def trial(number: int, value: float | None) -> optuna.trial.FrozenTrial:
        state = optuna.trial.TrialState.COMPLETE if value is not None else (
            optuna.trial.TrialState.FAIL)
        made = optuna.trial.create_trial(state=state, value=value)
        made.number = number
        return made

    trials = [trial(2, 0.5), trial(0, 1.0), trial(1, None), trial(3, 0.7), trial(4, 0.01)]
    assert improvements(trials) == [(0, 1.0), (2, 0.5), (4, 0.01)]
    assert improvements([trial(0, None)]) == []


def test_one_worker_with_the_same_seed_draws_the_same_trials_and_two_never_do() -> None:
    params = load_params(ROOT / "params.yaml")
    loaded = load_space(ROOT / "tune.yaml", params)

    def draws(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=TrialSeededTPE(seed))
        return [loaded.suggest(study.ask()) for _ in range(3)]

    assert draws(0) == draws(0)
    # Two workers that start together on one storage, each with tune.yaml's seed, draw
    # different first trials (the study numbers their trials 0 and 1).
    storage = optuna.storages.InMemoryStorage()
    workers = [optuna.create_study(storage=storage, study_name="shared", load_if_exists=True,
                                   sampler=TrialSeededTPE(0)) for _ in range(2)]
    first, second = (loaded.suggest(worker.ask()) for worker in workers)
    assert first != second
    assert [first, second] == draws(0)[:2]  # as one worker would have drawn them


def test_the_committed_pruner_is_optunas_median_pruner_with_its_own_keywords() -> None:
    loaded = load_space(ROOT / "tune.yaml", load_params(ROOT / "params.yaml"))
    pruner = loaded.pruner.build()
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (4, 20)
    assert isinstance(parse_space(space({"model.units": 8}), load_params(ROOT / "params.yaml"),
                                  Path("t")).pruner.build(), optuna.pruners.NopPruner)


@pytest.mark.parametrize(("pruner", "message"), [
    ({"name": "patient"}, r"t: pruner.name is invalid"),
    ({"name": "median", "n_warmup_epochs": 3}, r"pruner median with \{'n_warmup_epochs': 3\} "
                                               r"is invalid: .*unexpected keyword"),
    ({"name": "successive_halving", "reduction_factor": 1},
     r"pruner successive_halving with .* is invalid"),
])
def test_a_bad_pruner_is_one_line_before_any_trial(pruner: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises(ParamsError, match=message) as raised:
        parse_space({**space({"model.units": 8}), "pruner": pruner},
                    load_params(ROOT / "params.yaml"), Path("t"))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("name", "csv"), [
    ("tune-quick.yaml", None),
    ("tune-co2.yaml", {"path": "docs/examples/co2.csv", "x": "week", "input": "co2",
                       "target": "co2_in_52_weeks", "missing": "drop", "test_rows": 208}),
    ("tune-sunspots.yaml", {"path": "docs/examples/sunspots.csv", "x": "year",
                            "input": "sunspots", "target": "sunspots_in_11_years",
                            "missing": "drop", "test_rows": 60}),
])
def test_the_documented_spaces_are_valid_for_their_series(name: str,
                                                          csv: dict[str, Any] | None) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    if csv:
        raw["generate"]["source"] = "csv"
        raw["generate"]["csv"].update(csv)
    loaded = parse_space(yaml.safe_load((ROOT / "docs" / "examples" / name).read_text()),
                         parse_params(raw), Path(name))
    assert loaded.pruner.name == "median"
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    assert set(loaded.suggest(trial)) == set(loaded.space)


def test_a_study_on_a_csv_that_is_not_committed_is_refused_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["generate"]["source"] = "csv"
    raw["generate"]["csv"]["path"] = "data/mine.csv"
    params = parse_params(raw)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv.dvc").write_text("outs:\n- path: mine.csv\n")
    subprocess.run([*git, "add", "data/mine.csv.dvc"], check=True)  # staged, not committed
    with pytest.raises(PipelineError) as refused:
        require_committed(params)
    assert str(refused.value).startswith("data/mine.csv is not committed, so no trial would "
                                         "find it: commit it first (`dvc add data/mine.csv && "
                                         "git add data/mine.csv.dvc && git commit")
    subprocess.run([*git, "commit", "-qm", "my series"], check=True)
    require_committed(params)  # committed: the study may start
    require_committed(parse_params(yaml.safe_load((ROOT / "params.yaml").read_text())))
