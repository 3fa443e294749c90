"""The suite's own guard: a hung command fails its test instead of stalling the run."""

import time
from pathlib import Path

import pytest
from conftest import run


def test_a_hung_command_is_killed_with_its_children_and_fails_the_test(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    # The child outlives its parent and keeps the output pipe open, as a daemon might.
    command = ["sh", "-c", f"(sleep 3; touch {marker}) & sleep 60"]
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="still running after 1 s, killed"):
        run(command, tmp_path, timeout=1)
    assert time.monotonic() - start < 3
    time.sleep(3)
    assert not marker.exists()
