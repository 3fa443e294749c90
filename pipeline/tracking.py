"""MLflow tracking: where runs are stored, and the one run each trained model gets.

`train` opens the run and records its id in data/model/run.json; `evaluate` and `plot`
resume it by that id. The default store is `sqlite:///<repo root>/mlflow.db`, the root
taken from DVC_ROOT when DVC runs the stage, so experiments that DVC runs in temporary
copies land in the same store; MLFLOW_TRACKING_URI overrides it (for a shared server).
"""

import logging
import os
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

from pipeline import paths
from pipeline.errors import InputError, PipelineError
from pipeline.files import read_json

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
BATCH_LIMIT = 1000  # metrics per log_batch request, MLflow's own limit


def project_root() -> Path:
    """Return the repository root: DVC_ROOT inside a DVC stage, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def tracking_uri() -> str:
    """Return MLFLOW_TRACKING_URI if set, else the SQLite store under the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (
        f"{SQLITE_PREFIX}{project_root() / paths.TRACKING_DB}")


def artifact_location(uri: str) -> str | None:
    """Return an absolute artifact root beside a SQLite store; a server chooses its own."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    database = Path(uri.removeprefix(SQLITE_PREFIX)).resolve()
    return (database.parent / paths.ARTIFACTS_DIR).as_uri()


def _experiment_id(client: MlflowClient, name: str, location: str | None) -> str:
    """Return the id of experiment `name`, creating it if it does not exist."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process created it between our lookup and create.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(f"MLflow experiment {name!r} is deleted; restore it with "
                            f"`mlflow experiments restore` or set tracking.experiment")
    return experiment.experiment_id


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


@contextmanager
def new_run(experiment: str) -> Iterator[mlflow.ActiveRun]:
    """Open a new run in `experiment`, named after the DVC experiment when there is one."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment_id = _experiment_id(MlflowClient(), experiment, artifact_location(uri))
    with mlflow.start_run(experiment_id=experiment_id, run_name=os.environ.get("DVC_EXP_NAME"),
                          tags=run_tags()) as run:
        log.info("MLflow run %s in experiment %r at %s", run.info.run_id, experiment, uri)
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
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        MlflowClient().get_run(run_id)
    except MlflowException as err:
        raise InputError(f"{paths.RUN}: MLflow run {run_id} is not in the store {uri}; "
                         f"run `dvc repro -f train` to train and track a new one") from err
    with mlflow.start_run(run_id=run_id) as run:
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
