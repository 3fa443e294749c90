"""MLflow tracking as the stages use it: the one run each trained model gets.

`train` opens the run and records its id in data/model/run.json; `evaluate` and `plot`
resume it by that id. The work itself is done by the tracking agent (pipeline.agent),
so no stage imports MLflow; each call returns once MLflow has stored what it was given.
A run never stays RUNNING: it ends FINISHED, FAILED on an error, KILLED on Ctrl-C or
SIGTERM, and KILLED when its stage disappears (SIGKILL).
"""

import logging
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import paths, store
from pipeline.agent_link import Link, open_link
from pipeline.errors import InputError, PipelineError
from pipeline.files import read_json

log = logging.getLogger(__name__)

# Tags that say which process holds a run open, so an abandoned one can be closed.
HOST_TAG, PID_TAG = "pipeline.host", "pipeline.pid"
SINGLE_INPUT = ""  # the example's name for a model with one unnamed input


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


def _param_text(value: Any) -> str:
    return str(list(value) if isinstance(value, tuple) else value)  # lists as in params.yaml


class Run:
    """An MLflow run a stage opened or resumed, written through the agent.

    Requests are pipelined: each `log_*` returns at once and `flush` waits for them all,
    raising the first error, so a stage's own work overlaps its tracking. They name no
    run: the agent applies them to the run this stage's connection opened.
    """

    def __init__(self, link: Link, opening: int) -> None:
        self.link, self.opening = link, opening
        self.pending: list[int] = [opening]
        self._opened: dict[str, str] | None = None

    @property
    def run_id(self) -> str:
        """The run's id (waits for the run to be opened)."""
        return self._opening_result()["run_id"]

    @property
    def experiment_id(self) -> str:
        """The run's experiment id (waits for the run to be opened)."""
        return self._opening_result()["experiment_id"]

    def _opening_result(self) -> dict[str, str]:
        if self._opened is None:
            self._opened = self.result(self.opening)
        return self._opened

    def _send(self, op: str, **args: Any) -> int:
        request = self.link.send(op, run_id=None, **args)
        self.pending.append(request)
        return request

    def log_params(self, values: Mapping[str, Any]) -> None:
        """Log params; one that changed since it was logged is recorded as a tag instead."""
        self._send("log_params", values={key: _param_text(value)
                                         for key, value in values.items()})

    def log_metrics(self, series: Iterable[tuple[str, float, int]]) -> None:
        """Log (key, value, step) metrics in as few requests as MLflow allows."""
        self._send("log_metrics",
                   series=[(key, float(value), int(step)) for key, value, step in series])

    def log_file(self, path: Path, folder: str) -> None:
        """Copy a file into the run's artifacts under `folder`."""
        self._send("log_file", path=str(path.resolve()), folder=folder)

    def log_model(self, path: Path, name: str, example: Mapping[str, np.ndarray] | np.ndarray,
                  description: Mapping[str, Any]) -> int:
        """Log the Keras model saved at `path`; `result` of the returned number is its URI.

        `description` is pipeline.fitting.describe_model's: signature and Keras build.
        """
        arrays = example if isinstance(example, Mapping) else {SINGLE_INPUT: example}
        return self._send("log_model", path=str(path.resolve()), name=name,
                          example={key: value.tolist() for key, value in arrays.items()},
                          description=description)

    def result(self, request: int) -> Any:
        """Wait for one request; return its result."""
        if request == self.opening and self._opened is not None:
            return self._opened
        self.pending.remove(request)
        return self.link.reply(request)

    def flush(self) -> None:
        """Wait until MLflow has stored everything sent; raise the first error."""
        self._opening_result()
        while self.pending:
            self.result(self.pending[0])

    def end(self, status: str) -> None:
        """End the run FINISHED, FAILED or KILLED."""
        self.link.call("end_run", run_id=None, status=status)


def start_agent() -> Link:
    """Connect to the tracking agent now, starting it if needed, so it loads while we work."""
    return open_link(store.tracking_uri())


def prepare_models() -> Link:
    """Start the agent now, and have it load its model code, while this stage loads TensorFlow."""
    link = start_agent()
    link.send("prepare_models")
    return link


@contextmanager
def _ending(link: Link, run: Run) -> Iterator[Run]:
    """End `run` FINISHED, or KILLED on Ctrl-C or SIGTERM, or FAILED on any other error."""
    try:
        yield run
        run.flush()
    except KeyboardInterrupt:  # pipeline.cli turns SIGTERM into one as well
        link.close()  # the agent ends the run KILLED; no need to wait for it here
        raise
    except BaseException:
        with suppress(PipelineError):  # the agent may be what failed; keep the first error
            run.end("FAILED")
        raise
    else:
        run.end("FINISHED")
        log.info("MLflow run %s at %s: this stage waited %.2f s for tracking", run.run_id,
                 store.tracking_uri(), link.waited)
    finally:
        link.close()


@contextmanager
def new_run(experiment: str, link: Link | None = None) -> Iterator[Run]:
    """Open a new run in `experiment`, named after the DVC experiment when there is one."""
    link = link or start_agent()
    opening = link.send("open_run", experiment=experiment,
                        run_name=os.environ.get("DVC_EXP_NAME"),
                        tags={**run_tags(), **_owner_tags()})
    with _ending(link, Run(link, opening)) as run:
        yield run


def recorded_run_id() -> str:
    """Return the id of the run `train` opened, from data/model/run.json."""
    run_id = read_json(paths.RUN).get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise InputError(f"{paths.RUN}: has no run_id; run `dvc repro -f train`")
    return run_id


@contextmanager
def resumed_run(run_id: str, link: Link | None = None) -> Iterator[Run]:
    """Resume the run `train` opened, or fail naming the run and the store."""
    link = link or start_agent()
    opening = link.send("resume_run", run_id=run_id, tags=_owner_tags(), source=str(paths.RUN))
    with _ending(link, Run(link, opening)) as run:
        yield run
