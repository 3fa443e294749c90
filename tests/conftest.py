"""Shared fixtures: the project's params, tiny params for fast runs, a temporary repo."""

import contextlib
import copy
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Longer than any command of a test takes (a tiny `dvc repro` takes seconds).
COMMAND_TIMEOUT_SECONDS = 300
# What a user's clone holds that the pipeline needs; outputs and stores are left behind.
PROJECT_FILES = ("pipeline", "params.yaml", "tune.yaml", "dvc.yaml", ".dvcignore", ".gitignore",
                 "docs/examples")

# Small enough that a full `dvc repro` takes seconds beyond the TensorFlow imports.
TINY = {
    "generate": {"points": 40, "test_points": 40},
    "window": {"steps": 8},
    "model": {"units": 4},
    "train": {"epochs": 3, "batch_size": 8},
    "plot": {"start_points": [0, 20], "dpi": 40},
}


def pytest_configure(config: pytest.Config) -> None:
    """Keep telemetry out of every test and subprocess."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DVC_NO_ANALYTICS"] = "1"
    # `python` and `dvc` in subprocesses (and in dvc.yaml's commands) must be this
    # interpreter's, even when the virtual environment is not activated.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    # Ctrl-C must reach the stages tests interrupt, as in a terminal. A shell without job
    # control starts a background command (`.ci/run &`) with SIGINT ignored, which every
    # child inherits and Python then keeps (no KeyboardInterrupt): seen in CI, where an
    # interrupted `train` trained on. A handled signal is reset to default in children.
    signal.signal(signal.SIGINT, signal.default_int_handler)


# The longest tests, longest first (minutes each: a shared study, README's own-series
# commands, the team's stack, ...), started first so that no worker is left with one of
# them at the end while the other idles.
LONGEST = ("test_tune.py::test_two_workers", "test_own_series.py::test_your_series_from_csv",
           "test_team.py::", "test_experiments.py::test_queued", "test_tune.py::",
           "test_pipeline_e2e.py::")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest tests first, then the other real `dvc repro` runs, then the rest."""
    def rank(item: pytest.Item) -> int:
        for position, prefix in enumerate(LONGEST):
            if prefix in item.nodeid:
                return position
        return len(LONGEST) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: the files' own order within each rank


