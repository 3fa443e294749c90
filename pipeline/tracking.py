"""MLflow tracking through its public API: the one run each trained model gets.

`train` opens the run and records its id in data/model/run.json; `evaluate` and `plot`
resume it by that id. A run never stays RUNNING: it ends FINISHED, FAILED on an error,
KILLED on Ctrl-C or SIGTERM; a run whose stage was SIGKILLed is closed KILLED by the
next stage that tracks from the same working copy (pipeline.open_runs).
Where runs are stored is pipeline.store's.
"""

import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from importlib.metadata import version
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import open_runs, paths, store
from pipeline.errors import InputError
from pipeline.files import read_json

log = logging.getLogger(__name__)

PACKAGES = ("tensorflow", "keras", "mlflow", "dvc")
# A tuning study (pipeline.tune) names itself and its trial to the stages it runs through
# these variables; the runs carry them as tags, so the MLflow UI groups runs by study.
STUDY_ENV, TRIAL_ENV = "PIPELINE_STUDY", "PIPELINE_TRIAL"
STUDY_TAGS = {STUDY_ENV: "pipeline.study", TRIAL_ENV: "pipeline.trial"}
# ... and the file whose appearance asks `train` to stop (a pruned trial).
STOP_ENV = "PIPELINE_STOP_FILE"
# A training run's wall seconds of building and fitting the model (this fit only, if it
# resumed): what a tuning study compares with its trials' whole time.
FIT_SECONDS = "fit_seconds"


def _git(*args: str) -> str | None:
    """Return git's output for `args` in the working directory, or None outside git."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def run_tags() -> dict[str, str]:
    """Return the tags that say where a run came from."""
    commit = _git("rev-parse", "HEAD")
    # dvc.lock changes as stages finish; it says nothing about the code or params used.
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock")
    tags = {"git.commit": commit or "unknown",
            "git.dirty": "unknown" if changes is None else str(bool(changes)).lower(),
            **{f"{package}.version": version(package) for package in PACKAGES}}
    if commit:
        tags["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
    tags.update({tag: os.environ[name] for name, tag in STUDY_TAGS.items()
                 if os.environ.get(name)})
    return tags


@contextmanager
def _ending(run_id: str) -> Iterator[None]:
    """End the active run FINISHED, or KILLED on Ctrl-C or SIGTERM, or FAILED on an error."""
    with open_runs.holding(run_id):
        try:
            yield
            mlflow.flush_async_logging()  # exit 0 must mean everything is stored
        except BaseException as err:
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            with suppress(Exception):  # keep the first error, not one from ending the run
                mlflow.end_run(status)
            raise
        mlflow.end_run("FINISHED")
        log.info("MLflow run %s at %s", run_id, store.shown(mlflow.get_tracking_uri()))


RESUMES_TAG = "pipeline.resumes"  # how many times a killed training continued this run


@contextmanager
def training_run(experiment: str, resumed: tuple[str, int] | None = None
                 ) -> Iterator[mlflow.ActiveRun]:
    """Open a new run in `experiment`, named after the DVC experiment when there is one; or,
    with `resumed` (run id, resumes before), continue the run of a killed training."""
    experiment_id_ = store.experiment_id(experiment)
    if resumed and not _in_store(resumed[0]):
        log.warning("run %s of the training's backup is not in the store; starting afresh",
                    resumed[0])
        resumed = None
    open_runs.close_abandoned(keep=resumed[0] if resumed else None)
    # System metrics: CPU, memory and disk over the run, beside its loss in the UI. Its
    # monitor's INFO lines (started, no GPU, stopping, stopped) are noise in a stage's log.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    if resumed:
        run = mlflow.start_run(run_id=resumed[0], log_system_metrics=True)
        mlflow.set_tag(RESUMES_TAG, str(resumed[1] + 1))
    else:
        run = mlflow.start_run(experiment_id=experiment_id_, tags=run_tags(),
                               run_name=os.environ.get("DVC_EXP_NAME"),
                               log_system_metrics=True)
    with _ending(run.info.run_id):
        yield run


def _in_store(run_id: str) -> bool:
    """Return whether the store has run `run_id`."""
    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True


def metric_by_step(run_id: str, key: str) -> dict[int, float]:
    """Return a metric of the run as step -> value, the first value logged at each step."""
    mlflow.flush_async_logging()
    history = sorted(MlflowClient().get_metric_history(run_id, key),
                     key=lambda metric: metric.timestamp, reverse=True)
    return {metric.step: metric.value for metric in history}


def recorded_run_id() -> str:
    """Return the id of the run `train` opened, from data/model/run.json."""
    run_id = read_json(paths.RUN).get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise InputError(f"{paths.RUN}: has no run_id; run `dvc repro -f train`")
    return run_id


def recorded_version() -> tuple[str, str]:
    """Return the registered model and version of the predictor `train` logged."""
    record = read_json(paths.RUN)
    name, version = record.get("registered_model"), record.get("model_version")
    if not (isinstance(name, str) and isinstance(version, str)):
        raise InputError(f"{paths.RUN}: has no registered model version; run "
                         f"`dvc repro -f train`")
    return name, version


@contextmanager
def resumed_run(run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Resume run `run_id`, or fail naming the run and the store."""
    store.connect()
    open_runs.close_abandoned()
    _recorded_run(run_id)
    run = mlflow.start_run(run_id=run_id)
    with _ending(run_id):
        yield run


