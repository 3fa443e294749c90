"""The tracking agent: one long-lived process that does every stage's MLflow work.

Importing MLflow and opening its store cost about 2 s: paid once per agent instead of
once per stage. `train` starts it before importing TensorFlow, so the agent is ready
by the time the model is; `evaluate` and `plot` find it running and their tracking
takes milliseconds. It never imports TensorFlow (see pipeline.logged_model). It exits
after PIPELINE_AGENT_IDLE_SECONDS (default 1800) without connections, or as soon as its
own code (pipeline.agent_link.AGENT_SOURCES) is edited or deleted (a queued experiment's
temporary copy): stages of other code would not reach it anyway. Edits of the stages'
own code (figures, model, training) leave it running: it runs none of that code.

Every request is answered only once MLflow has stored it, so a stage that exits 0 has
been tracked. A run a stage opened or resumed and never ended (the stage was SIGKILLed)
is ended KILLED when its connection closes.

`python -m pipeline.agent stop`, run in the repository, stops the agent of its store.

Protocol: one JSON object per line each way, {"id", "op", "args"} and {"id", "result"} or
{"id", "error", "kind"}. Started by pipeline.agent_link as
`python -m pipeline.agent <socket> <tracking URI>`.
"""

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline import agent_link, store
from pipeline.cli import exit_now
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline.agent")

IDLE_ENV = "PIPELINE_AGENT_IDLE_SECONDS"
# Long enough that an edit-and-rerun session finds it running; idle, it holds ~230 MB.
DEFAULT_IDLE_SECONDS = 1800
# The requests that open a run, and the one that ends it: the runs a connection holds.
OPENING, ENDING = {"open_run", "resume_run"}, "end_run"
# pipeline.recorder's functions a stage may call; nothing else in it is reachable.
RECORDER_OPS = {*OPENING, ENDING, "log_params", "log_metrics", "log_file", "log_model"}


def load_model_logging() -> None:
    """Load and warm MLflow's model code now, so the first model logs without waiting."""
    from pipeline import logged_model  # noqa: PLC0415 - about 1 s in all, train's only

    logged_model.warm_up()


