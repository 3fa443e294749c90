"""A stage's connection to the tracking agent, started on first use (imports no MLflow).

One agent serves one MLflow store for one copy of this code: its socket's name hashes
the tracking URI, the MLFLOW_* environment, the Python and the source of the modules the
agent runs (AGENT_SOURCES), so an edit of tracking code or a different store gets a fresh
agent, while an edit of a stage's own code (a figure, the model) finds the running one.
Sockets live in a per-user directory only that user can enter: nobody else can send an
agent requests.
"""

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, PipelineError

START_TIMEOUT_SECONDS = 120
# An agent silent this long is stuck: fail the stage, naming the request, rather than hang
# `dvc repro`. Far above any real request (a server's retries give up within a minute).
REPLY_TIMEOUT_SECONDS = 600
LOG_KEEP_DAYS = 7  # an agent's log and lock outlive it this long (one per store and code)
MAX_SOCKET_PATH = 104  # bytes: the smallest limit of the systems Python supports
PACKAGE = Path(__file__).resolve().parent
# The package's modules the agent imports (tests/test_agent.py checks this list): an edit
# of any of them starts a new agent; an edit of any other module leaves the agent running.
AGENT_SOURCES = ("__init__.py", "agent.py", "agent_link.py", "cli.py", "errors.py",
                 "logged_model.py", "paths.py", "recorder.py", "store.py")
# Error kinds the agent reports (pipeline.recorder raises these), re-raised as such here.
ERRORS: dict[str, type[PipelineError]] = {"PipelineError": PipelineError,
                                          "InputError": InputError}


def agent_dir() -> Path:
    """Return the per-user directory of agent sockets and logs, private to this user."""
    directory = Path(tempfile.gettempdir()) / f"pipeline-agents-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PipelineError(f"{directory}: must belong to you with mode 700 (another user "
                            f"could reach the tracking agent); remove it and rerun")
    return directory


def source_digest() -> str:
    """Return a digest of the agent's source files as they are now on disk."""
    digest = hashlib.sha256()
    for name in AGENT_SOURCES:
        try:
            content = (PACKAGE / name).read_bytes()
        except FileNotFoundError:  # a queued experiment's copy, deleted when it ended
            content = b"\0missing"
        digest.update(name.encode() + b"\0" + content)
    return digest.hexdigest()


def agent_key(uri: str) -> str:
    """Return the name of the agent for `uri` and this code, environment and Python."""
    settings = {name: value for name, value in os.environ.items() if name.startswith("MLFLOW_")}
    identity = [uri, settings, sys.executable, str(PACKAGE), source_digest()]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


class Link:
    """Requests to the agent and their replies, in order, over one Unix socket."""

    def __init__(self, connection: socket.socket, log_path: Path,
                 reply_timeout: float = REPLY_TIMEOUT_SECONDS) -> None:
        connection.settimeout(reply_timeout)
        self.connection = connection
        self.reader = connection.makefile("rb")
        self.log_path = log_path
        self.reply_timeout = reply_timeout
        self.sent = 0
        self.ops: dict[int, str] = {}  # request number -> op, to name a stuck request
        self.answers: dict[int, dict[str, Any]] = {}  # replies read before they were asked
        self.closed = False
        self.waited = 0.0  # seconds spent waiting for replies: what tracking costs a stage

    def send(self, op: str, **args: Any) -> int:
        """Send one request without waiting; return its number for `reply`."""
        self.sent += 1
        self.ops[self.sent] = op
        line = json.dumps({"id": self.sent, "op": op, "args": args}) + "\n"
        try:
            self.connection.sendall(line.encode())
        except OSError as err:
            raise self._gone() from err
        return self.sent

    def _gone(self) -> PipelineError:
        return PipelineError(f"the MLflow tracking agent exited unexpectedly; its log: "
                             f"{self.log_path}")

    def _stuck(self) -> PipelineError:
        # Replies come in order: the agent is stuck on the oldest request not answered.
        oldest = min(number for number in self.ops if number not in self.answers)
        return PipelineError(f"the MLflow tracking agent did not answer {self.ops[oldest]!r} "
                             f"in {self.reply_timeout:g} s; its log: {self.log_path}")

    def reply(self, number: int) -> Any:
        """Wait for request `number`'s reply; return its result or raise its error."""
        start = time.perf_counter()
        try:
            while number not in self.answers:
                try:
                    line = self.reader.readline()
                except TimeoutError as err:
                    raise self._stuck() from err
                except OSError as err:
                    raise self._gone() from err
                if not line:
                    raise self._gone()
                answer = json.loads(line)
                self.answers[answer["id"]] = answer
        finally:
            self.waited += time.perf_counter() - start
        answer = self.answers.pop(number)
        del self.ops[number]
        if "error" in answer:
            raise ERRORS.get(answer["kind"], PipelineError)(answer["error"])
        return answer["result"]

    def call(self, op: str, **args: Any) -> Any:
        """Send a request and return its result."""
        return self.reply(self.send(op, **args))

    def close(self) -> None:
        """Close the connection; the agent ends any run this link left open as KILLED."""
        if self.closed:
            return
        self.closed = True
        self.reader.close()
        self.connection.close()


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        return None
    return connection


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "(no output)"


