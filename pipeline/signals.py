"""Named signals the series are made of: an allow-list, never evaluated expressions."""

from collections.abc import Callable

import numpy as np

SIGNALS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin,
    "cos": np.cos,
}
