"""Where MLflow keeps runs: MLFLOW_TRACKING_URI, else `sqlite:///<repo root>/mlflow.db`
(root from DVC_ROOT, so temporary experiment copies share it), artifacts beside it.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
import requests
from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.errors import PipelineError

SQLITE_PREFIX = "sqlite:///"
CONNECT_TIMEOUT_SECONDS = 5
# MLflow's own defaults (7 retries, 120 s timeout) take about 4 minutes to give up.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# Unbuffered, MLflow's async logger waits on its queue for up to 1 s at a time, and every
# flush (ending a run, reading metrics back, a training backup) waits out that second:
# 4.5 s of a seed `train` (measured). Buffered, it logs what came in each second, and a
# flush ends the wait at once.
ASYNC_LOGGING = {"MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}


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
    return (Path(uri.removeprefix(SQLITE_PREFIX)).parent / paths.ARTIFACTS_DIR).as_uri()


def shown(uri: str) -> str:
    """Return `uri` fit to print: without the user:password@ a server URI may carry."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def check_reachable(uri: str) -> None:
    """Fail fast, naming the URI, if an HTTP tracking server gives no answer within seconds."""
    if urlsplit(uri).scheme not in {"http", "https"}:
        return
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=CONNECT_TIMEOUT_SECONDS).close()
    except requests.RequestException as err:
        reason = type(err).__name__  # its text may hold the URI, credentials and all
        raise PipelineError(f"MLflow tracking server {shown(uri)} is not reachable ({reason})"
                            f"; start it, or unset MLFLOW_TRACKING_URI to use the local "
                            f"store") from None


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a server's refusal into one line naming the server and user, never the password."""
    try:
        yield
    except MlflowException as err:
        if err.error_code not in {"UNAUTHENTICATED", "PERMISSION_DENIED"}:
            raise
        where, user = shown(tracking_uri()), os.environ.get("MLFLOW_TRACKING_USERNAME")
        if err.error_code == "UNAUTHENTICATED":
            reason = (f"refused the login of {user!r}" if user else "needs a login: set "
                      "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        else:
            reason = (f"lets {user!r} read but not write here; ask its admin for EDIT "
                      f"on the experiment and the registered model")
        raise PipelineError(f"MLflow tracking server {where} {reason}") from None


@contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """Lock a SQLite store while its schema or experiment is created (parallel experiments race)."""
    if not uri.startswith(SQLITE_PREFIX):
        yield
        return
    database = Path(uri.removeprefix(SQLITE_PREFIX))
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(database.parent / f"{database.name}-lock"):
        yield


def connect() -> str:
    """Point MLflow at the store, failing fast if a server does not answer; return its URI."""
    uri = tracking_uri()
    for key, value in {**HTTP_LIMITS, **ASYNC_LOGGING}.items():
        os.environ.setdefault(key, value)
    if shown(uri) != uri:  # MLflow would print its "View run" links with the credentials
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(name: str) -> str:
    """Connect to the store; return experiment `name`'s id, creating it if needed."""
    uri = connect()
    with _creation_lock(uri):
        client = MlflowClient()  # opening a new store creates its schema
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            with suppress(MlflowException):  # another process may create it meanwhile
                client.create_experiment(name, artifact_location=artifact_location(uri))
            experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        raise PipelineError(f"MLflow experiment {name!r} is deleted or cannot be created; "
                            f"restore it with `mlflow experiments restore` or set "
                            f"tracking.experiment")
    return experiment.experiment_id
