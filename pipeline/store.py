"""Where MLflow keeps runs (this module imports no MLflow: every stage may use it).

The default store is `sqlite:///<repo root>/mlflow.db`, the root taken from DVC_ROOT when
DVC runs the stage, so experiments DVC runs in temporary copies land in the same store;
MLFLOW_TRACKING_URI overrides it (for a team's server). A server that does not answer
fails the stage in seconds, naming the URI, instead of after minutes of retries.
"""

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

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


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix(SQLITE_PREFIX)).resolve() if uri.startswith(
        SQLITE_PREFIX) else None


def artifact_location(uri: str) -> str | None:
    """Return an absolute artifact root beside a SQLite store; a server chooses its own."""
    database = sqlite_path(uri)
    return None if database is None else (database.parent / paths.ARTIFACTS_DIR).as_uri()


def check_reachable(uri: str) -> None:
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
