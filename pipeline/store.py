"""Where MLflow keeps runs, and connecting to it safely.

The default store is `sqlite:///<repo root>/mlflow.db`, the root taken from DVC_ROOT when
DVC runs the stage, so experiments DVC runs in temporary copies land in the same store;
MLFLOW_TRACKING_URI overrides it (for a team's server). A server that does not answer
fails the stage in seconds, naming the URI, instead of after minutes of retries.
"""

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.errors import PipelineError

SQLITE_PREFIX = "sqlite:///"
CONNECT_TIMEOUT_SECONDS = 5
# MLflow's own defaults (7 retries, 120 s timeout) take about 4 minutes to give up.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def project_root() -> Path:
    """Return the repository root: DVC_ROOT inside a DVC stage, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def tracking_uri() -> str:
    """Return MLFLOW_TRACKING_URI if set, else the SQLite store under the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (
        f"{SQLITE_PREFIX}{project_root() / paths.TRACKING_DB}")


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix(SQLITE_PREFIX)).resolve() if uri.startswith(
        SQLITE_PREFIX) else None


def artifact_location(uri: str) -> str | None:
    """Return an absolute artifact root beside a SQLite store; a server chooses its own."""
    database = _sqlite_path(uri)
    return None if database is None else (database.parent / paths.ARTIFACTS_DIR).as_uri()


def _check_reachable(uri: str) -> None:
    """Fail fast, naming the URI, if an HTTP tracking server does not accept connections."""
    address = urlparse(uri)
    if address.scheme not in {"http", "https"}:
        return
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname, port), CONNECT_TIMEOUT_SECONDS).close()
    except OSError as err:
        raise PipelineError(f"MLflow tracking server {uri} is not reachable ({err}); start "
                            f"it, or unset MLFLOW_TRACKING_URI to use the local store") from err


@contextmanager
def _creation_lock() -> Iterator[None]:
    """Hold an exclusive lock beside a local SQLite store while it may be created.

    Queued experiments that start together would otherwise race to create the schema
    and the experiment ("table already exists", "database is locked").
    """
    database = _sqlite_path(mlflow.get_tracking_uri())
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with (database.parent / f"{database.name}-lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def connect() -> str:
    """Point MLflow at the store and make sure it answers; return its URI."""
    uri = tracking_uri()
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    _check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    with _creation_lock():
        MlflowClient().search_experiments(max_results=1)  # creates a new store's schema
    return uri


def experiment_id(name: str) -> str:
    """Return the id of experiment `name`, creating it (absolute artifact root) if needed."""
    client = MlflowClient()
    with _creation_lock():
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(
                    name, artifact_location=artifact_location(mlflow.get_tracking_uri()))
            except MlflowException:  # another process (on a server) created it meanwhile
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(f"MLflow experiment {name!r} is deleted; restore it with "
                            f"`mlflow experiments restore` or set tracking.experiment")
    return experiment.experiment_id
