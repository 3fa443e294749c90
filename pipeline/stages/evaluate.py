"""Stage `evaluate`: measure the saved models teacher-forced and free-running.

Free-running is how the model is used: each output is fed back as the next decoder
input, so errors compound. It runs the saved predictor, the artifact logged and served,
on all windows of all splits in one batched call; the metrics cover every split, the
held-out test series included, and the per-window predictions feed `plot` and
`dvc plots`. The metrics go to the run and, as tags, to the predictor's registered model
version.
"""

import logging

import keras
import mlflow
import numpy as np
import pandas as pd

from pipeline import paths, registry, tracking
from pipeline.cli import run_stage
from pipeline.data import ARRAY_NAMES, SPLITS, split_windows
from pipeline.io import read_arrays, write_json, write_table
from pipeline.model import load_model
from pipeline.params import load_params

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


def evaluate(model: keras.Model, predictor: keras.Model,
             splits: dict[str, dict[str, np.ndarray]], batch_size: int
             ) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Return metrics per split and the free-running predictions of every window."""
    encoder_in, decoder_in = (np.concatenate([windows[name] for windows in splits.values()])
                              for name in ("encoder_in", "decoder_in"))
    bounds = np.cumsum([len(windows["start"]) for windows in splits.values()])[:-1]
    free_running = np.split(predictor.predict(encoder_in, batch_size=batch_size, verbose=0),
                            bounds)
    forced = np.split(model.predict([encoder_in, decoder_in], batch_size=batch_size,
                                    verbose=0), bounds)
    metrics, tables = {}, []
    for index, (split, windows) in enumerate(splits.items()):
        metrics[split] = {**error_metrics(forced[index], windows["target"], "teacher_forced"),
                          **error_metrics(free_running[index], windows["target"], "free_run")}
        tables.append(prediction_table(split, windows, free_running[index]))
    return metrics, pd.concat(tables, ignore_index=True)


def main() -> None:
    """Evaluate the saved models; write metrics.json and predictions.csv."""
    params = load_params()
    run_id = tracking.recorded_run_id()
    name, version = tracking.recorded_version()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    splits = {split: split_windows(arrays, split) for split in SPLITS}
    model, predictor = load_model(paths.MODEL), load_model(paths.PREDICTOR)
    with tracking.resumed_run(run_id):
        tracking.log_params(params.flat(paths.STAGES["evaluate"].params))
        metrics, predictions = evaluate(model, predictor, splits, params.evaluate.batch_size)
        write_json(metrics, paths.METRICS)
        write_table(predictions, paths.PREDICTIONS)
        flat = {f"{split}.{key}": value for split, values in metrics.items()
                for key, value in values.items()}
        mlflow.log_metrics(flat)
        registry.tag_version(name, version, flat)
    for split in SPLITS:
        log.info("%s: free-running MSE %.3g, teacher-forced MSE %.3g", split,
                 metrics[split]["free_run_mse"], metrics[split]["teacher_forced_mse"])


if __name__ == "__main__":
    run_stage(main)
