"""Stage `evaluate`: measure the trained model teacher-forced and free-running.

Free-running is how the model is used: each output is fed back as the next decoder
input, so errors compound. All windows of all splits decode in one batched pass; the
metrics cover every split, the held-out test series included, and the per-window
predictions feed the `plot` stage and `dvc plots`.
"""

import logging

import keras
import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.files import read_arrays, write_json, write_table
from pipeline.model import (
    DECODER_IN,
    ENCODER_IN,
    build_free_running_model,
    load_model,
    predict_in_batches,
)
from pipeline.params import load_params
from pipeline.window import ARRAY_NAMES, SPLITS, split_windows

log = logging.getLogger(__name__)



def error_metrics(predicted: np.ndarray, target: np.ndarray, prefix: str) -> dict[str, float]:
    """Return MSE, MAE and max absolute error of `predicted` against `target`."""
    error = predicted.astype(np.float64) - target.astype(np.float64)
    return {f"{prefix}_mse": float(np.mean(error**2)),
            f"{prefix}_mae": float(np.mean(np.abs(error))),
            f"{prefix}_max_abs_error": float(np.max(np.abs(error)))}


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


def evaluate(model: keras.Model, splits: dict[str, dict[str, np.ndarray]], batch_size: int
             ) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Return metrics per split and the free-running predictions of every window."""
    # All splits go through each model in one batched pass, then are split apart again.
    every = {ENCODER_IN: np.concatenate([w["encoder_in"] for w in splits.values()]),
             DECODER_IN: np.concatenate([w["decoder_in"] for w in splits.values()])}
    bounds = np.cumsum([len(windows["start"]) for windows in splits.values()])[:-1]
    free_running = np.split(predict_in_batches(build_free_running_model(model),
                                               every[ENCODER_IN], batch_size), bounds)
    forced = np.split(predict_in_batches(model, every, batch_size), bounds)
    metrics, tables = {}, []
    for index, (split, windows) in enumerate(splits.items()):
        metrics[split] = {**error_metrics(forced[index], windows["target"], "teacher_forced"),
                          **error_metrics(free_running[index], windows["target"], "free_run")}
        tables.append(prediction_table(split, windows, free_running[index]))
    return metrics, pd.concat(tables, ignore_index=True)


def main() -> None:
    """Evaluate data/model/model.keras; write metrics.json and predictions.csv."""
    params = load_params()
    run_id = tracking.recorded_run_id()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    splits = {split: split_windows(arrays, split) for split in SPLITS}
    model = load_model(paths.MODEL)
    with tracking.resumed_run(run_id):
        tracking.log_params(run_id, params.flat(paths.STAGES["evaluate"].params))
        metrics, predictions = evaluate(model, splits, params.evaluate.batch_size)
        write_json(metrics, paths.METRICS)
        write_table(predictions, paths.PREDICTIONS)
        tracking.log_metric_series(run_id, (
            (f"{split}.{name}", value, 0)
            for split, values in metrics.items() for name, value in values.items()))
    for split in SPLITS:
        log.info("%s: free-running MSE %.3g, teacher-forced MSE %.3g", split,
                 metrics[split]["free_run_mse"], metrics[split]["teacher_forced_mse"])


if __name__ == "__main__":
    run_stage(main)
