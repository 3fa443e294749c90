"""Stage `plot`: the seed's three figures, as PNG files logged to the run.

1. the input and target series; 2. loss and val_loss per epoch; 3. free-running
predictions from the `plot.start_points` windows against the true target. Drawn with
matplotlib's object API (no GUI backend). Imports no TensorFlow.
"""

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.data import input_columns
from pipeline.errors import InputError
from pipeline.files import atomic_path, read_series, read_table
from pipeline.params import load_params

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "val_loss")
# Beyond this many points a signal is drawn as its envelope: the figure stays fast to draw
# and to read at any series length.
MAX_DRAWN_POINTS = 4000
PREDICTION_COLUMNS = ("window", "step", "x", "target", "prediction")


def new_axes(title: str, xlabel: str) -> tuple[Figure, object]:
    """Return an 8×4 inch figure and its one gridded axes."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    axes.set(title=title, xlabel=xlabel)
    axes.grid()
    return figure, axes


def draw_signal(axes: object, x: pd.Series, values: pd.Series, label: str,
                **style: str) -> None:
    """Draw a signal as a line, or past MAX_DRAWN_POINTS as the band between its lowest
    and highest value in each of MAX_DRAWN_POINTS / 2 bins (a long series' envelope)."""
    if len(values) <= MAX_DRAWN_POINTS:
        axes.plot(x, values, label=label, **style)
        return
    starts = np.arange(MAX_DRAWN_POINTS // 2) * len(values) // (MAX_DRAWN_POINTS // 2)
    x, values = x.to_numpy(), values.to_numpy()
    centres = np.add.reduceat(x, starts) / np.diff(starts, append=len(x))
    axes.fill_between(centres, np.minimum.reduceat(values, starts),
                      np.maximum.reduceat(values, starts),
                      label=f"{label} (range per bin)", alpha=0.6)


def series_figure(series: pd.DataFrame) -> Figure:
    """Draw the input signal(s) and the target over x."""
    figure, axes = new_axes("Training series", "x")
    for column in (*input_columns(list(series.columns)), "target"):
        draw_signal(axes, series["x"], series[column], column)
    axes.legend()
    return figure


def loss_figure(history: pd.DataFrame) -> Figure:
    """Draw training and validation loss per epoch, log-scaled."""
    figure, axes = new_axes("Loss (MSE)", "epoch")
    axes.plot(history["epoch"], history["loss"], label="loss")
    axes.plot(history["epoch"], history["val_loss"], label="val_loss")
    axes.set_yscale("log")
    axes.legend()
    return figure


def predictions_figure(series: pd.DataFrame, predictions: pd.DataFrame,
                       start_points: tuple[int, ...]) -> Figure:
    """Draw the free-running prediction of each start window against the true target."""
    figure, axes = new_axes(f"Predictions from windows {', '.join(map(str, start_points))}",
                            "x")
    drawn = predictions[predictions["window"].isin(start_points)]
    for index, start in enumerate(start_points):
        window = drawn[drawn["window"] == start].sort_values("step")
        axes.plot(window["x"], window["prediction"], color="red",
                  label="free-running prediction" if index == 0 else None)
    # The target where the drawn windows lie (all of the seed's short series).
    shown = series[series["x"].between(drawn["x"].min(), drawn["x"].max())
                   ] if len(series) > MAX_DRAWN_POINTS else series
    draw_signal(axes, shown["x"], shown["target"], "target", color="blue", linestyle="dashed")
    axes.legend()
    return figure


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


def main() -> None:
    """Draw the figures into data/plots/ and log them to the run."""
    params = load_params()
    drawn = draw(read_series(paths.TRAIN_SERIES),
                 read_table(paths.HISTORY, HISTORY_COLUMNS),
                 read_table(paths.PREDICTIONS, PREDICTION_COLUMNS), params.plot.start_points)
    with tracking.results_run(params.flat()):
        tracking.log_params(params.flat(paths.STAGES["plot"].params))
        for path, figure in drawn.items():
            with atomic_path(path) as tmp:
                figure.savefig(tmp, dpi=params.plot.dpi, bbox_inches="tight")
            mlflow.log_artifact(str(path), "plots")
    log.info("wrote %s", ", ".join(map(str, drawn)))


if __name__ == "__main__":
    run_stage(main)
