"""Stage `evaluate`: measure the saved models teacher-forced and free-running.

Free-running is how the model is used: each output is fed back as the next decoder
input, so errors compound. It streams every window of every split, in batches, through
the saved predictor (the artifact logged and served) and the training model, and sums
their scores with naive baselines' on the same windows (pipeline.metrics): the metrics
cover every window, yet no split's predictions are held whole. predictions.csv, which
`plot` and `dvc plots` draw, holds a bounded set of windows: the `plot.start_points` and
`evaluate.sample_windows` spread evenly over each split. The metrics go to the run and,
as tags, to the predictor's registered model version.
"""

from pipeline.backend import keras, tf

import logging
from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd

from pipeline import paths, registry, runs, tracking
from pipeline.cli import run_stage
from pipeline.data import (
    ARRAY_NAMES,
    SPLITS,
    prediction_table,
    scaling_statistics,
    split_stretch,
    split_window_count,
    split_windows,
)
from pipeline.files import read_arrays, write_json, write_table
from pipeline.metrics import BASELINES, NAIVE_NAMES, SplitScores
from pipeline.model import compiled_call, load_model
from pipeline.params import Params, load_params
from pipeline.progress import WorkProgress
from pipeline.run_record import RunRecord
from pipeline.training import window_dataset

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
Call = Callable[..., tf.Tensor]  # a model's compiled inference


def score(free_run: Call, teacher_forced: Call, arrays: Arrays,
          batch_size: int) -> dict[str, dict[str, float]]:
    """Return every split's scores, streaming its windows through both models' compiled
    calls (pipeline.model.compiled_call)."""
    steps, target_mean = int(arrays["steps"]), float(scaling_statistics(arrays)["target_mean"][0])
    counts = {split: split_window_count(arrays, split) for split in SPLITS}
    log.info("decoding %d windows (%s) in batches of %d", sum(counts.values()),
             ", ".join(f"{split} {count}" for split, count in counts.items()), batch_size)
    progress, metrics = WorkProgress(sum(counts.values()), "decoded windows"), {}
    for split in SPLITS:
        scores = SplitScores(target_mean)
        for (encoder_in, decoder_in), target in window_dataset(split_stretch(arrays, split),
                                                               steps, batch_size):
            scores.add(encoder_in.numpy(), target.numpy(), free_run(encoder_in).numpy(),
                       teacher_forced(encoder_in, decoder_in).numpy())
            progress.advance(len(target))
        metrics[split] = scores.metrics()
    return metrics


def table_windows(arrays: Arrays, split: str, sample: int,
                  start_points: tuple[int, ...]) -> np.ndarray:
    """Return the indices, within `split`, of the windows predictions.csv shows: `sample`
    spread evenly, and for the training series the `start_points` it holds."""
    count, first = split_window_count(arrays, split), int(arrays[f"{split}.first_window"])
    spread = np.linspace(0, count - 1, min(sample, count)).round()
    starts = [] if split == "test" else [point - first for point in start_points
                                         if first <= point < first + count]
    return np.unique(np.concatenate([spread, starts])).astype(int)


def predictions(free_run: Call, arrays: Arrays, params: Params) -> pd.DataFrame:
    """Return the free-running predictions of the windows `table_windows` picks."""
    tables = []
    for split in SPLITS:
        windows = split_windows(arrays, split, table_windows(
            arrays, split, params.evaluate.sample_windows, params.plot.start_points))
        predicted = keras.ops.convert_to_numpy(free_run(windows["encoder_in"]))
        tables.append(prediction_table(split, windows, predicted))
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    """Evaluate the saved models; write metrics.json and predictions.csv."""
    params = load_params()
    record = RunRecord.read()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    # Each model traced once, for every batch size: the predictor serves both the
    # metrics and the table.
    free_run = compiled_call(load_model(paths.PREDICTOR))
    teacher_forced = compiled_call(load_model(paths.MODEL))
    with runs.opened(runs.choose("evaluate", params.tracking.experiment), params.flat()):
        tracking.log_params(params.flat(paths.STAGES["evaluate"].params))
        metrics = score(free_run, teacher_forced, arrays, params.evaluate.batch_size)
        write_json(metrics, paths.METRICS)
        write_table(predictions(free_run, arrays, params), paths.PREDICTIONS)
        flat = {f"{split}.{key}": value for split, values in metrics.items()
                for key, value in values.items()}
        mlflow.log_metrics(flat)
        registry.tag_version(record.registered_model, record.model_version, flat)
    for split in SPLITS:
        log.info("%s", summary(split, metrics[split]))
    warn_if_beaten(metrics["validation"])


def summary(split: str, metrics: dict[str, float]) -> str:
    """Return one split's metrics as a line: the model's MSE and its skill."""
    skills = ", ".join(f"{metrics[f'skill_vs_{name}']:.3g} vs {name.replace('_', ' ')} "
                       f"(MSE {metrics[f'baseline_{name}_mse']:.3g})"
                       for name in BASELINES if f"skill_vs_{name}" in metrics)
    return (f"{split}: free-running MSE {metrics['free_run_mse']:.3g}, skill {skills or 'n/a'}; "
            f"teacher-forced MSE {metrics['teacher_forced_mse']:.3g}")


def warn_if_beaten(validation: dict[str, float]) -> None:
    """Say in one line when a naive baseline beats the model on validation: naming the
    best of them and the model's skill against it (below 0)."""
    beaten = {name: validation[f"skill_vs_{name}"] for name in BASELINES
              if validation.get(f"skill_vs_{name}", 0.0) < 0}
    if beaten:
        name = min(beaten, key=beaten.__getitem__)
        log.warning("on validation the %s forecast beats the model: skill %.3g vs %s "
                    "(free-running MSE %.3g vs %.3g)%s; see README, \"Is the model any "
                    "good?\"", NAIVE_NAMES[name], beaten[name], name,
                    validation["free_run_mse"], validation[f"baseline_{name}_mse"],
                    f", and it loses to {', '.join(sorted(set(beaten) - {name}))} too"
                    if len(beaten) > 1 else "")


if __name__ == "__main__":
    run_stage(main)
