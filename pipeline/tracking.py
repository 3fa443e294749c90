"""MLflow tracking: the one run each trained model gets, and what goes into it.

`train` opens the run and records its id in data/model/run.json; `evaluate` and `plot`
resume it by that id (pipeline.store says where runs are kept). A run never stays
RUNNING: it ends FINISHED, FAILED on an error, KILLED on Ctrl-C or SIGTERM, and one left
RUNNING by a SIGKILLed stage is closed as KILLED the next time a model is trained.
"""

import logging
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import paths, store
from pipeline.errors import InputError
from pipeline.files import read_json

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000  # metrics per log_batch request, MLflow's own limit
# Tags that say which process holds a run open, so an abandoned one can be closed.
HOST_TAG, PID_TAG = "pipeline.host", "pipeline.pid"


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
    tags = {
        "git.commit": commit or "unknown",
        "git.dirty": "unknown" if changes is None else str(bool(changes)).lower(),
        **{f"{package}.version": version(package)
           for package in ("tensorflow", "keras", "mlflow", "dvc")},
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def _owner_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_abandoned_runs(experiment_id: str) -> None:
    """Mark KILLED the runs left RUNNING by a process of this host that no longer exists.

    A SIGKILLed stage cannot end its run; runs of live processes (parallel experiments)
    and of other hosts are left alone.
    """
    client = MlflowClient()
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if tags.get(HOST_TAG) == socket.gethostname() and not _alive(int(tags.get(PID_TAG, 0))):
            log.warning("closing run %s, left RUNNING by process %s", run.info.run_id,
                        tags[PID_TAG])
            client.set_terminated(run.info.run_id, "KILLED")


@contextmanager
def _ending_run(run: mlflow.ActiveRun) -> Iterator[mlflow.ActiveRun]:
    """End `run` FINISHED, or KILLED on Ctrl-C or SIGTERM, or FAILED on any other error."""
    try:
        yield run
    except KeyboardInterrupt:  # pipeline.cli turns SIGTERM into one as well
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


@contextmanager
def new_run(experiment: str) -> Iterator[mlflow.ActiveRun]:
    """Open a new run in `experiment`, named after the DVC experiment when there is one."""
    uri = store.connect()
    experiment_id = store.experiment_id(experiment)
    close_abandoned_runs(experiment_id)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=os.environ.get("DVC_EXP_NAME"),
                           tags={**run_tags(), **_owner_tags()})
    log.info("MLflow run %s in experiment %r at %s", run.info.run_id, experiment, uri)
    with _ending_run(run):
        yield run


def recorded_run_id() -> str:
    """Return the id of the run `train` opened, from data/model/run.json."""
    run_id = read_json(paths.RUN).get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise InputError(f"{paths.RUN}: has no run_id; run `dvc repro -f train`")
    return run_id


@contextmanager
def resumed_run(run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Resume the run `train` opened, or fail naming the run and the store."""
    uri = store.connect()
    try:
        MlflowClient().get_run(run_id)
    except MlflowException as err:
        raise InputError(f"{paths.RUN}: MLflow run {run_id} is not in the store {uri}; "
                         f"run `dvc repro -f train` to train and track a new one") from err
    run = mlflow.start_run(run_id=run_id, tags=_owner_tags())
    with _ending_run(run):
        yield run


def log_params(run_id: str, values: Mapping[str, Any]) -> None:
    """Log params; a value that changed since it was logged goes to a tag of that name.

    MLflow params are immutable, yet a plot-only edit reruns `plot` on the same run:
    the tag then says which value the current figures used.
    """
    client = MlflowClient()
    logged = client.get_run(run_id).data.params
    # Lists print as in params.yaml, not as Python tuples.
    texts = {key: str(list(value) if isinstance(value, tuple) else value)
             for key, value in values.items()}
    fresh = {key: text for key, text in texts.items() if key not in logged}
    changed = {key: text for key, text in texts.items()
               if key in logged and logged[key] != text}
    if fresh:
        mlflow.log_params(fresh)
    for key, value in changed.items():
        log.info("param %s was logged as %s; tagging its new value %s", key, logged[key], value)
        client.set_tag(run_id, key, value)


def log_metric_series(run_id: str, series: Iterable[tuple[str, float, int]]) -> None:
    """Log (key, value, step) metrics in as few requests as MLflow allows."""
    metrics = [Metric(key, float(value), 0, int(step)) for key, value, step in series]
    for start in range(0, len(metrics), BATCH_LIMIT):
        MlflowClient().log_batch(run_id, metrics=metrics[start:start + BATCH_LIMIT])


def log_file(path: Path, folder: str) -> None:
    """Copy a file into the active run's artifacts under `folder`."""
    mlflow.log_artifact(str(path), folder)
