"""Stage `window`: cut the two series into train, validation and test splits (windows.npz).
NumPy and pandas only.
"""

import logging
from pathlib import Path

import numpy as np

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.data import Series, input_columns
from pipeline.errors import InputError
from pipeline.files import read_series
from pipeline.params import load_params
from pipeline.windows import Windows

log = logging.getLogger(__name__)


def read_windowable(path: Path, steps: int) -> Series:
    """Read a series table as arrays; it must be long enough for one window."""
    table = read_series(path)
    if len(table) <= steps:
        raise InputError(f"{path}: {len(table)} rows, too short for {steps}-step windows")
    inputs = input_columns(list(table.columns))
    return {"x": table["x"].to_numpy(dtype=np.float64),
            "input": table[inputs].to_numpy(dtype=np.float64),  # (points, k)
            "target": table["target"].to_numpy(dtype=np.float64)}


def main() -> None:
    """Read data/series/*.csv and write data/windows/windows.npz."""
    params = load_params()
    steps = params.window.steps
    windows = Windows.cut(read_windowable(paths.TRAIN_SERIES, steps),
                          read_windowable(paths.TEST_SERIES, steps), steps,
                          params.window.validation_fraction)
    windows.write(paths.WINDOWS)
    log.info("wrote %s", ", ".join(f"{split.name}: {split.count} windows"
                                   for split in windows.splits()))


if __name__ == "__main__":
    run_stage(main)