@pytest.fixture(autouse=True)
def _restore_environment() -> Any:
    """Undo environment changes a test makes in-process.

    mlflow.set_tracking_uri() also sets MLFLOW_TRACKING_URI in os.environ, which would
    point every later subprocess (dvc repro, stages) at an earlier test's store.
    """
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def default_params() -> dict[str, Any]:
    """Return params.yaml as committed."""
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def with_overrides(raw: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return a deep copy of `raw` with `section -> key -> value` overrides applied."""
    result = copy.deepcopy(raw)
    for section, values in overrides.items():
        result[section].update(values)
    return result


@pytest.fixture
def tiny_params() -> dict[str, Any]:
    """Return the default params shrunk to a seconds-long run."""
    return with_overrides(default_params(), TINY)


def run(command: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None,
        timeout: float = COMMAND_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """Run a command, capturing text output; fail the test with that output on error.

    Output goes through files, not pipes: a daemon the command leaves behind (DVC's queue
    workers) keeps them open, and waiting for a pipe's end would wait for the daemon. A
    command still running after `timeout` s is killed with its process group and fails the
    test: a hang must not stall the suite.
    """
    with (tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr,
          subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                           stdin=subprocess.DEVNULL, text=True,
                           start_new_session=True) as process):
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stdout.seek(0)
        stderr.seek(0)
        done = subprocess.CompletedProcess(command, process.returncode, stdout.read(),
                                           stderr.read())
    if timed_out:
        pytest.fail(f"{' '.join(command)} still running after {timeout} s, killed:\n"
                    f"{done.stdout}\n{done.stderr}")
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def write_params(repo: Path, raw: dict[str, Any]) -> None:
    """Write `raw` as the repo's params.yaml."""
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path, tiny_params: dict[str, Any]) -> Path:
    """Return a fresh git+DVC repo holding a copy of the project with tiny params."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    write_params(repo, tiny_params)
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.email", "test@example.com"], repo)
    run(["git", "config", "user.name", "test"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "project"], repo)
    return repo


def clone(origin: Path, into: Path) -> Path:
    """Clone `origin` as a user would, with a git identity for experiment commits."""
    run(["git", "clone", "-q", str(origin), str(into)], origin.parent)
    run(["git", "config", "user.email", "member@example.com"], into)
    run(["git", "config", "user.name", "member"], into)
    return into


def share(repo: Path, remote: Path, origin: Path | None = None) -> None:
    """Give the repo a default DVC remote in a local folder, committed for every clone,
    and, if given, a bare git repository `origin` to push to and clone from."""
    run(["dvc", "remote", "add", "-d", "storage", str(remote)], repo)
    run(["git", "commit", "-qam", "DVC remote"], repo)
    if origin is not None:
        run(["git", "init", "-q", "--bare", str(origin)], repo.parent)
        run(["git", "remote", "add", "origin", str(origin)], repo)
        run(["git", "push", "-q", "origin", "HEAD"], repo)


def experiment_table(repo: Path) -> dict[str, dict[str, str]]:
    """Return `dvc exp show`'s experiments as name -> column -> value."""
    table = run(["dvc", "exp", "show", "--csv"], repo).stdout
    return {row["Experiment"]: row for row in csv.DictReader(io.StringIO(table))
            if row["Experiment"]}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def listening(command: list[str], url: str, what: str, *, cwd: Path | None = None,
              env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[None]:
    """Run a server `command` until the block ends, once `url` answers 200.

    It fails the test if the server exits or does not answer within `timeout` s, and
    stops the server's whole process group whatever happens.
    """
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(url):
                if time.monotonic() > deadline or process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"{what} did not answer at {url}:\n{log.read()[-3000:]}")
                time.sleep(0.5)
            yield
        finally:
            _stop_group(process)


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` as JSON; return the JSON answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM a process group, SIGKILL it if it outlives 30 s; reap the leader."""
    for stop in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
            return


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@contextmanager
def mlflow_server(backend_uri: str, *options: str, env: dict[str, str] | None = None
                  ) -> Iterator[str]:
    """Run `mlflow server` on 127.0.0.1 at a free port until the block ends; yield its URI."""
    uri = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", uri.rsplit(":", 1)[1], "--backend-store-uri", backend_uri,
               "--workers", "1", *options]
    with listening(command, f"{uri}/health", "mlflow server", env=env):
        yield uri


def stage_pids(stage: str, cwd: Path) -> list[int]:
    """Return the pids of `python -m pipeline.stages.<stage>` processes running in `cwd`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
            here = (cmdline.parent / "cwd").readlink()
        except OSError:
            continue
        if f"pipeline.stages.{stage}".encode() in arguments and here == cwd:
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default store at a fresh repo root through DVC_ROOT, as DVC does."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def tabled_test_windows(repo: Path) -> tuple[Any, Any]:
    """Return the test windows predictions.csv holds (windows, steps, k), read from the
    repo's windows.npz, and their predictions there (windows, steps, 1)."""
    import pandas as pd  # noqa: PLC0415 - most tests need neither pandas nor the package

    from pipeline.paths import PREDICTIONS, WINDOWS  # noqa: PLC0415
    from pipeline.windows import Windows  # noqa: PLC0415

    table = pd.read_csv(repo / PREDICTIONS)
    test = table[table["split"] == "test"].sort_values(["window", "step"])
    starts = test["window"].unique()  # the test series' first window is 0
    windows = Windows.read(repo / WINDOWS).split("test").windows(starts)
    return windows["encoder_in"], test["prediction"].to_numpy().reshape(len(starts), -1, 1)


def logged_image_steps(client: Any, run_id: str) -> set[int]:
    """Return the steps at which a run logged its prediction figure with mlflow.log_image
    (artifacts images/<key>+step+<N>+...png), checking there is one figure per step."""
    from pipeline.tracking.images import IMAGE_KEY  # noqa: PLC0415 - imports Keras: only when used

    paths = [item.path for item in client.list_artifacts(run_id, "images")]
    steps = [int(match.group(1)) for path in paths
             if (match := re.fullmatch(rf"images/{IMAGE_KEY}\+step\+(\d+)\+.*\.png", path))]
    assert len(steps) == len(set(steps)), paths
    return set(steps)
