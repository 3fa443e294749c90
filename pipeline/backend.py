"""Keras and TensorFlow, imported once (`from pipeline.backend import keras, tf`, first),
with TensorFlow's C++ INFO lines and CUDA probe noise (TensorFlow issue 100442) dropped
from stderr; warnings and errors pass on.
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
    """Hold what the process writes to fd 2 (C++ included); then pass on every line not
    matching `lines`."""
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
