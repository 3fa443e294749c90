"""Stage `evaluate`: measure the saved models teacher-forced and free-running.

Free-running is how the model is used: each output is fed back as the next decoder
input, so errors compound. It runs the saved predictor, the artifact logged and served,
on all windows of all splits in one batched call; the metrics cover every split, the
held-out test series included, and the per-window predictions feed `plot` and
`dvc plots`. Beside them stand naive predictors on the same windows and the model's skill
against each (1 − model MSE / baseline MSE: above 0 beats it), so "is it any good?" has
an answer. The metrics go to the run and, as tags, to the predictor's registered model
version.
"""

import logging

import keras
import mlflow
import numpy as np
import pandas as pd

from pipeline import paths, registry, tracking
from pipeline.cli import run_stage
from pipeline.data import ARRAY_NAMES, SPLITS, scaling_statistics, split_windows
from pipeline.io import read_arrays, write_json, write_table
from pipeline.model import load_model
from pipeline.params import load_params

log = logging.getLogger(__name__)

BASELINES = ("mean", "last_input", "input")  # see `baselines`


def errors(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return `predicted` - `target` in float64."""
    return predicted.astype(np.float64) - target.astype(np.float64)


def error_metrics(predicted: np.ndarray, target: np.ndarray, prefix: str) -> dict[str, float]:
    """Return MSE, MAE and max absolute error of `predicted` against `target`."""
    error = errors(predicted, target)
    return {f"{prefix}_mse": float(np.mean(error**2)),
            f"{prefix}_mae": float(np.mean(np.abs(error))),
            f"{prefix}_max_abs_error": float(np.max(np.abs(error)))}


def baselines(windows: dict[str, np.ndarray], target_mean: float) -> dict[str, np.ndarray]:
    """Return naive predictions of the windows' targets (windows, steps, 1), by name.

    `mean`: always the training target's mean. With one input column, in the target's
    units when the input is the target's own history: `last_input`, the window's last
    input value carried forward (the naive forecast), and `input`, the input window itself
    (the seasonal naive forecast when the target is the input a season later).
    """
    target, encoder_in = windows["target"], windows["encoder_in"]
    naive = {"mean": np.full_like(target, target_mean)}
    if encoder_in.shape[2] == 1:
        naive["last_input"] = np.broadcast_to(encoder_in[:, -1:, :], target.shape)
        naive["input"] = encoder_in
    return naive


def skill_metrics(free_run_mse: float, windows: dict[str, np.ndarray],
                  target_mean: float) -> dict[str, float]:
    """Return each baseline's MSE and the model's skill against it, 1 − MSE / baseline's
    (no skill against a baseline that is exact)."""
    metrics = {}
    for name, predicted in baselines(windows, target_mean).items():
        baseline = float(np.mean(errors(predicted, windows["target"]) ** 2))
        metrics[f"baseline_{name}_mse"] = baseline
        if baseline > 0:
            metrics[f"skill_vs_{name}"] = 1.0 - free_run_mse / baseline
    return metrics


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
             splits: dict[str, dict[str, np.ndarray]], batch_size: int, target_mean: float
             ) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Return metrics per split (the baselines' and skill among them) and the free-running
    predictions of every window."""
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
        metrics[split].update(skill_metrics(metrics[split]["free_run_mse"], windows,
                                            target_mean))
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
        target_mean = float(scaling_statistics(arrays)["target_mean"][0])
        metrics, predictions = evaluate(model, predictor, splits, params.evaluate.batch_size,
                                        target_mean)
        write_json(metrics, paths.METRICS)
        write_table(predictions, paths.PREDICTIONS)
        flat = {f"{split}.{key}": value for split, values in metrics.items()
                for key, value in values.items()}
        mlflow.log_metrics(flat)
        registry.tag_version(name, version, flat)
    for split in SPLITS:
        log.info("%s", summary(split, metrics[split]))
    warn_if_worse_than_the_mean(metrics["validation"])


def summary(split: str, metrics: dict[str, float]) -> str:
    """Return one split's metrics as a line: the model's MSE and its skill."""
    skills = ", ".join(f"{metrics[f'skill_vs_{name}']:.3g} vs {name.replace('_', ' ')} "
                       f"(MSE {metrics[f'baseline_{name}_mse']:.3g})"
                       for name in BASELINES if f"skill_vs_{name}" in metrics)
    return (f"{split}: free-running MSE {metrics['free_run_mse']:.3g}, skill {skills or 'n/a'}; "
            f"teacher-forced MSE {metrics['teacher_forced_mse']:.3g}")


def warn_if_worse_than_the_mean(validation: dict[str, float]) -> None:
    """Say in one line when the model does worse on validation than the mean predictor."""
    if validation.get("skill_vs_mean", 0.0) < 0:
        log.warning("the model is worse than always predicting the training mean on "
                    "validation (free-running MSE %.3g vs %.3g): check model.scaling, "
                    "train.epochs and model.*", validation["free_run_mse"],
                    validation["baseline_mean_mse"])


if __name__ == "__main__":
    run_stage(main)
