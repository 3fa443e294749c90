"""The seed's three figures, drawn with matplotlib's object API (no GUI backend).

1. the input and target series; 2. loss and val_loss per epoch; 3. free-running
predictions from the `plot.start_points` windows against the true target. The `plot`
stage imports this module (matplotlib, about 0.4 s) only after it has started
the tracking agent. Tables are NumPy columns (pipeline.tables), so it needs no pandas.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline import paths
from pipeline.errors import InputError
from pipeline.files import atomic_path
from pipeline.tables import Table, read_table

PREDICTION_COLUMNS = ("window", "step", "x", "target", "prediction")


def series_figure(series: Table) -> Figure:
    """Draw the input and target signals over x."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    axes.plot(series["x"], series["input"], label="input")
    axes.plot(series["x"], series["target"], label="target")
    axes.set(title="Training series", xlabel="x")
    axes.grid()
    axes.legend()
    return figure


def loss_figure(history: Table) -> Figure:
    """Draw training and validation loss per epoch, log-scaled."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    axes.plot(history["epoch"], history["loss"], label="loss")
    axes.plot(history["epoch"], history["val_loss"], label="val_loss")
    axes.set(title="Loss (MSE)", xlabel="epoch", yscale="log")
    axes.grid()
    axes.legend()
    return figure


def _rows(table: Table, selected: np.ndarray) -> Table:
    """Return the rows of `table` where `selected` is True."""
    return {column: values[selected] for column, values in table.items()}


def predictions_figure(series: Table, predictions: Table,
                       start_points: tuple[int, ...]) -> Figure:
    """Draw the free-running prediction of each start window against the true target."""
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    for index, start in enumerate(start_points):
        window = _rows(predictions, predictions["window"] == start)
        order = np.argsort(window["step"])
        axes.plot(window["x"][order], window["prediction"][order], color="red",
                  label="free-running prediction" if index == 0 else None)
    axes.plot(series["x"], series["target"], color="blue", linestyle="dashed", label="target")
    axes.set(title=f"Predictions from windows {', '.join(map(str, start_points))}",
             xlabel="x")
    axes.grid()
    axes.legend()
    return figure


def start_windows(predictions: Table, start_points: tuple[int, ...]) -> Table:
    """Return the training-series predictions of the start windows, or fail naming one."""
    training = _rows(predictions, np.isin(predictions["split"], ["train", "validation"]))
    absent = sorted(set(start_points) - set(training["window"].astype(int)))
    if absent:
        raise InputError(f"{paths.PREDICTIONS}: no prediction for training window(s) {absent}")
    return training


def save_figure(figure: Figure, path: Path, dpi: int) -> None:
    """Write `figure` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")


Inputs = tuple[Table, Table, Table]  # series, history, predictions


def read_inputs() -> Inputs:
    """Read the training series, the loss history and the predictions."""
    return (read_table(paths.TRAIN_SERIES, ("x", "input", "target")),
            read_table(paths.HISTORY, ("epoch", "loss", "val_loss")),
            read_table(paths.PREDICTIONS, PREDICTION_COLUMNS, text=("split",)))


def draw(inputs: Inputs, start_points: tuple[int, ...]) -> dict[Path, Figure]:
    """Return the three figures by the path each is written to."""
    series, history, predictions = inputs
    return {
        paths.SERIES_PLOT: series_figure(series),
        paths.LOSS_PLOT: loss_figure(history),
        paths.PREDICTIONS_PLOT: predictions_figure(
            series, start_windows(predictions, start_points), start_points),
    }
