"""Stage `evaluate`: measure the trained model teacher-forced and free-running.

Free-running is how the model is used: each output is fed back as the next decoder
input, so errors compound. All windows of all splits decode in one batched pass; the
metrics cover every split, the held-out test series included, and the per-window
predictions feed the `plot` stage and `dvc plots`.
"""

import logging

import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.files import read_arrays, write_json, write_table
from pipeline.model import build_free_running_model, load_model, model_inputs, predict_in_batches
from pipeline.params import load_params

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
WINDOW_FIELDS = ("encoder_in", "decoder_in", "target", "x", "start")


def error_metrics(predicted: np.ndarray, target: np.ndarray, prefix: str) -> dict[str, float]:
    """Return MSE, MAE and max absolute error of `predicted` against `target`."""
    error = predicted.astype(np.float64) - target.astype(np.float64)
    return {f"{prefix}_mse": float(np.mean(error**2)),
            f"{prefix}_mae": float(np.mean(np.abs(error))),
            f"{prefix}_max_abs_error": float(np.max(np.abs(error)))}


def prediction_table(split: str, arrays: dict[str, np.ndarray],
                     predicted: np.ndarray) -> pd.DataFrame:
    """Return one row per (window, step): where it lies, the truth and the prediction."""
    windows, steps = arrays[f"{split}.x"].shape
    return pd.DataFrame({
        "split": split,
        "window": np.repeat(arrays[f"{split}.start"], steps),
        "step": np.tile(np.arange(steps), windows),
        "x": arrays[f"{split}.x"].ravel(),
        "target": arrays[f"{split}.target"].ravel(),
        "prediction": predicted.ravel(),
    })


def evaluate(model, arrays: dict[str, np.ndarray], batch_size: int
             ) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Return metrics per split and the free-running predictions of every window."""
    sizes = [len(arrays[f"{split}.start"]) for split in SPLITS]
    encoder_in = np.concatenate([arrays[f"{split}.encoder_in"] for split in SPLITS])
    free_running = predict_in_batches(build_free_running_model(model), encoder_in, batch_size)
    metrics, tables = {}, []
    for split, predicted in zip(SPLITS, np.split(free_running, np.cumsum(sizes)[:-1]),
                                strict=True):
        target = arrays[f"{split}.target"]
        forced = predict_in_batches(model, model_inputs(arrays, split), batch_size)
        metrics[split] = {**error_metrics(forced, target, "teacher_forced"),
                          **error_metrics(predicted, target, "free_run")}
        tables.append(prediction_table(split, arrays, predicted))
    return metrics, pd.concat(tables, ignore_index=True)


def main() -> None:
    """Evaluate data/model/model.keras; write metrics.json and predictions.csv."""
    params = load_params()
    run_id = tracking.recorded_run_id()
    arrays = read_arrays(paths.WINDOWS, [f"{s}.{f}" for s in SPLITS for f in WINDOW_FIELDS])
    model = load_model(paths.MODEL)
    with tracking.resumed_run(run_id):
        tracking.log_params(run_id, params.flat(paths.STAGES["evaluate"].params))
        metrics, predictions = evaluate(model, arrays, params.evaluate.batch_size)
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