class Session:
    """What one stage's connection holds: the runs it opened and has not ended."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.current: str | None = None

    def run_id(self) -> str:
        """Return the run this stage opened or resumed last."""
        if self.current is None:
            raise PipelineError("no MLflow run is open (opening it failed; see above)")
        return self.current

    def record(self, op: str, args: dict[str, Any], result: Any) -> None:
        """Follow the runs opened and ended."""
        if op in OPENING:
            self.current = result["run_id"]
            self.held.add(self.current)
        elif op == ENDING:
            self.held.discard(args["run_id"])


class Agent:
    """Serves the stages' requests for one store, one thread per connected stage."""

    def __init__(self, recorder: ModuleType, uri: str) -> None:
        self.recorder, self.uri = recorder, uri
        self.connected = False
        self.connecting = threading.Lock()
        self.lock = threading.Lock()
        self.active = 0
        self.last_activity = time.monotonic()
        self.stopping = False

    def _ensure_connected(self) -> None:
        with self.connecting:  # retried on each request until the store answers once
            if not self.connected:
                self.recorder.connect(self.uri)
                self.connected = True

    def warm_up(self) -> None:
        """Open the store before the first request needs it; errors wait for a request."""
        try:
            self._ensure_connected()
        except Exception as err:  # reported to the stage by the request that retries
            log.warning("store not ready yet: %s", err)

    def handle(self, request: dict[str, Any], session: Session) -> Any:
        """Run one request for a stage's `session` and return its result."""
        op, args = request["op"], dict(request.get("args", {}))
        if op == "prepare_models":  # in the background: the reply does not wait for it
            threading.Thread(target=load_model_logging, daemon=True).start()
            return None
        if op == "stop":  # finish the connected stages' work, then exit
            self.stopping = True
            return os.getpid()
        if op not in RECORDER_OPS:
            raise PipelineError(f"the tracking agent has no request {op!r}")
        self._ensure_connected()
        if "run_id" in args and args["run_id"] is None:
            args["run_id"] = session.run_id()  # the run this stage opened, pipelined
        function: Callable[..., Any] = getattr(self.recorder, op)
        result = function(**args)
        session.record(op, args, result)
        return result

    def serve(self, connection: socket.socket) -> None:
        """Answer one stage's requests; end the runs it leaves open when it goes."""
        session = Session()
        try:
            with connection, connection.makefile("rwb") as stream:
                for line in stream:
                    request = json.loads(line)
                    answer: dict[str, Any] = {"id": request["id"]}
                    start = time.perf_counter()
                    try:
                        answer["result"] = self.handle(request, session)
                    except PipelineError as err:
                        answer.update(error=str(err), kind=type(err).__name__)
                    except Exception as err:  # a bug or an MLflow failure: report, go on
                        log.exception("request %s failed", request["op"])
                        answer.update(error=f"MLflow {request['op']} failed: {err!r}",
                                      kind="internal")
                    log.info("%s: %.3f s", request["op"], time.perf_counter() - start)
                    stream.write(json.dumps(answer).encode() + b"\n")
                    stream.flush()
        except OSError as err:
            log.warning("connection lost: %s", err)
        finally:
            self._end_abandoned(session.held)
            with self.lock:
                self.active -= 1
                self.last_activity = time.monotonic()

    def _end_abandoned(self, held: set[str]) -> None:
        for run_id in held:
            log.warning("stage went without ending run %s; ending it KILLED", run_id)
            try:
                self.recorder.end_run(run_id, "KILLED")
            except Exception:  # the store may be gone too; close_abandoned_runs retries
                log.exception("could not end run %s", run_id)

    def idle_for(self) -> float:
        """Return how long no stage has been connected."""
        with self.lock:
            return 0.0 if self.active else time.monotonic() - self.last_activity

    def accept(self, listener: socket.socket) -> None:
        """Serve one incoming connection in a thread."""
        connection, _ = listener.accept()
        with self.lock:
            self.active += 1
        threading.Thread(target=self.serve, args=(connection,), daemon=True).start()


def listen(path: Path) -> socket.socket:
    """Return a socket listening at `path`, replacing a dead agent's leftover file."""
    path.unlink(missing_ok=True)  # the caller holds the start lock: no live agent is here
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    return listener


def main(path: Path, uri: str) -> None:
    """Listen first (stages may connect at once), then load MLflow, then serve until idle."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    listener = listen(path)
    from pipeline import recorder  # noqa: PLC0415 - MLflow loads while stages connect

    agent = Agent(recorder, uri)
    threading.Thread(target=agent.warm_up, daemon=True).start()
    idle_limit = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS))
    listener.settimeout(0.5)
    log.info("serving %s on %s", uri, path)
    # Stages of edited tracking code use another agent; a queued experiment's copy of the
    # code is deleted when it ends. Either way this agent has nobody left to serve.
    code = agent_link.source_digest()
    while (agent.idle_for() < idle_limit and not agent.stopping
           and agent_link.source_digest() == code):
        try:
            agent.accept(listener)
        except TimeoutError:
            continue
    # New stages now start a new agent; serve any that connected before the unlink.
    path.unlink(missing_ok=True)
    listener.setblocking(False)
    while True:
        try:
            agent.accept(listener)
        except BlockingIOError:
            break
    while agent.idle_for() == 0.0:
        time.sleep(0.1)
    log.info("exiting: idle, stopped, or my code was edited or removed")
    exit_now()  # every request is stored: nothing is left to tear down


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:  # `python -m pipeline.agent stop`, in the repository
        stopped = agent_link.stop_agent(store.tracking_uri())
        sys.stdout.write(f"stopped agent {stopped}\n" if stopped else "no agent running\n")
    else:
        main(Path(sys.argv[1]), sys.argv[2])
