"""One DVC experiment as a process (`dvc exp run --temp`: the workspace stays as it is, and
several run at once), and its metrics.
"""

import os
import re
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.params import Value
from pipeline.paths import METRICS

# A stage's one-line error (pipeline.cli), then DVC's own.
_STAGE_ERROR = re.compile(r" pipeline[\w.]*: error: (.*)$")
_DVC_ERROR = re.compile(r"^ERROR: (.*)$")
# DVC's Python API is not meant for concurrent calls in one process.
_dvc_api = threading.Lock()


class ExperimentError(PipelineError):
    """The experiment did not finish; the message is why, in one line."""


def set_param(key: str, value: Value) -> str:
    """Return the -S argument setting `key` to `value` (floats in full, read as numbers)."""
    if isinstance(value, float):
        text = np.format_float_positional(value, trim="0")
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
    return f"{key}={text}"


def failure_reason(lines: list[str]) -> str:
    """Return why an experiment failed: the stage's one-line error, else DVC's, else the
    last line."""
    for pattern in (_STAGE_ERROR, _DVC_ERROR):
        found = [match.group(1) for line in lines if (match := pattern.search(line))]
        if found:
            return found[-1].strip()
    return next((line.strip() for line in reversed(lines) if line.strip()), "no output")


@contextmanager
def running(name: str, values: dict[str, Value], log_file: Path,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run experiment `name` with `values`, output to `log_file`; raise ExperimentError if
    it fails. Leaving early ends it."""
    settings = [argument for key, value in values.items()
                for argument in ("-S", set_param(key, value))]
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", "exp", "run", "--temp",
               "--name", name, *settings]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w", encoding="utf-8") as output, subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}) as process:
        try:
            yield process
        except BaseException:
            process.terminate()
            raise
        finally:
            process.wait()
    if process.returncode != 0:
        with log_file.open(encoding="utf-8", errors="replace") as output:
            tail = list(deque(output, maxlen=200))
        raise ExperimentError(f"{failure_reason(tail)} (exit {process.returncode}; "
                              f"log: {log_file})")


def metrics(name: str, keys: tuple[str, ...]) -> dict[str, float]:
    """Return metrics of experiment `name` as `dvc exp show` has them (`split.metric`)."""
    import dvc.api  # noqa: PLC0415 - DVC's import is slow, and only this needs it

    with _dvc_api:
        try:
            rows = dvc.api.exp_show(revs=[name])
        except Exception as err:  # DVC's errors have many types; any means no metrics
            raise ExperimentError(f"experiment {name}: its metrics cannot be read "
                                  f"({type(err).__name__}: {err})") from err
    # The workspace's row, then the experiment's own commit.
    found = next((row for row in rows if row.get("rev") != "workspace"), {})
    values = {key: found.get(key) for key in keys}
    if not all(isinstance(value, int | float) for value in values.values()):
        raise ExperimentError(f"experiment {name}: {METRICS} has no "
                              f"{' and '.join(keys)}")
    return {key: float(value) for key, value in values.items()}
