"""The free-running prediction figure, logged by `train` at a few epochs with
`mlflow.log_image(key, step)`: the MLflow UI compares runs' images with a step slider.
"""

from pipeline.backend import keras, tf

from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.figures import new_predictions, pixels, predictions_figure
from pipeline.model import build_predictor, compiled_call
from pipeline.windows import Windows, prediction_table, spread

IMAGE_KEY = "predictions"
DRAWN_WINDOWS = 4  # spread over the training series, as the seed's plot.start_points are
IMAGE_SIZE, IMAGE_DPI = (6, 3), 80  # 480×240 pixels: enough to compare, cheap to log


def image_epochs(epochs: int, count: int) -> frozenset[int]:
    """Return `count` epochs (0-based) spread from the last back to the first."""
    if count == 0:
        return frozenset()
    spread = np.linspace(epochs - 1, 0, min(count, epochs)).round().astype(int)
    return frozenset(spread.tolist())


def drawn_windows(windows: Windows) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Return DRAWN_WINDOWS windows spread over the training series, and that series (x, target)."""
    starts = spread(windows.train.count + windows.validation.count, DRAWN_WINDOWS)
    parts = [split.windows(split.local(starts)) for split in (windows.train, windows.validation)]
    return ({name: np.concatenate([part[name] for part in parts]) for name in parts[0]},
            windows.training_series())


class PredictionImages(keras.callbacks.Callback):
    """Log the prediction figure at the planned epochs (not those in `logged`), and the
    final model's if early stopping ends training first."""

    def __init__(self, windows: Windows, epochs: int, count: int,
                 logged: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.windows, self.series = drawn_windows(windows)
        self.planned = image_epochs(epochs, count)
        self.logged = set(logged)
        self.last_epoch = -1
        self.predictor: keras.Model | None = None
        self.free_run: Callable[..., tf.Tensor] | None = None
        self.figure: Figure | None = None  # drawn once; later epochs change its predictions

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        """Build the predictor on the model's live layers and its compiled call."""
        if self.planned:  # the model `fit` trains may be the predictor already
            self.predictor = (self.model if len(self.model.inputs) == 1
                              else build_predictor(self.model))
            self.free_run = compiled_call(self.predictor)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Log the figure if this epoch is one of those planned."""
        self.last_epoch = epoch
        if epoch in self.planned and epoch not in self.logged:
            self.log_figure(epoch, f"epoch {epoch}")

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        """Log the final model's figure if training stopped before its last planned epoch."""
        if self.planned and 0 <= self.last_epoch < max(self.planned):
            self.log_figure(self.last_epoch + 1, "final model (best val_loss weights)")

    def log_figure(self, epoch: int, when: str) -> None:
        """Draw the windows' predictions now and log the figure at step `epoch`."""
        predicted = self.free_run(self.windows["encoder_in"]).numpy()
        title, first = f"Free-running predictions, {when}", self.figure is None
        if first:
            table = prediction_table("training series", self.windows, predicted)
            self.figure = predictions_figure(self.series, table,
                                             tuple(self.windows["start"].tolist()), title,
                                             IMAGE_SIZE)
        else:  # same windows, same target: about half the cost of a new figure
            new_predictions(self.figure, predicted[..., 0], title)
        # Synchronous: a direct write takes milliseconds, and the image is stored before
        # training goes on (nothing left in MLflow's artifact queue when a run is killed).
        mlflow.log_image(pixels(self.figure, IMAGE_DPI, layout=first), key=IMAGE_KEY,
                         step=epoch, synchronous=True)
        self.logged.add(epoch)
