"""The suite's own guard: a hung command fails its test instead of stalling the run."""

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import run


def test_a_hung_command_is_killed_with_its_children_and_fails_the_test(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    command = ["sh", "-c", f"(sleep 3; touch {marker}) & sleep 60"]
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="still running after 1 s, killed"):
        run(command, tmp_path, timeout=1)
    assert time.monotonic() - start < 3
    time.sleep(3)
    assert not marker.exists()


def test_a_command_returns_when_it_exits_though_a_daemon_it_left_holds_its_output(
        tmp_path: Path) -> None:
    # As `dvc queue start` does: its worker, in a session of its own, keeps the output open.
    pid_file = tmp_path / "daemon.pid"
    command = ["sh", "-c", f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 60' & echo started"]
    start = time.monotonic()
    try:
        done = run(command, tmp_path, timeout=30)
        assert time.monotonic() - start < 10
        assert done.stdout == "started\n"
    finally:
        time.sleep(0.5)  # the daemon writes its pid as it starts
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
