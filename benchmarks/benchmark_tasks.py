"""Measurements the benchmark runs one per process, so each gets its own peak memory.

`python -m pipeline.benchmark_tasks NAME REPO [SEED]` runs task NAME against the pipeline
outputs in REPO and prints its figures as one JSON line. Heavy imports happen inside each
task, timed where the figure includes them.
"""

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import paths
from pipeline.cli import exit_now
from pipeline.files import read_arrays
from pipeline.window import ARRAY_NAMES, split_windows

STEPS, UNITS = 24, 10  # the seed's; the benchmark runs on default params


def _windows(repo: Path, split: str) -> dict[str, np.ndarray]:
    return split_windows(read_arrays(repo / paths.WINDOWS, ARRAY_NAMES), split)


def _decoded_windows(repo: Path) -> np.ndarray:
    """Return the validation + test encoder inputs: the windows evaluate decodes."""
    return np.concatenate([_windows(repo, split)["encoder_in"]
                           for split in ("validation", "test")])


def seed_fit(repo: Path, seed: int) -> dict[str, Any]:
    """Time the seed's `fit` with validation_split on all 76 training windows."""
    import keras  # noqa: PLC0415 - timed tasks import TensorFlow only when they run

    from pipeline.seed_reference import build_seed_models  # noqa: PLC0415
    from pipeline.seed_reference import seed_fit as fit  # noqa: PLC0415

    train, validation = _windows(repo, "train"), _windows(repo, "validation")
    ex, dx, dy = (np.concatenate([train[k], validation[k]])
                  for k in ("encoder_in", "decoder_in", "target"))
    keras.utils.set_random_seed(seed)
    model_train, _, _ = build_seed_models(STEPS, UNITS)
    start = time.perf_counter()
    history = fit(model_train, ex, dx, dy)
    return {"seconds": time.perf_counter() - start,
            "val_loss": history.history["val_loss"][-1]}


def project_fit(repo: Path, seed: int) -> dict[str, Any]:
    """Time the project's compiled loop on the same windows and split."""
    import keras  # noqa: PLC0415

    from pipeline.model import build_training_model  # noqa: PLC0415
    from pipeline.params import TrainParams  # noqa: PLC0415
    from pipeline.training import train_epochs, use_one_thread  # noqa: PLC0415

    use_one_thread()  # as the train stage does
    split = [_windows(repo, name) for name in ("train", "validation")]
    train, validation = ((w["encoder_in"], w["decoder_in"], w["target"]) for w in split)
    keras.utils.set_random_seed(seed)
    model = build_training_model(STEPS, UNITS, 0.001)
    start = time.perf_counter()
    history = train_epochs(model, train, validation, TrainParams(80, 16, 0.001, seed, 0))
    return {"seconds": time.perf_counter() - start,
            "val_loss": float(history["val_loss"].iloc[-1])}


def seed_decode(repo: Path, limit: int) -> dict[str, Any]:
    """Time TensorFlow's import and the seed's per-step loop over the evaluated windows."""
    start = time.perf_counter()
    from pipeline.seed_reference import build_seed_models, seed_predict  # noqa: PLC0415

    imported = time.perf_counter() - start
    _, model_pred_e, pred_d_model = build_seed_models(STEPS, UNITS)
    windows = _decoded_windows(repo)
    sample = windows[:limit] if limit else windows
    start = time.perf_counter()
    for index in range(len(sample)):
        seed_predict(model_pred_e, pred_d_model, sample[index:index + 1], STEPS)
    per_window = (time.perf_counter() - start) / len(sample)
    return {"import_seconds": imported, "per_window": per_window, "sampled": len(sample),
            "windows": len(windows)}


def project_decode(repo: Path, _: int) -> dict[str, Any]:
    """Time evaluate's batched free-running decode of the same windows, after a warm-up."""
    from pipeline.files import read_arrays  # noqa: PLC0415
    from pipeline.inference import WEIGHT_NAMES, Seq2Seq  # noqa: PLC0415

    windows = _decoded_windows(repo)
    net = Seq2Seq(read_arrays(repo / paths.WEIGHTS, WEIGHT_NAMES))
    net.free_running(windows)
    start = time.perf_counter()
    net.free_running(windows)
    return {"per_window": (time.perf_counter() - start) / len(windows)}


def seed_script(repo: Path, seed: int) -> dict[str, Any]:
    """Run the seed notebook end to end: import, data, fit, decode 4 windows."""
    from pipeline.seed_reference import (  # noqa: PLC0415
        build_seed_models,
        seed_fit,
        seed_predict,
        seed_windows,
    )

    x = np.linspace(-3 * np.pi, 3 * np.pi, 100)
    ex, dx, dy = seed_windows(np.sin(x), np.cos(x), STEPS)
    model_train, model_pred_e, pred_d_model = build_seed_models(STEPS, UNITS)
    seed_fit(model_train, ex, dx, dy)
    for point in (0, 24, 49, 74):
        seed_predict(model_pred_e, pred_d_model, ex[point:point + 1], STEPS)
    return {}


class Untracked:
    """Stands in for train's MLflow run and records nothing."""

    def log_params(self, values: Any) -> None:
        """Record nothing."""

    def log_metrics(self, series: Any) -> None:
        """Record nothing."""

    def log_model(self, *_: Any) -> int:
        """Record nothing; no request to wait for."""
        return 0


def train_untracked(repo: Path, _: int) -> dict[str, Any]:
    """Run train's own steps (pipeline.train.train_and_log) with nothing tracked."""
    from pipeline.params import load_params  # noqa: PLC0415
    from pipeline.train import train_and_log  # noqa: PLC0415

    os.chdir(repo)
    params = load_params()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    with tempfile.TemporaryDirectory() as scratch:
        train_and_log(params, arrays, Untracked(), Path(scratch))
    return {}


TASKS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "seed-fit": seed_fit, "project-fit": project_fit, "seed-decode": seed_decode,
    "project-decode": project_decode, "seed-script": seed_script,
    "train-untracked": train_untracked,
}

# Tasks standing in for a pipeline stage exit as stages do (pipeline.cli.exit_now);
# the seed-style ones exit as the notebook's script would.
EXITS_AS_A_STAGE = {"train-untracked"}

if __name__ == "__main__":
    name, repo, number = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    sys.stdout.write(json.dumps(TASKS[name](repo, number)) + "\n")
    if name in EXITS_AS_A_STAGE:
        exit_now()
