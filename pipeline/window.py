"""Stage `window`: cut the series into the train, validation and test splits of windows.

For window i of a series: encoder input = input[i : i+steps], decoder target =
target[i : i+steps], decoder input = the target shifted right by one step with 0 first
(teacher forcing). The last `validation_fraction` of the training windows are the
validation split, as Keras' `validation_split` takes them; the test series gives the test
windows. The seed makes `points - steps` windows per series (it drops the last full one).

windows.npz stores, per split, the stretch of series its windows cover plus `steps`:
O(points) bytes, not O(points · steps). `split_windows` turns a split into its arrays as
strided views, so no Python loop and no copy per window. NumPy and pandas only.
"""

import logging
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.errors import InputError
from pipeline.files import write_arrays
from pipeline.params import load_params, split_sizes, window_count
from pipeline.tables import read_table

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SERIES_COLUMNS = ("x", "input", "target")
# Names in windows.npz: "steps", then "<split>.<column>" and "<split>.first_window".
ARRAY_NAMES = ("steps", *(f"{split}.{name}" for split in SPLITS
                          for name in (*SERIES_COLUMNS, "first_window")))


def shift_right(target: np.ndarray) -> np.ndarray:
    """Return decoder inputs: each window's target one step later, 0 at the first step."""
    decoder_in = np.zeros_like(target)
    decoder_in[:, 1:] = target[:, :-1]
    return decoder_in


def split_ranges(train_points: int, test_points: int, steps: int,
                 validation_fraction: float) -> dict[str, tuple[int, int]]:
    """Return each split's (first window, window count) within its series."""
    fit, validation = split_sizes(window_count(train_points, steps), validation_fraction)
    return {"train": (0, fit), "validation": (fit, validation),
            "test": (0, window_count(test_points, steps))}


def cut_splits(train_series: dict[str, np.ndarray], test_series: dict[str, np.ndarray],
               steps: int, validation_fraction: float) -> dict[str, np.ndarray]:
    """Return the arrays of windows.npz: each split's stretch of series, and `steps`."""
    ranges = split_ranges(len(train_series["x"]), len(test_series["x"]), steps,
                          validation_fraction)
    arrays = {"steps": np.array(steps)}
    for split, (first, count) in ranges.items():
        series = test_series if split == "test" else train_series
        for column in SERIES_COLUMNS:
            # count windows of `steps` points starting at `first` span count + steps - 1.
            arrays[f"{split}.{column}"] = series[column][first:first + count + steps - 1]
        arrays[f"{split}.first_window"] = np.array(first)
    return arrays


def split_windows(arrays: dict[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    """Return one split's windows: encoder_in, decoder_in, target (windows, steps, 1) as
    float32, x (windows, steps) and start (windows,), the index of each window's first point.
    """
    steps = int(arrays["steps"])

    def cut(column: str) -> np.ndarray:
        return sliding_window_view(arrays[f"{split}.{column}"], steps)  # (windows, steps)

    target = cut("target").astype(np.float32)
    return {
        "encoder_in": cut("input").astype(np.float32)[..., None],
        "decoder_in": shift_right(target)[..., None],
        "target": target[..., None],
        "x": cut("x"),
        "start": int(arrays[f"{split}.first_window"]) + np.arange(len(target)),
    }


def read_series(path: Path, steps: int) -> dict[str, np.ndarray]:
    """Read a series table; it must be long enough for one window."""
    table = read_table(path, SERIES_COLUMNS)
    if len(table) <= steps:
        raise InputError(f"{path}: {len(table)} rows, too short for {steps}-step windows")
    return {column: table[column].to_numpy(dtype=np.float64) for column in SERIES_COLUMNS}


def main() -> None:
    """Read data/series/*.csv and write data/windows/windows.npz."""
    params = load_params()
    steps = params.window.steps
    arrays = cut_splits(read_series(paths.TRAIN_SERIES, steps),
                        read_series(paths.TEST_SERIES, steps), steps,
                        params.window.validation_fraction)
    write_arrays(arrays, paths.WINDOWS)
    log.info("wrote %s", ", ".join(
        f"{split}: {len(arrays[f'{split}.x']) - steps + 1} windows" for split in SPLITS))


if __name__ == "__main__":
    run_stage(main)
