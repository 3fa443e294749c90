"""TensorFlow imported through pipeline.backend: no INFO lines nor CUDA probe noise, on
any CPU; warnings and everything else kept."""

from pipeline.backend import IMPORT_NOISE, stderr_without

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_backend_writes_no_info_or_error_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from pipeline.backend import keras, tf; tf.constant(1.0) + 1"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    lines = (done.stdout + done.stderr).splitlines()
    assert not [line for line in lines if line.startswith(("I0000", "E0000", "WARNING: All"))]


def test_the_filter_drops_only_the_cuda_probe_lines(capfd: pytest.CaptureFixture[str]) -> None:
    with stderr_without(IMPORT_NOISE):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")
        os.write(2, b"I0000 00:00:1.5 123 cudart_stub.cc:31] Could not find cuda drivers on "
                    b"your machine, GPU will not be used.\n")
        os.write(2, b"E0000 00:00:1.6 123 cuda_platform.cc:52] failed call to cuInit: x\n")
        os.write(2, b"I0000 00:00:1.7 123 port.cc:153] oneDNN custom operations are on. "
                    b"You may see slightly different numerical results\n")
        os.write(2, b"E0000 00:00:1.8 123 some_op.cc:2] a real error\n")
        os.write(2, b"W0000 00:00:1.7 123 some_op.cc:1] a real warning\n")
        sys.stderr.write("a Python line\n")
    # (pytest's capture takes sys.stderr's line directly, so compare lines, not order)
    assert sorted(capfd.readouterr().err.splitlines()) == [
        "E0000 00:00:1.8 123 some_op.cc:2] a real error",
        "W0000 00:00:1.7 123 some_op.cc:1] a real warning", "a Python line"]
