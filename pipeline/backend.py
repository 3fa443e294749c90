"""Keras and its TensorFlow backend, imported once, without the CUDA probe's noise.

Every module of the package that needs them imports them from here
(`from pipeline.backend import keras, tf`; ruff's import order keeps that line first), so
TensorFlow's documented log-level variable is set in this one place before TensorFlow
loads. It hides TensorFlow's C++ INFO lines; warnings and errors still show.

Some lines no log level hides, because TensorFlow writes them before absl's logging
starts (TensorFlow issue 100442): on a machine without a GPU the CUDA probe's "Could not
find cuda drivers" and its E line "failed call to cuInit"; on some CPUs (AMD EPYC, seen
here) the INFO line "oneDNN custom operations are on". While the import and the device
probe run, INFO lines (`I` and four digits) and those CUDA probe lines are dropped from
what they write to stderr; warnings, other errors and anything else pass on.
"""

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# 1 = no INFO lines from TensorFlow's C++ code; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

IMPORT_NOISE = re.compile(
    r"^I\d{4} "  # an INFO line of TensorFlow's C++ code, whatever the CPU
    r"|failed call to cuInit"
    r"|All log messages before absl::InitializeLog\(\) is called are written to STDERR")


@contextmanager
def stderr_without(lines: re.Pattern[str]) -> Iterator[None]:
    """Hold what the process writes to file descriptor 2 (C++ code included), then pass on
    every line not matching `lines`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True)
                                     if not lines.search(line)))
            sys.stderr.flush()


with stderr_without(IMPORT_NOISE):
    import keras
    import tensorflow as tf

    tf.config.list_physical_devices()  # the CUDA probe runs here, not at the first op

__all__ = ["keras", "tf"]
