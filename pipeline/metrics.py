"""A split's scores, summed batch by batch (no split held whole): errors, naive baselines
and skill = 1 − model MSE / baseline MSE. NumPy only.
"""

import numpy as np

BASELINES = ("mean", "last_input", "input")  # see `baselines`
# What forecasters call them.
NAIVE_NAMES = {"mean": "mean", "last_input": "naive (last value)",
               "input": "seasonal naive (the input window)"}


def baselines(encoder_in: np.ndarray, target: np.ndarray,
              target_mean: float) -> dict[str, np.ndarray]:
    """Return naive forecasts of `target` by name: the training `mean`; with one input
    column (the target's own history) also `last_input` (naive) and `input` (seasonal
    naive)."""
    naive = {"mean": np.full_like(target, target_mean)}
    if encoder_in.shape[2] == 1:
        naive["last_input"] = np.broadcast_to(encoder_in[:, -1:, :], target.shape)
        naive["input"] = encoder_in
    return naive


class ErrorSums:
    """One predictor's errors summed over the batches seen so far."""

    def __init__(self) -> None:
        self.squared = self.absolute = self.largest = 0.0
        self.count = 0

    def add(self, predicted: np.ndarray, target: np.ndarray) -> None:
        """Add a batch of predictions and the targets they should equal."""
        error = predicted.astype(np.float64) - target.astype(np.float64)
        self.squared += float(np.sum(error**2))
        self.absolute += float(np.sum(np.abs(error)))
        self.largest = max(self.largest, float(np.max(np.abs(error), initial=0.0)))
        self.count += error.size

    def mse(self) -> float:
        """Return the mean squared error so far."""
        return self.squared / self.count

    def metrics(self, prefix: str) -> dict[str, float]:
        """Return MSE, MAE and max absolute error, named `<prefix>_...`."""
        return {f"{prefix}_mse": self.mse(), f"{prefix}_mae": self.absolute / self.count,
                f"{prefix}_max_abs_error": self.largest}


class SplitScores:
    """A split's scores: the model free-running and teacher-forced, and the baselines."""

    def __init__(self, target_mean: float) -> None:
        self.target_mean = target_mean
        self.free_run, self.teacher_forced = ErrorSums(), ErrorSums()
        self.baselines: dict[str, ErrorSums] = {}

    def add(self, encoder_in: np.ndarray, target: np.ndarray, free_run: np.ndarray,
            teacher_forced: np.ndarray) -> None:
        """Add one batch of windows: inputs, targets and both models' predictions."""
        self.free_run.add(free_run, target)
        self.teacher_forced.add(teacher_forced, target)
        for name, predicted in baselines(encoder_in, target, self.target_mean).items():
            self.baselines.setdefault(name, ErrorSums()).add(predicted, target)

    def metrics(self) -> dict[str, float]:
        """Return errors, each baseline's MSE and the skill against it (none against an
        exact one)."""
        found = {**self.teacher_forced.metrics("teacher_forced"),
                 **self.free_run.metrics("free_run")}
        for name, sums in self.baselines.items():
            found[f"baseline_{name}_mse"] = sums.mse()
            if sums.mse() > 0:
                found[f"skill_vs_{name}"] = 1.0 - self.free_run.mse() / sums.mse()
        return found
