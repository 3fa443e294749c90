"""Everything the pipeline writes to MLflow, by explicit run id: the tracking agent's work.

Only pipeline.agent imports this module (MLflow's import and store start-up cost about
2 s per process); stages reach it through pipeline.tracking. Each function is one
request of the agent's protocol and takes and returns plain JSON values.
"""

import fcntl
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import store
from pipeline.errors import InputError, PipelineError

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000  # metrics per log_batch request, MLflow's own limit
# Tags that say which stage process holds a run open, so an abandoned one can be closed.
HOST_TAG, PID_TAG = "pipeline.host", "pipeline.pid"
# MLflow's model logging resolves the experiment through process-wide state; one at a time.
_MODEL_LOCK = threading.Lock()


@contextmanager
def _creation_lock() -> Iterator[None]:
    """Hold an exclusive lock beside a local SQLite store while it may be created.

    Queued experiments that start together would otherwise race to create the schema
    and the experiment ("table already exists", "database is locked").
    """
    database = store.sqlite_path(mlflow.get_tracking_uri())
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with (database.parent / f"{database.name}-lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def connect(uri: str) -> None:
    """Point MLflow at the store and make sure it answers."""
    for name, value in store.HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    store.check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    with _creation_lock():
        MlflowClient().search_experiments(max_results=1)  # creates a new store's schema


def experiment_id(name: str) -> str:
    """Return the id of experiment `name`, creating it (absolute artifact root) if needed."""
    client = MlflowClient()
    with _creation_lock():
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(
                    name, artifact_location=store.artifact_location(mlflow.get_tracking_uri()))
            except MlflowException:  # another process (on a server) created it meanwhile
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(f"MLflow experiment {name!r} is deleted; restore it with "
                            f"`mlflow experiments restore` or set tracking.experiment")
    return experiment.experiment_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_abandoned_runs(experiment: str) -> None:
    """Mark KILLED the runs left RUNNING by a process of this host that no longer exists.

    The agent ends the runs of a stage that disappears; this catches the rest (an agent
    killed as well, or a store written by an older version). Runs of live processes
    (parallel experiments) and of other hosts are left alone.
    """
    client = MlflowClient()
    for run in client.search_runs([experiment], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if tags.get(HOST_TAG) == socket.gethostname() and not _alive(int(tags.get(PID_TAG, 0))):
            log.warning("closing run %s, left RUNNING by process %s", run.info.run_id,
                        tags[PID_TAG])
            client.set_terminated(run.info.run_id, "KILLED")


def open_run(experiment: str, run_name: str | None, tags: Mapping[str, str]) -> dict[str, str]:
    """Create a run in `experiment`; return its run_id and experiment_id."""
    experiment_id_ = experiment_id(experiment)
    close_abandoned_runs(experiment_id_)
    run = MlflowClient().create_run(experiment_id_, run_name=run_name, tags=dict(tags))
    return {"run_id": run.info.run_id, "experiment_id": experiment_id_}


def resume_run(run_id: str, tags: Mapping[str, str], source: str) -> dict[str, str]:
    """Mark run `run_id` RUNNING again, or fail naming the run, the store and `source`."""
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise InputError(f"{source}: MLflow run {run_id} is not in the store "
                         f"{mlflow.get_tracking_uri()}; run `dvc repro -f train` to train "
                         f"and track a new one") from err
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return {"run_id": run_id, "experiment_id": run.info.experiment_id}


def end_run(run_id: str, status: str) -> None:
    """End the run FINISHED, FAILED or KILLED."""
    MlflowClient().set_terminated(run_id, status)


def log_params(run_id: str, values: Mapping[str, str]) -> None:
    """Log params; a value that changed since it was logged goes to a tag of that name.

    MLflow params are immutable, yet a plot-only edit reruns `plot` on the same run:
    the tag then says which value the current figures used.
    """
    client = MlflowClient()
    logged = client.get_run(run_id).data.params
    fresh = {key: text for key, text in values.items() if key not in logged}
    changed = {key: text for key, text in values.items()
               if key in logged and logged[key] != text}
    if fresh:
        client.log_batch(run_id, params=[Param(key, text) for key, text in fresh.items()])
    for key, value in changed.items():
        log.info("param %s was logged as %s; tagging its new value %s", key, logged[key], value)
        client.set_tag(run_id, key, value)


def log_metrics(run_id: str, series: Iterable[tuple[str, float, int]]) -> None:
    """Log (key, value, step) metrics in as few requests as MLflow allows."""
    metrics = [Metric(key, float(value), 0, int(step)) for key, value, step in series]
    for start in range(0, len(metrics), BATCH_LIMIT):
        MlflowClient().log_batch(run_id, metrics=metrics[start:start + BATCH_LIMIT])


def log_file(run_id: str, path: str, folder: str) -> None:
    """Copy a file into the run's artifacts under `folder`."""
    MlflowClient().log_artifact(run_id, path, folder)


def log_model(run_id: str, path: str, name: str, example: Mapping[str, list[Any]],
              description: Mapping[str, Any]) -> str:
    """Log the Keras model saved at `path` under `name`; return its model URI.

    `example` maps input names to nested lists (a single input may be named ""), and
    `description` is pipeline.fitting.describe_model's plain description of the model.
    """
    from pipeline import logged_model  # noqa: PLC0415 - MLflow's model code, loaded on use

    arrays = {key: np.asarray(value, np.float32) for key, value in example.items()}
    experiment = MlflowClient().get_run(run_id).info.experiment_id
    with _MODEL_LOCK:
        mlflow.set_experiment(experiment_id=experiment)
        return logged_model.log_saved_model(run_id, path, name, arrays, description)