MODEL_RUN_TAG = "pipeline.model_run"  # on an experiment's run: the run that trained its model


@contextmanager
def results_run(params: Mapping[str, Any]) -> Iterator[mlflow.ActiveRun]:
    """Resume the run that holds this stage's results: the run that trained the model
    (data/model/run.json), or, in a DVC experiment that reuses a model another run trained
    (its `train` skipped or restored from DVC's run-cache), the experiment's own run.

    That run is created by the experiment's first tracked stage, named after it, with all
    its `params`, the training run's loss curves and evaluation metrics, and MODEL_RUN_TAG
    naming the training run; no stage writes into another experiment's run.
    """
    trained_by = recorded_run_id()
    name = os.environ.get("DVC_EXP_NAME")
    store.connect()
    open_runs.close_abandoned()
    training = _recorded_run(trained_by)
    if not name or training.data.tags.get("dvc.experiment") == name:
        run = mlflow.start_run(run_id=trained_by)
    else:
        run = _experiment_run(name, training, params)
    with _ending(run.info.run_id):
        yield run


def _recorded_run(run_id: str) -> Any:
    """Return run `run_id` from the store, or fail naming it and the store."""
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException as err:
        where = store.shown(mlflow.get_tracking_uri())
        raise InputError(f"{paths.RUN}: MLflow run {run_id} is not in the store {where}; "
                         f"run `dvc repro -f train` to train and track a new one") from err


def _experiment_run(name: str, training: Any, params: Mapping[str, Any]) -> mlflow.ActiveRun:
    """Resume DVC experiment `name`'s own run for the model `training` trained, or start it."""
    trained_by = training.info.run_id
    found = MlflowClient().search_runs(
        [training.info.experiment_id], max_results=1,
        filter_string=f"tags.`dvc.experiment` = '{name}' and "
                      f"tags.`{MODEL_RUN_TAG}` = '{trained_by}'")
    if found:
        return mlflow.start_run(run_id=found[0].info.run_id)
    run = mlflow.start_run(experiment_id=training.info.experiment_id, run_name=name,
                           tags={**run_tags(), MODEL_RUN_TAG: trained_by})
    log.info("experiment %s reuses the model of run %s; its results go to run %s", name,
             trained_by, run.info.run_id)
    log_params(params)
    _copy_results(training)
    return run


def _copy_results(training: Any) -> None:
    """Log the training run's loss curves and evaluation metrics to the active run."""
    client, run_id = MlflowClient(), mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    curves = [metric for key in ("loss", "val_loss")
              for metric in client.get_metric_history(training.info.run_id, key)]
    latest = [Metric(key, value, now, 0) for key, value in training.data.metrics.items()
              if key not in {"loss", "val_loss"} and not key.startswith("system/")]
    for start in range(0, len(curves) + len(latest), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=[*curves, *latest][start:start + 1000])


def log_params(values: Mapping[str, Any]) -> None:
    """Log params of the active run; a value that changed since is recorded as a tag.

    MLflow params are immutable, yet a plot-only edit reruns `plot` on the same run: the
    tag then says which value the current figures used.
    """
    texts = {key: str(list(value) if isinstance(value, tuple) else value)
             for key, value in values.items()}  # lists as params.yaml writes them
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({key: text for key, text in texts.items() if key not in logged})
    for key, text in texts.items():
        if key in logged and logged[key] != text:
            log.info("param %s was logged as %s; tagging its new value %s", key, logged[key],
                     text)
            mlflow.set_tag(key, text)
