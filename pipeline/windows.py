"""Windows as a type: each split's stretch of series, its window count, its windows.
windows.npz stores only the stretches (O(points)); window i = input[i:i+steps], its
target, and the target shifted right (0 first) as decoder input.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.data import Series
from pipeline.files import read_arrays, write_arrays

SPLITS = ("train", "validation", "test")
TRAINING_SPLITS = ("train", "validation")  # together, the training series
COLUMNS = ("x", "input", "target")
Stretch = tuple[np.ndarray, np.ndarray]  # a split's input (points, k), target (points,)


def window_count(points: int, steps: int) -> int:
    """Return how many windows a series yields; the seed drops the last full one."""
    return points - steps


def split_sizes(windows: int, validation_fraction: float) -> tuple[int, int]:
    """Return (fit, validation) window counts, rounded as Keras 3's `validation_split`."""
    fit = math.floor(windows * (1.0 - validation_fraction))
    return fit, windows - fit


def starts_outside(start_points: tuple[int, ...], training_points: int, steps: int
                   ) -> list[int]:
    """Return the plot start points that are no window of a training series of that length."""
    windows = window_count(training_points, steps)
    return [point for point in start_points if not 0 <= point < windows]


def shift_right(target: np.ndarray) -> np.ndarray:
    """Return decoder inputs: each window's target one step later, 0 at the first step."""
    decoder_in = np.zeros_like(target)
    decoder_in[:, 1:] = target[:, :-1]
    return decoder_in


def spread(count: int, chosen: int) -> np.ndarray:
    """Return `chosen` indices spread evenly over 0..count-1 (fewer if count is smaller)."""
    return np.unique(np.linspace(0, count - 1, min(chosen, count)).round().astype(int))


@dataclass(frozen=True)
class Split:
    """One split's stretch (x, input (points, k), target) and its first window's index in
    its series."""

    name: str
    x: np.ndarray
    input: np.ndarray
    target: np.ndarray
    steps: int
    first: int

    @property
    def count(self) -> int:
        """Return how many windows it holds (n windows span n + steps - 1 points)."""
        return len(self.x) - self.steps + 1

    @property
    def stretch(self) -> Stretch:
        """Return its input and target as float32, the form windows are cut from."""
        return self.input.astype(np.float32), self.target.astype(np.float32)

    def local(self, starts: np.ndarray | list[int]) -> np.ndarray:
        """Return the indices in this split of the series' windows `starts` it holds."""
        starts = np.asarray(starts, dtype=int)
        return starts[(starts >= self.first) & (starts < self.first + self.count)] - self.first

    def windows(self, which: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """Return its windows `which` (default all), only those copied: encoder_in (windows,
        steps, k), decoder_in, target (windows, steps, 1), x, start (index in its
        series)."""

        def cut(values: np.ndarray) -> np.ndarray:
            return sliding_window_view(values, self.steps, axis=0)[which]

        target = cut(self.target).astype(np.float32)  # (windows, steps)
        return {
            # (windows, k, steps) from the (points, k) input, then steps before columns.
            "encoder_in": np.moveaxis(cut(self.input), 2, 1).astype(np.float32),
            "decoder_in": shift_right(target)[..., None],
            "target": target[..., None],
            "x": cut(self.x),
            "start": self.first + np.arange(self.count)[which],
        }


@dataclass(frozen=True)
class Windows:
    """The three splits of windows.npz, cut with `steps`-point windows."""

    steps: int
    train: Split
    validation: Split
    test: Split

    @classmethod
    def cut(cls, train: Series, test: Series, steps: int,
            validation_fraction: float) -> "Windows":
        """Return the splits of a training and a test series."""
        fit, validation = split_sizes(window_count(len(train["x"]), steps), validation_fraction)
        ranges = {"train": (train, 0, fit), "validation": (train, fit, validation),
                  "test": (test, 0, window_count(len(test["x"]), steps))}
        splits = {}
        for name, (series, first, count) in ranges.items():
            points = slice(first, first + count + steps - 1)
            splits[name] = Split(name, series["x"][points],
                                 series["input"][points].reshape(count + steps - 1, -1),
                                 series["target"][points], steps, first)
        return cls(steps, **splits)

    def splits(self) -> tuple[Split, Split, Split]:
        """Return train, validation and test."""
        return self.train, self.validation, self.test

    def split(self, name: str) -> Split:
        """Return the split called `name`."""
        return {split.name: split for split in self.splits()}[name]

    @property
    def inputs(self) -> int:
        """Return k, the number of input columns."""
        return self.train.input.shape[1]

    def scaling_statistics(self) -> dict[str, np.ndarray]:
        """Return inputs' and target's mean and variance over the training split alone."""
        inputs, target = self.train.input, self.train.target
        return {"input_mean": inputs.mean(axis=0), "input_variance": inputs.var(axis=0),
                "target_mean": np.array([target.mean()]),
                "target_variance": np.array([target.var()])}

    def training_series(self) -> pd.DataFrame:
        """Return the training series (train and validation stretches joined): x, target."""
        parts = [pd.DataFrame({"x": split.x, "target": split.target})
                 for split in (self.train, self.validation)]
        return pd.concat(parts).drop_duplicates("x").sort_values("x", ignore_index=True)

    def write(self, path: Path) -> None:
        """Write windows.npz: `steps`, then `<split>.<column>` and `<split>.first_window`."""
        arrays = {"steps": np.array(self.steps)}
        for split in self.splits():
            arrays |= {f"{split.name}.{column}": getattr(split, column) for column in COLUMNS}
            arrays[f"{split.name}.first_window"] = np.array(split.first)
        write_arrays(arrays, path)

    @classmethod
    def read(cls, path: Path) -> "Windows":
        """Read windows.npz, or fail naming the file and what it lacks."""
        names = ["steps", *(f"{split}.{name}" for split in SPLITS
                            for name in (*COLUMNS, "first_window"))]
        arrays = read_arrays(path, names)
        steps = int(arrays["steps"])
        return cls(steps, *(Split(split, *(arrays[f"{split}.{column}"] for column in COLUMNS),
                                  steps, int(arrays[f"{split}.first_window"]))
                            for split in SPLITS))


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
