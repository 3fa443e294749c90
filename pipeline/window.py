"""Stage `window`: cut the series into encoder/decoder windows and split them.

For window i of a series: encoder input = input[i : i+steps], decoder target =
target[i : i+steps], decoder input = the target shifted right by one step with 0 first
(teacher forcing). The last `validation_fraction` of the training windows are the
validation split, as Keras' `validation_split` takes them; the test series gives the test
windows. Vectorised with strided views; NumPy and pandas only (no TensorFlow, no MLflow).
"""

import logging
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.errors import InputError
from pipeline.files import read_table, write_arrays
from pipeline.params import load_params, split_sizes, window_count

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# Model inputs are (windows, steps, 1) float32; x and start locate each window for plots.
FIELDS = ("encoder_in", "decoder_in", "target", "x", "start")
SERIES_COLUMNS = ("x", "input", "target")


def sliding_windows(values: np.ndarray, steps: int) -> np.ndarray:
    """Return the (windows, steps) windows of a 1-D series, as the seed cuts them."""
    return sliding_window_view(values, steps)[: window_count(len(values), steps)]


def shift_right(target: np.ndarray) -> np.ndarray:
    """Return decoder inputs: each window's target one step later, 0 at the first step."""
    decoder_in = np.zeros_like(target)
    decoder_in[:, 1:] = target[:, :-1]
    return decoder_in


def make_windows(x: np.ndarray, signal_in: np.ndarray, signal_out: np.ndarray,
                 steps: int) -> dict[str, np.ndarray]:
    """Return one series' windows as arrays named by `FIELDS`."""
    target = sliding_windows(signal_out, steps).astype(np.float32)
    return {
        "encoder_in": sliding_windows(signal_in, steps).astype(np.float32)[..., None],
        "decoder_in": shift_right(target)[..., None],
        "target": target[..., None],
        "x": np.ascontiguousarray(sliding_windows(x, steps)),
        "start": np.arange(len(target)),
    }


def split_windows(windows: dict[str, np.ndarray], validation_fraction: float
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split windows in order: the first part to fit on, the last for validation."""
    fit, _ = split_sizes(len(windows["start"]), validation_fraction)
    return ({name: array[:fit] for name, array in windows.items()},
            {name: array[fit:] for name, array in windows.items()})


def window_splits(train_series: dict[str, np.ndarray], test_series: dict[str, np.ndarray],
                  steps: int, validation_fraction: float) -> dict[str, np.ndarray]:
    """Return every split's windows under "<split>.<field>" names."""
    train_windows = make_windows(*(train_series[c] for c in SERIES_COLUMNS), steps)
    train, validation = split_windows(train_windows, validation_fraction)
    test = make_windows(*(test_series[c] for c in SERIES_COLUMNS), steps)
    splits = dict(zip(SPLITS, (train, validation, test), strict=True))
    return {f"{split}.{name}": array
            for split, arrays in splits.items() for name, array in arrays.items()}


def _read_series(path: Path, steps: int) -> dict[str, np.ndarray]:
    table = read_table(path, SERIES_COLUMNS)
    if len(table) <= steps:
        raise InputError(f"{path}: {len(table)} rows, too short for {steps}-step windows")
    return {column: table[column].to_numpy(dtype=np.float64) for column in SERIES_COLUMNS}


def main() -> None:
    """Read data/series/*.csv and write data/windows/windows.npz."""
    params = load_params()
    train_series = _read_series(paths.TRAIN_SERIES, params.window.steps)
    test_series = _read_series(paths.TEST_SERIES, params.window.steps)
    arrays = window_splits(train_series, test_series, params.window.steps,
                           params.window.validation_fraction)
    write_arrays(arrays, paths.WINDOWS)
    log.info("wrote %s", ", ".join(f"{split}: {len(arrays[f'{split}.start'])} windows"
                                  for split in SPLITS))


if __name__ == "__main__":
    run_stage(main)
