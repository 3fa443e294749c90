"""The data: named signals sampled into series, and series cut into windows.

For window i of a series: encoder input = input[i : i+steps], decoder target =
target[i : i+steps], decoder input = the target shifted right by one step with 0 first
(teacher forcing). The input may have several columns (k); the target has one. The
seed makes `points - steps` windows per series (it drops the last full one). The last
`validation_fraction` of the training windows are the validation split, as Keras'
`validation_split` takes them; the test series gives the test windows.

windows.npz stores, per split, only the stretch of series its windows cover (O(points),
not O(points · steps)). Training and evaluation stream windows from those stretches
(`split_stretch`, cut by pipeline.training); `split_windows` cuts a few chosen windows
(or, on small series, all) as arrays, and `prediction_table` lays their predictions out
one row per window step (predictions.csv, the figures). NumPy and pandas: no TensorFlow,
no MLflow.
"""

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view


def triangle(x: np.ndarray) -> np.ndarray:
    """Return a triangle wave with sin's period, peaks and zeros."""
    return 2 / np.pi * np.arcsin(np.sin(x))


def sawtooth(x: np.ndarray) -> np.ndarray:
    """Return a sawtooth wave of period 2π rising from -1 to 1, 0 at x = 0."""
    cycles = x / (2 * np.pi)
    return 2 * (cycles - np.floor(0.5 + cycles))


# The signals params.yaml may name: an allow-list, never evaluated expressions.
SIGNALS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin, "cos": np.cos, "triangle": triangle, "sawtooth": sawtooth,
}

SPLITS = ("train", "validation", "test")
SERIES_COLUMNS = ("x", "input", "target")
# Names in windows.npz: "steps", then "<split>.<column>" and "<split>.first_window".
ARRAY_NAMES = ("steps", *(f"{split}.{name}" for split in SPLITS
                          for name in (*SERIES_COLUMNS, "first_window")))
INPUT_PREFIX = "input."  # series tables name several input columns input.<CSV column>

Series = dict[str, np.ndarray]  # x (points,), input (points, k), target (points,)


def input_columns(names: list[str] | tuple[str, ...]) -> list[str]:
    """Return a series table's input columns: `input`, or `input.<name>` for several."""
    return [name for name in names if name == "input" or name.startswith(INPUT_PREFIX)]


def input_names(csv_columns: tuple[str, ...]) -> list[str]:
    """Return the series-table names of the user's input columns (see `input_columns`)."""
    if len(csv_columns) == 1:
        return ["input"]
    return [f"{INPUT_PREFIX}{column}" for column in csv_columns]


def sample_series(input_signal: str, target_signal: str, x: np.ndarray,
                  target_phase_pi: float = 0.0, noise: np.ndarray | None = None) -> Series:
    """Return input and target sampled at `x`; `noise` (if any) is added to the input."""
    signal_in = SIGNALS[input_signal](x)
    return {"x": x, "input": signal_in if noise is None else signal_in + noise,
            "target": SIGNALS[target_signal](x + target_phase_pi * np.pi)}


def window_count(points: int, steps: int) -> int:
    """Return how many windows a series yields; the seed drops the last full one."""
    return points - steps


def split_sizes(windows: int, validation_fraction: float) -> tuple[int, int]:
    """Return (fit, validation) window counts, rounded as Keras 3's `validation_split`."""
    fit = math.floor(windows * (1.0 - validation_fraction))
    return fit, windows - fit


def shift_right(target: np.ndarray) -> np.ndarray:
    """Return decoder inputs: each window's target one step later, 0 at the first step."""
    decoder_in = np.zeros_like(target)
    decoder_in[:, 1:] = target[:, :-1]
    return decoder_in


def cut_splits(train: Series, test: Series, steps: int,
               validation_fraction: float) -> dict[str, np.ndarray]:
    """Return the arrays of windows.npz: each split's stretch of series, and `steps`."""
    fit, validation = split_sizes(window_count(len(train["x"]), steps), validation_fraction)
    ranges = {"train": (train, 0, fit), "validation": (train, fit, validation),
              "test": (test, 0, window_count(len(test["x"]), steps))}
    arrays = {"steps": np.array(steps)}
    for split, (series, first, count) in ranges.items():
        for column in SERIES_COLUMNS:
            # `count` windows of `steps` points from `first` span count + steps - 1 points.
            arrays[f"{split}.{column}"] = series[column][first:first + count + steps - 1]
        arrays[f"{split}.input"] = arrays[f"{split}.input"].reshape(
            len(arrays[f"{split}.x"]), -1)  # (points, k): a 1-D input is one column
        arrays[f"{split}.first_window"] = np.array(first)
    return arrays


def input_count(arrays: dict[str, np.ndarray]) -> int:
    """Return k, the number of input columns the windows carry."""
    return arrays["train.input"].shape[1]


def scaling_statistics(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return mean and variance of each input column and of the target over the training
    split's own stretch of series: validation and test never shape the scaling."""
    inputs, target = arrays["train.input"], arrays["train.target"]  # (points, k), (points,)
    return {"input_mean": inputs.mean(axis=0), "input_variance": inputs.var(axis=0),
            "target_mean": np.array([target.mean()]), "target_variance": np.array([target.var()])}


Stretch = tuple[np.ndarray, np.ndarray]  # a split's input (points, k), target (points,)


def split_stretch(arrays: dict[str, np.ndarray], split: str) -> Stretch:
    """Return one split's stretch of series as float32, the form windows are cut from."""
    return (arrays[f"{split}.input"].astype(np.float32),
            arrays[f"{split}.target"].astype(np.float32))


def split_window_count(arrays: dict[str, np.ndarray], split: str) -> int:
    """Return how many windows one split holds."""
    return len(arrays[f"{split}.x"]) - int(arrays["steps"]) + 1


def split_windows(arrays: dict[str, np.ndarray], split: str,
                  which: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
    """Return one split's windows (`which`: their indices in the split, default all):
    encoder_in (windows, steps, k), decoder_in and target (windows, steps, 1) as float32,
    x (windows, steps) and start (windows,), the index of each window's first point.
    Only the chosen windows are copied.
    """
    steps = int(arrays["steps"])

    def cut(column: str) -> np.ndarray:
        return sliding_window_view(arrays[f"{split}.{column}"], steps, axis=0)[which]

    target = cut("target").astype(np.float32)  # (windows, steps)
    return {
        # (windows, k, steps) from the (points, k) input, then steps before columns.
        "encoder_in": np.moveaxis(cut("input"), 2, 1).astype(np.float32),
        "decoder_in": shift_right(target)[..., None],
        "target": target[..., None],
        "x": cut("x"),
        "start": int(arrays[f"{split}.first_window"]) + np.arange(
            split_window_count(arrays, split))[which],
    }


def prediction_table(split: str, windows: dict[str, np.ndarray],
                     predicted: np.ndarray) -> pd.DataFrame:
    """Return one row per (window, step): where it lies, the truth and the prediction."""
    count, steps = windows["x"].shape
    return pd.DataFrame({
        "split": split,
        "window": np.repeat(windows["start"], steps),
        "step": np.tile(np.arange(steps), count),
        "x": windows["x"].ravel(),
        "target": windows["target"].ravel(),
        "prediction": predicted.ravel(),
    })