def _start(sock: Path, log_path: Path, uri: str) -> socket.socket:
    """Start an agent for `uri` listening on `sock`; return a connection to it."""
    with log_path.open("ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "pipeline.agent", str(sock), uri], cwd=PACKAGE.parent,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        connection = _connect(sock)
        if connection is not None:
            return connection
        if agent.poll() is not None:
            raise PipelineError(f"the MLflow tracking agent failed to start: "
                                f"{_last_line(log_path)} (log: {log_path})")
        time.sleep(0.02)
    agent.kill()
    raise PipelineError(f"the MLflow tracking agent did not start in "
                        f"{START_TIMEOUT_SECONDS} s (log: {log_path})")


def _agent_files(uri: str) -> tuple[Path, Path, Path]:
    """Return the socket, log and start-lock paths of the agent for `uri`."""
    directory, key = agent_dir(), agent_key(uri)
    sock = directory / f"{key}.sock"
    if len(str(sock).encode()) > MAX_SOCKET_PATH:
        raise PipelineError(f"{sock}: too long for a Unix socket; set TMPDIR to a shorter "
                            f"directory")
    return sock, directory / f"{key}.log", directory / f"{key}.lock"


def prune_leftovers(directory: Path, keep_days: float = LOG_KEEP_DAYS) -> None:
    """Delete the logs and start locks of agents that exited cleanly over `keep_days` ago.

    An agent removes its socket when it exits cleanly; a crashed agent's socket stays, and
    so does its log, for diagnosis. Every start opens its lock, which renews its time.
    """
    cutoff = time.time() - keep_days * 86400
    for path in [*directory.glob("*.log"), *directory.glob("*.lock")]:
        try:
            stale = path.stat().st_mtime < cutoff
        except FileNotFoundError:  # pruned by a stage starting another agent
            continue
        if stale and not path.with_suffix(".sock").exists():
            path.unlink(missing_ok=True)


def stop_agent(uri: str) -> int | None:
    """Ask the agent for `uri`, if one runs, to exit once idle; return its pid."""
    sock, log_path, _ = _agent_files(uri)
    connection = _connect(sock)
    if connection is None:
        return None
    link = Link(connection, log_path)
    try:
        return link.call("stop")
    finally:
        link.close()


def open_link(uri: str, reply_timeout: float = REPLY_TIMEOUT_SECONDS) -> Link:
    """Connect to the agent for `uri`, starting one if none is listening."""
    sock, log_path, lock_path = _agent_files(uri)
    connection = _connect(sock)
    if connection is None:
        # One stage starts the agent; others that arrive meanwhile wait, then connect.
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            connection = _connect(sock)
            if connection is None:
                prune_leftovers(sock.parent)
                connection = _start(sock, log_path, uri)
    return Link(connection, log_path, reply_timeout)
