"""Runs held open by live stages, each a record locked while its stage lives: the next stage
ends KILLED the runs a killed stage left RUNNING.
"""

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress

from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.tracking import store

log = logging.getLogger(__name__)


def _store_digest() -> str:
    # The URI may carry credentials: records name the store by a digest only.
    return hashlib.sha256(store.tracking_uri().encode()).hexdigest()[:16]


@contextmanager
def holding(run_id: str) -> Iterator[None]:
    """Record, locked while this process lives, that it holds `run_id` open."""
    folder = store.project_root() / paths.OPEN_RUNS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record, lock = folder / f"{run_id}.json", folder / f"{run_id}.lock"
    with FileLock(lock):  # locked before the record is visible
        staged = folder / f".{run_id}.{os.getpid()}"
        staged.write_text(json.dumps({"run_id": run_id, "store": _store_digest()}))
        staged.replace(record)
        try:
            yield
        finally:
            record.unlink(missing_ok=True)
    lock.unlink(missing_ok=True)


def close_abandoned(keep: str | None = None) -> None:
    """End KILLED this store's runs that killed stages left RUNNING, except `keep`."""
    folder = store.project_root() / paths.OPEN_RUNS_DIR
    for record in folder.glob("*.json") if folder.is_dir() else ():
        try:
            with FileLock(record.with_suffix(".lock"), timeout=0):
                held = json.loads(record.read_text())
                if held.get("run_id") != keep:
                    _close_if_running(held)
                record.unlink(missing_ok=True)
            record.with_suffix(".lock").unlink(missing_ok=True)
        except Timeout:
            continue  # its stage is alive (a parallel experiment)
        except FileNotFoundError:
            continue  # its stage has just ended it


def _close_if_running(held: Mapping[str, str]) -> None:
    """End KILLED the recorded run if it is this store's and still RUNNING."""
    if held.get("store") != _store_digest():
        return  # another store's run; closed when that store is used again
    with suppress(MlflowException):
        if MlflowClient().get_run(held["run_id"]).info.status == "RUNNING":
            log.warning("closing run %s, left RUNNING by a killed stage", held["run_id"])
            MlflowClient().set_terminated(held["run_id"], "KILLED")
