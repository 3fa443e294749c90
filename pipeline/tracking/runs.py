"""Which MLflow run a stage writes into, decided in one place (`choose`), then opened and
ended FINISHED, FAILED or KILLED (`opened`).
"""

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

import mlflow
from mlflow.entities import Metric, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.errors import InputError
from pipeline.tracking import open_runs, store
from pipeline.tracking.provenance import EXPERIMENT_TAG, dvc_experiment, run_tags
from pipeline.tracking.run_data import log_params
from pipeline.tracking.run_record import RunRecord

log = logging.getLogger(__name__)

RESUMES_TAG = "pipeline.resumes"  # how many times a killed training continued this run
MODEL_RUN_TAG = "pipeline.model_run"  # on an experiment's run: the run that trained its model


@dataclass(frozen=True)
class Choice:
    """The run a stage writes into: `run_id` (None: one to create) and why."""

    kind: Literal["new", "resumed", "training", "experiment"]
    experiment_id: str
    run_id: str | None = None
    resumes: int = 0  # a training run: how many times it has continued, this time included
    model_run: str | None = None  # an experiment's run: the run that trained its model


def choose(stage: str, experiment: str, backup: tuple[str, int] | None = None) -> Choice:
    """Return the run `stage` writes into (`train`: with its backup's run id and resumes, if
    any)."""
    with store.refusals():
        return _choose(stage, experiment, backup)


def _choose(stage: str, experiment: str, backup: tuple[str, int] | None) -> Choice:
    """`choose`, its refusals left to the caller."""
    if stage == "train":
        return _training_choice(store.experiment_id(experiment), backup)
    store.connect()
    record = RunRecord.read()
    training = _stored_run(record.run_id)
    name = dvc_experiment()
    if not name or training.data.tags.get(EXPERIMENT_TAG) == name:
        return Choice("training", training.info.experiment_id, record.run_id)
    found = MlflowClient().search_runs(
        [training.info.experiment_id], max_results=1,
        filter_string=f"tags.`{EXPERIMENT_TAG}` = '{name}' and "
                      f"tags.`{MODEL_RUN_TAG}` = '{record.run_id}'")
    return Choice("experiment", training.info.experiment_id,
                  found[0].info.run_id if found else None, model_run=record.run_id)


def _training_choice(experiment_id: str, backup: tuple[str, int] | None) -> Choice:
    """Resume the backup's run if the store has it, else start a new one."""
    if backup and _found(backup[0]):
        return Choice("resumed", experiment_id, backup[0], resumes=backup[1] + 1)
    if backup:
        log.warning("run %s of the training's backup is not in the store; starting afresh",
                    backup[0])
    return Choice("new", experiment_id)


def _found(run_id: str) -> Run | None:
    """Return the run, or None if the store lacks it (other errors are raised)."""
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None


def _stored_run(run_id: str) -> Run:
    """Return run `run_id` from the store, or fail naming it and the store."""
    run = _found(run_id)
    if run is None:
        where = store.shown(mlflow.get_tracking_uri())
        raise InputError(f"{paths.RUN}: MLflow run {run_id} is not in the store {where}; "
                         f"run `dvc repro -f train` to train and track a new one")
    return run


@contextmanager
def opened(choice: Choice, params: Mapping[str, Any] | None = None
           ) -> Iterator[mlflow.ActiveRun]:
    """Start or continue the chosen run, ended with the block; a new experiment run gets
    `params` and the training run's results."""
    open_runs.close_abandoned(keep=choice.run_id if choice.kind == "resumed" else None)
    training = choice.kind in {"new", "resumed"}
    if training:
        # System metrics: CPU, memory and disk over the run, beside its loss in the UI. Its
        # monitor's INFO lines (started, no GPU, stopping, stopped) are noise in a log.
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    with store.refusals():  # a login that may only read is refused here, before any work
        if choice.run_id:
            run = mlflow.start_run(run_id=choice.run_id, log_system_metrics=training or None)
        else:
            tags = run_tags() | ({MODEL_RUN_TAG: choice.model_run} if choice.model_run
                                 else {})
            run = mlflow.start_run(experiment_id=choice.experiment_id, tags=tags,
                                   run_name=dvc_experiment(),
                                   log_system_metrics=training or None)
    with _ending(run.info.run_id):
        if choice.kind == "resumed":
            mlflow.set_tag(RESUMES_TAG, str(choice.resumes))
        if choice.kind == "experiment" and not choice.run_id:
            log.info("experiment %s reuses the model of run %s; its results go to run %s",
                     dvc_experiment(), choice.model_run, run.info.run_id)
            log_params(params or {})
            _copy_results(_stored_run(choice.model_run))
        yield run


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


def _copy_results(training: Run) -> None:
    """Log the training run's loss curves and evaluation metrics to the active run."""
    client, run_id = MlflowClient(), mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    curves = [metric for key in ("loss", "val_loss")
              for metric in client.get_metric_history(training.info.run_id, key)]
    latest = [Metric(key, value, now, 0) for key, value in training.data.metrics.items()
              if key not in {"loss", "val_loss"} and not key.startswith("system/")]
    for start in range(0, len(curves) + len(latest), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=[*curves, *latest][start:start + 1000])
