"""Stage `plot`: the seed's three figures as PNG files, logged to the run. No TensorFlow; a
tuning trial's figures go to DVC only, so it imports no MLflow either.
"""

import logging
import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.errors import InputError
from pipeline.figures import loss_figure, predictions_figure, series_figure
from pipeline.files import atomic_path, read_series, read_table
from pipeline.params import load_params
from pipeline.tracking import provenance

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "val_loss")
PREDICTION_COLUMNS = ("window", "step", "x", "target", "prediction")


def start_windows(predictions: pd.DataFrame, start_points: tuple[int, ...]) -> pd.DataFrame:
    """Return the training-series predictions of the start windows, or fail naming one."""
    training = predictions[predictions["split"].isin(["train", "validation"])]
    absent = sorted(set(start_points) - set(training["window"]))
    if absent:
        raise InputError(f"plot.start_points: {absent} are not training windows of "
                         f"{paths.PREDICTIONS} (0..{training['window'].max()})")
    return training


def draw(series: pd.DataFrame, history: pd.DataFrame, predictions: pd.DataFrame,
         start_points: tuple[int, ...]) -> dict[Path, Figure]:
    """Return the three figures by the path each is written to."""
    return {
        paths.SERIES_PLOT: series_figure(series),
        paths.LOSS_PLOT: loss_figure(history),
        paths.PREDICTIONS_PLOT: predictions_figure(
            series, start_windows(predictions, start_points), start_points),
    }


def save(drawn: dict[Path, Figure], dpi: int) -> None:
    """Write each figure to its path."""
    for path, figure in drawn.items():
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=dpi, bbox_inches="tight")


def main() -> None:
    """Draw the figures into data/plots/ and log them to the run."""
    params = load_params()
    drawn = draw(read_series(paths.TRAIN_SERIES),
                 read_table(paths.HISTORY, HISTORY_COLUMNS),
                 read_table(paths.PREDICTIONS, PREDICTION_COLUMNS), params.plot.start_points)
    if os.environ.get(provenance.STUDY_ENV):
        save(drawn, params.plot.dpi)
    else:
        import mlflow  # noqa: PLC0415 - slow to import, and a tuning trial does not need it

        from pipeline.tracking import run_data, runs  # noqa: PLC0415 - they import MLflow

        # The run first: a login that may not write stops the stage before any figure.
        with runs.opened(runs.choose("plot", params.tracking.experiment), params.flat()):
            run_data.log_params(params.flat(paths.STAGES["plot"].params))
            save(drawn, params.plot.dpi)
            for path in drawn:
                mlflow.log_artifact(str(path), "plots")
    log.info("wrote %s", ", ".join(map(str, drawn)))


if __name__ == "__main__":
    run_stage(main)
