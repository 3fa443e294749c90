"""Stage `plot`: the seed's three figures, as PNG files logged to the run.

1. the input and target series; 2. loss and val_loss per epoch; 3. free-running
predictions from the `plot.start_points` windows against the true target. Uses
matplotlib's object API with no GUI backend; imports no TensorFlow.
"""

import logging
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.errors import InputError
from pipeline.files import atomic_path, read_table
from pipeline.params import load_params

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("window", "step", "x", "target", "prediction")


def series_figure(series: pd.DataFrame) -> Figure:
    """Draw the input and target signals over x."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    axes.plot(series["x"], series["input"], label="input")
    axes.plot(series["x"], series["target"], label="target")
    axes.set(title="Training series", xlabel="x")
    axes.grid()
    axes.legend()
    return figure


def loss_figure(history: pd.DataFrame) -> Figure:
    """Draw training and validation loss per epoch, log-scaled."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    axes.plot(history["epoch"], history["loss"], label="loss")
    axes.plot(history["epoch"], history["val_loss"], label="val_loss")
    axes.set(title="Loss (MSE)", xlabel="epoch", yscale="log")
    axes.grid()
    axes.legend()
    return figure


def predictions_figure(series: pd.DataFrame, predictions: pd.DataFrame,
                       start_points: tuple[int, ...]) -> Figure:
    """Draw the free-running prediction of each start window against the true target."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    for index, start in enumerate(start_points):
        window = predictions[predictions["window"] == start].sort_values("step")
        axes.plot(window["x"], window["prediction"], color="red",
                  label="free-running prediction" if index == 0 else None)
    axes.plot(series["x"], series["target"], color="blue", linestyle="dashed", label="target")
    axes.set(title=f"Predictions from windows {', '.join(map(str, start_points))}",
             xlabel="x")
    axes.grid()
    axes.legend()
    return figure


def start_windows(predictions: pd.DataFrame, start_points: tuple[int, ...]) -> pd.DataFrame:
    """Return the training-series predictions of the start windows, or fail naming one."""
    training = predictions[predictions["split"].isin(["train", "validation"])]
    absent = sorted(set(start_points) - set(training["window"]))
    if absent:
        raise InputError(f"{paths.PREDICTIONS}: no prediction for training window(s) {absent}")
    return training


def save_figure(figure: Figure, path: Path, dpi: int) -> None:
    """Write `figure` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")


def main() -> None:
    """Draw the figures into data/plots/ and log them to the run."""
    params = load_params()
    run_id = tracking.recorded_run_id()
    series = read_table(paths.TRAIN_SERIES, ("x", "input", "target"))
    history = read_table(paths.HISTORY, ("epoch", "loss", "val_loss"))
    predictions = read_table(paths.PREDICTIONS, PREDICTION_COLUMNS)
    figures = {
        paths.SERIES_PLOT: series_figure(series),
        paths.LOSS_PLOT: loss_figure(history),
        paths.PREDICTIONS_PLOT: predictions_figure(
            series, start_windows(predictions, params.plot.start_points),
            params.plot.start_points),
    }
    with tracking.resumed_run(run_id) as run:
        run.log_params(params.flat(paths.STAGES["plot"].params))
        for path, figure in figures.items():
            save_figure(figure, path, params.plot.dpi)
            run.log_file(path, "plots")
    log.info("wrote %s", ", ".join(map(str, figures)))


if __name__ == "__main__":
    run_stage(main)
