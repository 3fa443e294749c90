"""The tracking agent: started on demand, one per store and code, gone when idle or killed.

Real agent processes on a real SQLite store; stages are played by this process or by
small Python subprocesses.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import agent_pids, run, wait_until
from mlflow.tracking import MlflowClient

from pipeline import agent_link, store, tracking
from pipeline.errors import PipelineError


def socket_path() -> Path:
    uri = store.tracking_uri()
    return agent_link.agent_dir() / f"{agent_link.agent_key(uri)}.sock"


def refuses(sock: Path) -> bool:
    """Whether nothing listens on `sock` any more (a dying process may still hold it)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(sock))
        except ConnectionRefusedError:
            return True
    return False


def copy_package(parent: Path) -> Path:
    """Copy this package's source under `parent`; return the copy's directory."""
    copy = parent / "pipeline"
    shutil.copytree(agent_link.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def status(run_id: str) -> str:
    return MlflowClient(store.tracking_uri()).get_run(run_id).info.status


def test_a_killed_stage_gets_its_run_ended_killed_at_once(root: Path) -> None:
    stage = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pipeline import tracking\n"
         "with tracking.new_run('exp') as run:\n"
         "    print(run.run_id, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    run_id = stage.stdout.readline().strip()
    assert status(run_id) == "RUNNING"
    stage.kill()
    stage.wait()
    wait_until(lambda: status(run_id) == "KILLED", 10, "the run ended KILLED")


def test_an_idle_agent_exits_and_removes_its_socket(root: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_AGENT_IDLE_SECONDS", "1")
    with tracking.new_run("exp"):
        pass
    sock = socket_path()
    (pid,) = agent_pids(str(sock))
    wait_until(lambda: not agent_pids(str(sock)), 30, "the idle agent exited")
    assert not sock.exists()
    with tracking.new_run("exp") as again:  # and the next stage starts a new one
        pass
    assert status(again.run_id) == "FINISHED"
    assert agent_pids(str(sock)) not in ([], [pid])


def test_a_dead_agent_fails_the_stage_then_is_replaced(root: Path) -> None:
    with pytest.raises(PipelineError, match=r"tracking agent exited unexpectedly; its log: "
                                            r"/.*\.log"), tracking.new_run("exp") as run:
        run.flush()
        (pid,) = agent_pids(str(socket_path()))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: refuses(socket_path()), 30, "the killed agent stopped listening")
        run.log_params({"a": 1})
    assert socket_path().exists()  # left behind by the killed agent
    with tracking.new_run("exp") as replacement:
        pass
    assert status(replacement.run_id) == "FINISHED"


def all_threads_stopped(pid: int) -> bool:
    """Return whether every thread of `pid` is stopped (state T in /proc)."""
    try:
        states = [stat.read_text().rsplit(")", 1)[1].split()[0]
                  for stat in Path(f"/proc/{pid}/task").glob("*/stat")]
    except FileNotFoundError:  # a thread ended meanwhile: look again
        return False
    return bool(states) and all(state == "T" for state in states)


def test_a_stuck_agent_fails_the_request_it_sits_on_instead_of_hanging(root: Path) -> None:
    link = agent_link.open_link(store.tracking_uri(), reply_timeout=2)
    with pytest.raises(PipelineError, match="has no request 'ping'"):
        link.call("ping")  # answered: the agent is up
    (pid,) = agent_pids(str(socket_path()))
    os.kill(pid, signal.SIGSTOP)
    try:
        # kill() returns before every thread has stopped: a busy machine may let the
        # serving thread answer first.
        wait_until(lambda: all_threads_stopped(pid), 10, "the agent stopped")
        link.send("ping")
        second = link.send("pong")
        start = time.monotonic()
        with pytest.raises(PipelineError, match=r"did not answer 'ping' in 2 s; its log: "
                                                r"/.*\.log"):
            link.reply(second)
        assert time.monotonic() - start < 10
    finally:
        os.kill(pid, signal.SIGCONT)
        link.close()


def test_each_store_and_setting_gets_its_own_agent(root: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    local = agent_link.agent_key(store.tracking_uri())
    assert agent_link.agent_key("http://127.0.0.1:5000") != local
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    assert agent_link.agent_key(store.tracking_uri()) != local


def edit(source: Path) -> None:
    with source.open("a") as file:
        file.write("# edited\n")


def test_only_an_edit_of_the_agents_own_code_gets_a_new_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = copy_package(tmp_path)
    monkeypatch.setattr(agent_link, "PACKAGE", copy)
    before = agent_link.agent_key("sqlite:///x.db")
    edit(copy / "figures.py")
    assert agent_link.agent_key("sqlite:///x.db") == before
    edit(copy / "recorder.py")
    assert agent_link.agent_key("sqlite:///x.db") != before


def test_the_agent_sources_are_the_modules_a_real_agent_imports(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the agent's log lists its imports
    link = tracking.prepare_models()  # the agent loads its model code in the background
    link.close()

    def imported() -> set[str]:
        names = {line.rsplit("|", 1)[1].strip() for line in
                 link.log_path.read_text().splitlines() if line.startswith("import time:")}
        return {name for name in names if name.split(".")[0] == "pipeline"}

    wait_until(lambda: "pipeline.logged_model" in imported(), 60, "the model code loaded")
    files = {"__init__.py" if name == "pipeline" else name.removeprefix("pipeline.") + ".py"
             for name in imported()}
    # `python -m pipeline.agent` runs agent.py as __main__, not as pipeline.agent.
    assert sorted(files | {"agent.py"}) == sorted(agent_link.AGENT_SOURCES)


def run_stage_from(code: Path, root: Path) -> None:
    """Open and end a run from a copy of the package at `code`, as a stage would."""
    stage = "from pipeline import tracking\nwith tracking.new_run('exp'):\n    pass"
    run([sys.executable, "-c", stage], root,
        env={**os.environ, "PYTHONPATH": str(code), "PIPELINE_AGENT_IDLE_SECONDS": "600"})


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_an_agent_exits_once_its_code_is_edited_or_deleted(root: Path, tmp_path: Path,
                                                           change: str) -> None:
    code = tmp_path / "code"
    copy_package(code)
    run_stage_from(code, root)
    (pid,) = agent_pids(store.tracking_uri())
    if change == "edit":
        edit(code / "pipeline" / "recorder.py")
    else:
        shutil.rmtree(code)
    wait_until(lambda: pid not in agent_pids(store.tracking_uri()), 30,
               f"the agent exited after its code was {change}ed")


def test_an_edit_of_a_stages_code_keeps_the_running_agent(root: Path, tmp_path: Path) -> None:
    code = tmp_path / "code"
    copy_package(code)
    run_stage_from(code, root)
    (pid,) = agent_pids(store.tracking_uri())
    try:
        edit(code / "pipeline" / "figures.py")
        edit(code / "pipeline" / "training.py")
        time.sleep(1.5)  # the agent looks at its code every 0.5 s
        run_stage_from(code, root)
        assert agent_pids(store.tracking_uri()) == [pid]
    finally:
        shutil.rmtree(code)  # and the agent exits, instead of idling for 10 minutes


def test_sockets_live_where_only_their_user_can_reach(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    directory = agent_link.agent_dir()
    assert directory.stat().st_mode & 0o777 == 0o700
    directory.chmod(0o777)
    with pytest.raises(PipelineError, match=r"must belong to you with mode 700"):
        agent_link.agent_dir()


def test_starting_an_agent_prunes_week_old_logs_and_locks_of_agents_that_exited(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = Path(tempfile.mkdtemp(prefix="agents-", dir="/tmp"))  # room for socket names
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    directory = agent_link.agent_dir()
    for name in ("exited", "crashed", "recent"):
        for leftover in (directory / f"{name}.log", directory / f"{name}.lock"):
            leftover.write_text("a request\n")
            if name != "recent":
                eight_days_ago = time.time() - 8 * 86400
                os.utime(leftover, (eight_days_ago, eight_days_ago))
    (directory / "crashed.sock").touch()  # a crashed agent leaves its socket behind
    try:
        with tracking.new_run("exp"):
            pass
        key = agent_link.agent_key(store.tracking_uri())
        for suffix in ("log", "lock"):
            assert sorted(path.name for path in directory.glob(f"*.{suffix}")) == sorted(
                [f"crashed.{suffix}", f"recent.{suffix}", f"{key}.{suffix}"])
    finally:
        agent_link.stop_agent(store.tracking_uri())
        shutil.rmtree(short)


def test_stop_ends_the_agent_and_the_next_stage_starts_another(root: Path) -> None:
    assert agent_link.stop_agent(store.tracking_uri()) is None
    with tracking.new_run("exp"):
        pass
    (pid,) = agent_pids(str(socket_path()))
    assert agent_link.stop_agent(store.tracking_uri()) == pid
    wait_until(lambda: not agent_pids(str(socket_path())), 30, "the stopped agent exited")
    with tracking.new_run("exp") as run:
        pass
    assert status(run.run_id) == "FINISHED"


def test_only_the_tracking_requests_are_served(root: Path) -> None:
    with (tracking.new_run("exp") as run,
          pytest.raises(PipelineError, match=r"the tracking agent has no request 'connect'")):
        run.link.call("connect", uri="sqlite:////tmp/elsewhere.db")
    assert status(run.run_id) == "FINISHED"
