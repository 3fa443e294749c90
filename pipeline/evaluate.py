"""Stage `evaluate`: measure the trained model teacher-forced and free-running.

Free-running is how the model is used: each output is fed back as the next decoder
input, so errors compound. All windows of all splits decode together, `batch_size` at a
time; the metrics cover every split, the held-out test series included, and the
per-window predictions feed the `plot` stage and `dvc plots`. The network runs in NumPy
from weights.npz (pipeline.inference), so this stage does not import TensorFlow.
"""

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.files import read_arrays, write_json
from pipeline.inference import WEIGHT_NAMES, Seq2Seq
from pipeline.params import load_params
from pipeline.tables import write_table
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


def in_batches(decode: Callable[..., np.ndarray], batch_size: int,
               *inputs: np.ndarray) -> np.ndarray:
    """Return `decode(*inputs)` computed `batch_size` windows at a time (bounded memory)."""
    return np.concatenate([decode(*(array[start:start + batch_size] for array in inputs))
                           for start in range(0, len(inputs[0]), batch_size)])


def evaluate(net: Seq2Seq, splits: dict[str, dict[str, np.ndarray]], batch_size: int
             ) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Return metrics per split and the free-running predictions of every window."""
    encoder_in, decoder_in = (np.concatenate([windows[name] for windows in splits.values()])
                              for name in ("encoder_in", "decoder_in"))
    bounds = np.cumsum([len(windows["start"]) for windows in splits.values()])[:-1]
    free_running = np.split(in_batches(net.free_running, batch_size, encoder_in), bounds)
    forced = np.split(in_batches(net.teacher_forced, batch_size, encoder_in, decoder_in),
                      bounds)
    metrics, tables = {}, []
    for index, (split, windows) in enumerate(splits.items()):
        metrics[split] = {**error_metrics(forced[index], windows["target"], "teacher_forced"),
                          **error_metrics(free_running[index], windows["target"], "free_run")}
        tables.append(prediction_table(split, windows, free_running[index]))
    return metrics, pd.concat(tables, ignore_index=True)


def main() -> None:
    """Evaluate the trained weights; write metrics.json and predictions.csv."""
    params = load_params()
    run_id = tracking.recorded_run_id()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    splits = {split: split_windows(arrays, split) for split in SPLITS}
    net = Seq2Seq(read_arrays(paths.WEIGHTS, WEIGHT_NAMES), paths.WEIGHTS)
    with tracking.resumed_run(run_id) as run:
        run.log_params(params.flat(paths.STAGES["evaluate"].params))
        metrics, predictions = evaluate(net, splits, params.evaluate.batch_size)
        write_json(metrics, paths.METRICS)
        write_table(predictions, paths.PREDICTIONS)
        run.log_metrics((
            (f"{split}.{name}", value, 0)
            for split, values in metrics.items() for name, value in values.items()))
    for split in SPLITS:
        log.info("%s: free-running MSE %.3g, teacher-forced MSE %.3g", split,
                 metrics[split]["free_run_mse"], metrics[split]["teacher_forced_mse"])


if __name__ == "__main__":
    run_stage(main)
