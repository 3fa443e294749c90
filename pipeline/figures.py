"""The seed's three figures (series, loss, free-running predictions) with matplotlib's
object API; `train` also logs the third as it learns.
"""

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.data import input_columns

# Beyond this many points a signal is drawn as its envelope: the figure stays fast to draw
# and to read at any series length.
MAX_DRAWN_POINTS = 4000
PREDICTION_LINE = "free-running prediction"  # the gid of each predicted window's line


def new_axes(title: str, xlabel: str, size: tuple[float, float] = (8, 4)) -> tuple[Figure, object]:
    """Return a figure (8×4 inches by default) and its one gridded axes."""
    figure = Figure(figsize=size)
    axes = figure.subplots()
    axes.set(title=title, xlabel=xlabel)
    axes.grid()
    return figure, axes


def draw_signal(axes: object, x: pd.Series, values: pd.Series, label: str,
                **style: str) -> None:
    """Draw a signal as a line; past MAX_DRAWN_POINTS as its min–max band per bin (bounded
    for any length)."""
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
                       start_points: tuple[int, ...], title: str | None = None,
                       size: tuple[float, float] = (8, 4)) -> Figure:
    """Draw each start window's free-running prediction (`predictions`) against `series`' target."""
    figure, axes = new_axes(
        title or f"Predictions from windows {', '.join(map(str, start_points))}", "x", size)
    drawn = predictions[predictions["window"].isin(start_points)]
    for index, start in enumerate(start_points):
        window = drawn[drawn["window"] == start].sort_values("step")
        axes.plot(window["x"], window["prediction"], color="red", gid=PREDICTION_LINE,
                  label="free-running prediction" if index == 0 else None)
    # The target where the drawn windows lie (all of the seed's short series).
    shown = series[series["x"].between(drawn["x"].min(), drawn["x"].max())
                   ] if len(series) > MAX_DRAWN_POINTS else series
    draw_signal(axes, shown["x"], shown["target"], "target", color="blue", linestyle="dashed")
    axes.legend()
    return figure


def new_predictions(figure: Figure, predicted: np.ndarray, title: str) -> None:
    """Give a `predictions_figure` new predictions (windows, steps) and title; the rest stays."""
    axes = figure.axes[0]
    lines = [line for line in axes.get_lines() if line.get_gid() == PREDICTION_LINE]
    for line, values in zip(lines, predicted, strict=True):
        line.set_ydata(values)
    axes.relim()
    axes.autoscale_view()
    axes.set_title(title)


def pixels(figure: Figure, dpi: float, layout: bool = True) -> np.ndarray:
    """Return the figure as an RGB uint8 array; `layout` fits its margins first."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(
        figure)
    figure.set_dpi(dpi)
    if layout:
        figure.tight_layout()  # what savefig's bbox_inches="tight" does for the PNG files
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
