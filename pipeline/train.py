"""Stage `train`: fit the seed's Seq2Seq model and open its MLflow run.

Writes the model, the per-epoch history (a DVC plot) and run.json, the id of the MLflow
run that `evaluate` and `plot` add to. The run holds the params, the provenance tags, the
loss curves (one step per epoch) and the model with a signature and an input example.
"""

import logging

import keras
import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.files import atomic_path, read_arrays, write_json, write_table
from pipeline.logged_model import log_keras_model
from pipeline.model import build_training_model, model_inputs
from pipeline.params import Params, load_params

log = logging.getLogger(__name__)

WINDOW_ARRAYS = [f"{split}.{field}" for split in ("train", "validation")
                 for field in ("encoder_in", "decoder_in", "target")]
HISTORY_COLUMNS = ["epoch", "loss", "val_loss"]


class EpochLog(keras.callbacks.Callback):
    """Log one line per epoch, so a long run shows progress in `dvc repro`'s output."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Log the epoch's losses."""
        logs = logs or {}
        log.info("epoch %d/%d loss %.6f val_loss %.6f", epoch + 1, self.epochs,
                 logs.get("loss", float("nan")), logs.get("val_loss", float("nan")))


def fit(arrays: dict[str, np.ndarray], params: Params) -> tuple[keras.Model, pd.DataFrame]:
    """Train a fresh, seeded model; return it and its per-epoch history."""
    keras.utils.set_random_seed(params.train.seed)
    model = build_training_model(params.window.steps, params.model.units,
                                 params.train.learning_rate)
    history = model.fit(
        model_inputs(arrays, "train"), arrays["train.target"],
        validation_data=(model_inputs(arrays, "validation"), arrays["validation.target"]),
        batch_size=params.train.batch_size, epochs=params.train.epochs,
        verbose=0, callbacks=[EpochLog(params.train.epochs)],
    )
    table = pd.DataFrame({"epoch": history.epoch, "loss": history.history["loss"],
                          "val_loss": history.history["val_loss"]})
    return model, table[HISTORY_COLUMNS]


def log_history(run_id: str, history: pd.DataFrame) -> None:
    """Log loss and val_loss with the epoch as the step."""
    tracking.log_metric_series(run_id, (
        (key, row[key], int(row["epoch"]))
        for row in history.to_dict("records") for key in ("loss", "val_loss")
    ))


def main() -> None:
    """Train, save the model and history, and record everything in a new MLflow run."""
    params = load_params()
    arrays = read_arrays(paths.WINDOWS, WINDOW_ARRAYS)
    with tracking.new_run(params.tracking.experiment) as run:
        run_id = run.info.run_id
        tracking.log_params(run_id, params.flat(paths.STAGES["train"].params))
        model, history = fit(arrays, params)
        with atomic_path(paths.MODEL) as tmp:
            model.save(tmp)
        write_table(history, paths.HISTORY)
        log_history(run_id, history)
        example = {name: array[:2] for name, array in model_inputs(arrays, "validation").items()}
        model_uri = log_keras_model(model, "model", example)
        write_json({"run_id": run_id, "experiment_id": run.info.experiment_id,
                    "model_uri": model_uri}, paths.RUN)
    last = history.iloc[-1]
    log.info("trained %d epochs: loss %.3g, val_loss %.3g", len(history), last["loss"],
             last["val_loss"])


if __name__ == "__main__":
    run_stage(main)
