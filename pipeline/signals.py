"""Named signals the series are made of: an allow-list, never evaluated expressions."""

from collections.abc import Callable

import numpy as np


def triangle(x: np.ndarray) -> np.ndarray:
    """Return a triangle wave with sin's period, peaks and zeros."""
    return 2 / np.pi * np.arcsin(np.sin(x))


def sawtooth(x: np.ndarray) -> np.ndarray:
    """Return a sawtooth wave of period 2π rising from -1 to 1, 0 at x = 0."""
    cycles = x / (2 * np.pi)
    return 2 * (cycles - np.floor(0.5 + cycles))


SIGNALS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin,
    "cos": np.cos,
    "triangle": triangle,
    "sawtooth": sawtooth,
}
