"""The tuning study as a team runs it: two machines (two clones) run `python -m
pipeline.tune` on one shared study and one real `mlflow server`. Each trial is a DVC
experiment and a run tagged with the study and trial, recording what ranks it (no images,
no plot stage); a trial that fails is recorded with its reason and does not count; the
best trial is chosen on validation, and so is the champion. A hopeless trial is pruned
while it trains; `--timeout` stops starting trials."""

import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import clone, experiment_table, logged_image_steps, run, share, write_params
from mlflow.tracking import MlflowClient
from postgres import MEMBERS, READER, admit_team, login, postgres_cluster, team_server

from pipeline.paths import METRICS, STAGES

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
TUNE = [sys.executable, "-m", "pipeline.tune"]
STUDY = "probe"
SPACE = {"study": STUDY, "seed": 3, "space": {
    "train.learning_rate": {"low": 0.002, "high": 0.05, "log": True},
    "model.units": {"choices": [3, 5]},
}}
# No machine here has 3 devices: a trial in this space fails in `train`, as a bad
# combination of a real search space would.
FAILING = {**SPACE, "space": {**SPACE["space"], "train.devices": {"choices": [3]}}}
TRIALS = 2  # one each for two workers, after one failing (failed trials do not count);
# several trials at once on one machine (--jobs 2): README's study in test_own_series.py


def study_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    """Return the study's trials, none if it does not exist yet."""
    try:
        return optuna.load_study(study_name=STUDY, storage=storage).trials
    except KeyError:
        return []


def experiments(clone: Path) -> set[str]:
    """Return the names of the DVC experiments a clone holds."""
    listed = run([*DVC, "exp", "list", "--name-only"], clone).stdout
    return {line.strip() for line in listed.splitlines() if line.strip()}


def test_two_workers_share_one_study_of_dvc_experiments_and_tagged_runs(
        repo: Path, tmp_path: Path, tiny_params: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The team's stack: the study and MLflow's runs in PostgreSQL, MLflow's logins, served
    # artifacts; two machines (clones), each with its own login.
    (repo / "tune.yaml").write_text(yaml.safe_dump(SPACE), encoding="utf-8")
    (repo / "failing.yaml").write_text(yaml.safe_dump(FAILING), encoding="utf-8")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "search spaces"], repo)
    # One git remote and one DVC remote (folders here) for every machine.
    origin = tmp_path / "origin.git"
    share(repo, tmp_path / "dvc-remote", origin)
    second = clone(origin, tmp_path / "second")
    params_before = (repo / "params.yaml").read_text()
    name, model = (tiny_params["tracking"][key] for key in ("experiment", "registered_model"))
    with postgres_cluster() as cluster, team_server(cluster, tmp_path / "server") as server:
        storage = cluster.create("optuna")
        admit_team(server, name, model)
        alice, bob = ({**os.environ, "MLFLOW_TRACKING_URI": server, **login(user)}
                      for user in ("alice", "bob"))
        # A trial that fails is recorded with its reason; a study with no completed trial
        # fails, in one line, and the failed trial does not count next time.
        failing = run([*TUNE, "--trials", "1", "--space", "failing.yaml", "--storage",
                       storage], repo, env=alice, check=False)
        assert failing.returncode == 2
        assert "train.devices = 3 is invalid" in failing.stderr
        assert failing.stderr.strip().splitlines()[-1].endswith(
            "error: no trial of study probe completed; each failed trial's reason is above "
            "and in its log under .dvc/tmp/pipeline-tune-logs")
        with ThreadPoolExecutor(2) as workers:
            first = workers.submit(run, [*TUNE, "--trials", str(TRIALS), "--storage", storage],
                                   repo, env=alice, timeout=900)
            joined = workers.submit(run, [*TUNE, "--trials", str(TRIALS), "--storage", storage],
                                    second, env=bob, timeout=900)
            outputs = [first.result().stderr, joined.result().stderr]
        assert f"study probe: 0 trials so far, running {TRIALS}" in outputs[0] + outputs[1]
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MEMBERS["alice"])
        client = MlflowClient(server)
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id],
                                  f"tags.`pipeline.study` = '{STUDY}'")
        trials = study_trials(storage)
        check_trials(trials, outputs)
        complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
        check_experiments(repo, second, complete)
        check_runs(client, runs, complete)
        for machine in (repo, second):  # each shares its trials' experiments
            run([*DVC, "exp", "push", "origin"], machine)
        # The champion is the best on validation, as the study's best trial is.
        run([sys.executable, "-m", "pipeline.champion"], repo, env=alice)
        best = min(complete, key=lambda trial: trial.value)
        crowned = client.get_model_version_by_alias(model, "champion")
        assert client.get_run(crowned.run_id).data.tags["pipeline.trial"] == str(best.number)
        before = len(client.search_runs([experiment.experiment_id]))
        check_reader_and_stranger(server, clone(origin, tmp_path / "third"), model, complete)
        assert len(client.search_runs([experiment.experiment_id])) == before  # none added
    # The workspaces are as they were: no param changed, nothing ran there.
    assert (repo / "params.yaml").read_text() == params_before
    for machine in (repo, second):
        assert run(["git", "status", "--porcelain"], machine).stdout == ""
        assert not (machine / METRICS).exists()
    assert run(["git", "check-ignore", "tune.db"], repo).stdout.strip() == "tune.db"


