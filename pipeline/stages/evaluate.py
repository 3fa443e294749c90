"""Stage `evaluate`: score the saved predictor (the artifact served) free-running and the
training model teacher-forced on every window, streamed, beside the naive baselines; keep
a bounded sample in predictions.csv.
"""

from pipeline.backend import keras, tf

import logging
from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.files import write_json, write_table
from pipeline.metrics import BASELINES, NAIVE_NAMES, SplitScores
from pipeline.model import compiled_call, load_model
from pipeline.params import Params, load_params
from pipeline.progress import WorkProgress
from pipeline.tracking import registry, run_data, runs
from pipeline.tracking.run_record import RunRecord
from pipeline.training import window_dataset
from pipeline.windows import TRAINING_SPLITS, Split, Windows, prediction_table, spread

log = logging.getLogger(__name__)

Call = Callable[..., tf.Tensor]  # a model's compiled inference


def score(free_run: Call, teacher_forced: Call, windows: Windows,
          batch_size: int) -> dict[str, dict[str, float]]:
    """Return every split's scores, streaming its windows through both compiled models."""
    target_mean = float(windows.scaling_statistics()["target_mean"][0])
    total = sum(split.count for split in windows.splits())
    log.info("decoding %d windows (%s) in batches of %d", total,
             ", ".join(f"{split.name} {split.count}" for split in windows.splits()), batch_size)
    progress, metrics = WorkProgress(total, "decoded windows"), {}
    for split in windows.splits():
        scores = SplitScores(target_mean)
        for (encoder_in, decoder_in), target in window_dataset(split.stretch, windows.steps,
                                                               batch_size):
            scores.add(encoder_in.numpy(), target.numpy(), free_run(encoder_in).numpy(),
                       teacher_forced(encoder_in, decoder_in).numpy())
            progress.advance(len(target))
        metrics[split.name] = scores.metrics()
    return metrics


def table_windows(split: Split, sample: int, start_points: tuple[int, ...]) -> np.ndarray:
    """Return the indices in `split` of the windows predictions.csv shows: `sample` spread,
    and the training series' `start_points`."""
    starts = split.local(list(start_points)) if split.name in TRAINING_SPLITS else []
    return np.union1d(spread(split.count, sample), starts).astype(int)


def predictions(free_run: Call, windows: Windows, params: Params) -> pd.DataFrame:
    """Return the free-running predictions of the windows `table_windows` picks."""
    tables = []
    for split in windows.splits():
        chosen = split.windows(table_windows(split, params.evaluate.sample_windows,
                                             params.plot.start_points))
        predicted = keras.ops.convert_to_numpy(free_run(chosen["encoder_in"]))
        tables.append(prediction_table(split.name, chosen, predicted))
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    """Evaluate the saved models; write metrics.json and predictions.csv."""
    params = load_params()
    record = RunRecord.read()
    windows = Windows.read(paths.WINDOWS)
    # Each model traced once, for every batch size: the predictor serves both the
    # metrics and the table.
    free_run = compiled_call(load_model(paths.PREDICTOR))
    teacher_forced = compiled_call(load_model(paths.MODEL))
    with runs.opened(runs.choose("evaluate", params.tracking.experiment), params.flat()):
        run_data.log_params(params.flat(paths.STAGES["evaluate"].params))
        metrics = score(free_run, teacher_forced, windows, params.evaluate.batch_size)
        write_json(metrics, paths.METRICS)
        write_table(predictions(free_run, windows, params), paths.PREDICTIONS)
        flat = {f"{split}.{key}": value for split, values in metrics.items()
                for key, value in values.items()}
        mlflow.log_metrics(flat)
        registry.tag_version(record.registered_model, record.model_version, flat)
    for split, values in metrics.items():
        log.info("%s", summary(split, values))
    warn_if_beaten(metrics["validation"])


def summary(split: str, metrics: dict[str, float]) -> str:
    """Return one split's metrics as a line: the model's MSE and its skill."""
    skills = ", ".join(f"{metrics[f'skill_vs_{name}']:.3g} vs {name.replace('_', ' ')} "
                       f"(MSE {metrics[f'baseline_{name}_mse']:.3g})"
                       for name in BASELINES if f"skill_vs_{name}" in metrics)
    return (f"{split}: free-running MSE {metrics['free_run_mse']:.3g}, skill {skills or 'n/a'}; "
            f"teacher-forced MSE {metrics['teacher_forced_mse']:.3g}")


def warn_if_beaten(validation: dict[str, float]) -> None:
    """Warn in one line when a naive forecast beats the model on validation, naming the best one."""
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
