"""MLflow tracking through its public API: the one run each trained model gets.

`train` opens the run and records its id in data/model/run.json; `evaluate` and `plot`
resume it by that id. A run never stays RUNNING: it ends FINISHED, FAILED on an error,
KILLED on Ctrl-C or SIGTERM; a run whose stage was SIGKILLed is closed KILLED by the
next stage that tracks from the same working copy (see `_holding`).
Where runs are stored is pipeline.store's.
"""

import fcntl
import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import paths, store
from pipeline.errors import InputError
from pipeline.io import read_json

log = logging.getLogger(__name__)

PACKAGES = ("tensorflow", "keras", "mlflow", "dvc")


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
    return tags


def _store_digest() -> str:
    # The URI may carry credentials: records name the store by a digest only.
    return hashlib.sha256(store.tracking_uri().encode()).hexdigest()[:16]


@contextmanager
def _holding(run_id: str) -> Iterator[None]:
    """Record, under the repository root, that this process holds `run_id` open.

    The record is locked while the stage lives: a record nobody locks belongs to a stage
    that was killed without ending its run (SIGKILL, out of memory).
    """
    folder = store.project_root() / paths.OPEN_RUNS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"{run_id}.json"
    with (folder / f".{run_id}.{os.getpid()}").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # locked before others can see it, then renamed
        handle.write(json.dumps({"run_id": run_id, "store": _store_digest()}))
        handle.flush()
        Path(handle.name).replace(record)
        try:
            yield
        finally:
            record.unlink(missing_ok=True)


def close_abandoned_runs() -> None:
    """End KILLED this store's runs that a killed stage of this working copy left RUNNING."""
    folder = store.project_root() / paths.OPEN_RUNS_DIR
    for record in folder.glob("*.json") if folder.is_dir() else ():
        try:
            with record.open() as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = json.loads(handle.read())
        except BlockingIOError:
            continue  # its stage is alive (a parallel experiment)
        except FileNotFoundError:
            continue  # its stage has just ended it
        if held.get("store") != _store_digest():
            continue  # another store's run; closed when that store is used again
        with suppress(MlflowException):
            if MlflowClient().get_run(held["run_id"]).info.status == "RUNNING":
                log.warning("closing run %s, left RUNNING by a killed stage", held["run_id"])
                MlflowClient().set_terminated(held["run_id"], "KILLED")
        record.unlink(missing_ok=True)


@contextmanager
def _ending(run_id: str) -> Iterator[None]:
    """End the active run FINISHED, or KILLED on Ctrl-C or SIGTERM, or FAILED on an error."""
    with _holding(run_id):
        try:
            yield
            mlflow.flush_async_logging()  # exit 0 must mean everything is stored
        except BaseException as err:
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            with suppress(Exception):  # keep the first error, not one from ending the run
                mlflow.end_run(status)
            raise
        mlflow.end_run("FINISHED")
        log.info("MLflow run %s at %s", run_id, mlflow.get_tracking_uri())


@contextmanager
def training_run(experiment: str) -> Iterator[mlflow.ActiveRun]:
    """Open a new run in `experiment`, named after the DVC experiment when there is one."""
    experiment_id_ = store.experiment_id(experiment)
    close_abandoned_runs()
    # System metrics: CPU, memory and disk over the run, beside its loss in the UI. Its
    # monitor's INFO lines (started, no GPU, stopping, stopped) are noise in a stage's log.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    run = mlflow.start_run(experiment_id=experiment_id_, tags=run_tags(),
                           run_name=os.environ.get("DVC_EXP_NAME"), log_system_metrics=True)
    with _ending(run.info.run_id):
        yield run


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
    """Resume the run `train` opened, or fail naming the run and the store."""
    store.connect()
    close_abandoned_runs()
    try:
        MlflowClient().get_run(run_id)
    except MlflowException as err:
        raise InputError(f"{paths.RUN}: MLflow run {run_id} is not in the store "
                         f"{mlflow.get_tracking_uri()}; run `dvc repro -f train` to train and "
                         f"track a new one") from err
    run = mlflow.start_run(run_id=run_id)
    with _ending(run_id):
        yield run


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