# The champion, then every trial's model (one registered version each), through the server.
LOAD_MODELS = """
import sys, mlflow, numpy as np
name = sys.argv[1]
versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
for uri in [f"models:/{name}@champion", *(f"models:/{name}/{v.version}" for v in versions)]:
    print(uri, mlflow.pyfunc.load_model(uri).predict(np.zeros((1, 8, 1), np.float32)).shape)
"""


def check_reader_and_stranger(server: str, third: Path, model: str,
                              complete: list[optuna.trial.FrozenTrial]) -> None:
    """On a third machine (a clone of the shared git remote), a reader loads the champion
    and every trial's model through the server (artifacts served, nothing local) and
    brings the best trial's outputs back from the DVC remote, but may not log (a stage) or
    crown; without a login nothing is read. Each refusal is one line naming the server,
    never a password, and leaves nothing written."""
    reader = {**os.environ, "MLFLOW_TRACKING_URI": server, **READER}
    loaded = run([sys.executable, "-c", LOAD_MODELS, model], third, env=reader).stdout
    # The champion and one version per completed trial, each answering a window.
    answers = [line.split()[-3:] for line in loaded.splitlines() if line.startswith("models:/")]
    assert answers == [["(1,", "8,", "1)"]] * (1 + len(complete))
    stranger = {key: value for key, value in reader.items() if key not in READER}
    refused = {"reader": f"MLflow tracking server {server} lets 'rita' read but not write",
               "stranger": f"MLflow tracking server {server} needs a login: set "
                           f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"}

    def refuses(who: str, env: dict[str, str], command: list[str]) -> None:
        done = run(command, third, env=env, check=False)
        assert done.returncode != 0
        (line,) = [line for line in done.stderr.splitlines() if " error: " in line]
        assert refused[who] in line, line
        assert READER["MLFLOW_TRACKING_PASSWORD"] not in done.stderr + done.stdout

    refuses("reader", reader, [sys.executable, "-m", "pipeline.champion"])
    refuses("stranger", stranger, [sys.executable, "-m", "pipeline.champion"])
    # Every completed trial is on the shared git remote once; the best one's outputs
    # come back from the DVC remote, as it measured them, without training.
    shared = run([*DVC, "exp", "list", "origin", "--name-only"], third).stdout.split()
    assert len(shared) == len(set(shared))
    assert {trial.user_attrs["experiment"] for trial in complete} <= set(shared)
    best = min(complete, key=lambda trial: trial.value)
    name = best.user_attrs["experiment"]
    run([*DVC, "exp", "pull", "origin", name], third)
    shown = experiment_table(third)[name]
    assert float(shown["validation.free_run_mse"]) == pytest.approx(best.value, rel=1e-3)
    assert float(shown["train.learning_rate"]) == pytest.approx(
        best.params["train.learning_rate"], rel=1e-3)
    run([*DVC, "exp", "apply", name], third)
    measured = json.loads((third / METRICS).read_text())
    assert measured["validation"]["free_run_mse"] == pytest.approx(best.value)
    figures = {path: (third / path).read_bytes() for path in STAGES["plot"].writes}
    assert "Running stage" not in run([*DVC, "repro"], third, env=reader).stdout
    # A stage that would log to the run stops before it writes a figure.
    for who, env in (("reader", reader), ("stranger", stranger)):
        refuses(who, env, [*DVC, "repro", "--force", "--single-item", "plot"])
        for path, drawn in figures.items():  # DVC removes a stage's outputs before it runs
            assert not (third / path).exists() or (third / path).read_bytes() == drawn


def check_trials(trials: list[optuna.trial.FrozenTrial], outputs: list[str]) -> None:
    """Both workers together ran the trials asked for, each once; failures say why."""
    # A worker that finishes a trial as the other starts one may add one more.
    assert TRIALS + 1 <= len(trials) <= TRIALS + 2
    assert [trial.number for trial in trials] == list(range(len(trials)))
    assert all("starts:" in output for output in outputs)  # both workers ran trials
    failed, *others = trials
    assert (failed.state.name, failed.params["train.devices"]) == ("FAIL", 3)
    assert "train.devices = 3 is invalid" in failed.user_attrs["failure"]
    for trial in trials:
        assert trial.user_attrs["experiment"] == f"{STUDY}-{trial.number}"
    for trial in others:
        assert trial.state.name == "COMPLETE"
        assert trial.value > 0 and trial.user_attrs["test.free_run_mse"] > 0
    assert f"best: trial {min(complete_values(trials))[1]}" in outputs[0] + outputs[1]


def complete_values(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[float, int]]:
    """Return (validation MSE, trial number) of the completed trials."""
    return [(trial.value, trial.number) for trial in trials if trial.state.name == "COMPLETE"]


def check_experiments(repo: Path, second: Path,
                      complete: list[optuna.trial.FrozenTrial]) -> None:
    """Each completed trial is an experiment of exactly one machine; both contributed."""
    mine, theirs = experiments(repo), experiments(second)
    names = {trial.user_attrs["experiment"] for trial in complete}
    assert names <= mine | theirs
    assert not mine & theirs
    assert mine & names and theirs & names


def check_runs(client: MlflowClient, runs: list[Any],
               complete: list[optuna.trial.FrozenTrial]) -> None:
    """One FINISHED run per completed trial, tagged, with its metrics; no figures."""
    by_trial = {run.data.tags["pipeline.trial"]: run for run in runs
                if run.info.status == "FINISHED"}
    assert set(by_trial) == {str(trial.number) for trial in complete}
    for trial in complete:
        tracked = by_trial[str(trial.number)]
        assert tracked.data.tags["dvc.experiment"] == trial.user_attrs["experiment"]
        assert tracked.info.run_name == trial.user_attrs["experiment"]
        assert tracked.data.params["tracking.trial"] == trial.user_attrs["experiment"]
        assert tracked.data.metrics["validation.free_run_mse"] == pytest.approx(trial.value)
        assert tracked.data.metrics["test.free_run_mse"] == pytest.approx(
            trial.user_attrs["test.free_run_mse"])
        assert float(tracked.data.params["train.learning_rate"]) == (
            trial.params["train.learning_rate"])
        # What a trial leaves out: prediction images and the plot stage's figures.
        assert logged_image_steps(client, tracked.info.run_id) == set()
        assert not client.list_artifacts(tracked.info.run_id, "plots")
        assert 0 < trial.user_attrs["fit_seconds"] < trial.user_attrs["seconds"]


# Seeded so that TPE's first draws are a learning rate that trains (0.05), then one that
# cannot (1e-6: the median pruner stops it), then 0.05 again.
PRUNING = {"study": "pruning", "seed": 2,
           "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 5},
           "space": {"train.learning_rate": {"choices": [0.05, 0.000001]}}}
EPOCHS = 1000  # long enough that the pruner sees the curve before it ends (it stopped
# the hopeless trial after 130 and 219 epochs in two runs)
TIMEOUT = {"study": "timeout", "seed": 0, "pruner": {"name": "none"},
           "space": {"train.learning_rate": {"choices": [0.05]}, "train.epochs": 3}}


def test_a_hopeless_trial_is_pruned_while_it_trains_and_a_timeout_ends_the_study(
        repo: Path, tiny_params: dict[str, Any]) -> None:
    write_params(repo, {**tiny_params, "train": {**tiny_params["train"], "epochs": EPOCHS}})
    (repo / "tune.yaml").write_text(yaml.safe_dump(PRUNING), encoding="utf-8")
    run(["git", "commit", "-qam", "a long training and a pruner"], repo)
    output = run([*TUNE, "--trials", "2"], repo).stderr
    storage = f"sqlite:///{repo / 'tune.db'}"
    kept, pruned = optuna.load_study(study_name="pruning", storage=storage).trials
    assert (kept.state.name, kept.params["train.learning_rate"]) == ("COMPLETE", 0.05)
    assert (pruned.state.name, pruned.params["train.learning_rate"]) == ("PRUNED", 1e-6)
    assert re.search(r"trial 1 is pruned after epoch \d+ \(val_loss [\d.]+\): stopping it",
                     output)
    # Still a DVC experiment, and an MLflow run tagged pruned with the epochs it trained.
    assert {"pruning-0", "pruning-1"} <= experiments(repo)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    (tracked,) = client.search_runs(
        [client.get_experiment_by_name(tiny_params["tracking"]["experiment"]).experiment_id],
        "tags.`pipeline.trial` = '1'")
    assert tracked.info.status == "FINISHED"
    assert tracked.data.tags["pipeline.pruned"] == "true"
    epochs = len(client.get_metric_history(tracked.info.run_id, "loss"))
    assert epochs == pruned.user_attrs["epochs"] < EPOCHS
    assert "1 complete, 1 pruned" in output
    # --timeout: no trial starts after the deadline; the one running finishes. Its own
    # study of short trials: what is timed is the start, not the training.
    (repo / "tune.yaml").write_text(yaml.safe_dump(TIMEOUT), encoding="utf-8")
    run(["git", "commit", "-qam", "a study by the clock"], repo)
    timed = run([*TUNE, "--trials", "10", "--timeout", "0.05"], repo).stderr
    assert "running 10 (1 at a time) for at most 0.05 minutes" in timed
    (ended,) = optuna.load_study(study_name="timeout", storage=storage).trials
    assert ended.state.name == "COMPLETE"
