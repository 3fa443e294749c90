"""The data: named signals sampled into series, and a series' column names. NumPy only."""

from collections.abc import Callable

import numpy as np


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
