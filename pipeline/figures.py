"""The seed's three figures, drawn with matplotlib's object API (no GUI backend).

1. the input and target series; 2. loss and val_loss per epoch; 3. free-running
predictions from the `plot.start_points` windows against the true target. The `plot`
stage imports this module (matplotlib and pandas, about 0.7 s) only after it has started
the tracking agent.
"""

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from pipeline import paths
from pipeline.errors import InputError
from pipeline.files import atomic_path
from pipeline.tables import read_table

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


Inputs = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]  # series, history, predictions


def read_inputs() -> Inputs:
    """Read the training series, the loss history and the predictions."""
    return (read_table(paths.TRAIN_SERIES, ("x", "input", "target")),
            read_table(paths.HISTORY, ("epoch", "loss", "val_loss")),
            read_table(paths.PREDICTIONS, PREDICTION_COLUMNS))


def draw(inputs: Inputs, start_points: tuple[int, ...]) -> dict[Path, Figure]:
    """Return the three figures by the path each is written to."""
    series, history, predictions = inputs
    return {
        paths.SERIES_PLOT: series_figure(series),
        paths.LOSS_PLOT: loss_figure(history),
        paths.PREDICTIONS_PLOT: predictions_figure(
            series, start_windows(predictions, start_points), start_points),
    }
