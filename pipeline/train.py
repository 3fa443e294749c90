"""Stage `train`: fit the seed's Seq2Seq model and open its MLflow run.

Writes the model, its weights as plain arrays (for evaluate), the per-epoch history (a DVC
plot) and run.json, the id of the MLflow run that `evaluate` and `plot` add to. The run
holds the params, the provenance tags, the loss curves (one step per epoch), and two
logged models with signatures and input examples: `model`, the teacher-forced training
model, and `predictor`, which maps an input window (batch, steps, 1) to its free-running
predicted window (batch, steps, 1).
"""

import logging

import keras
import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.files import atomic_path, read_arrays, write_arrays, write_json, write_table
from pipeline.inference import export_weights
from pipeline.logged_model import log_keras_model
from pipeline.model import (
    DECODER_IN,
    ENCODER_IN,
    build_free_running_model,
    build_training_model,
)
from pipeline.params import Params, load_params
from pipeline.training import Split, train_epochs
from pipeline.window import ARRAY_NAMES, split_windows

log = logging.getLogger(__name__)


def split(arrays: dict[str, np.ndarray], name: str) -> Split:
    """Return one split's (encoder_in, decoder_in, target) arrays."""
    windows = split_windows(arrays, name)
    return windows["encoder_in"], windows["decoder_in"], windows["target"]


def fit(arrays: dict[str, np.ndarray], params: Params) -> tuple[keras.Model, pd.DataFrame]:
    """Train a fresh, seeded model; return it and its per-epoch history."""
    keras.utils.set_random_seed(params.train.seed)
    model = build_training_model(params.window.steps, params.model.units,
                                 params.train.learning_rate, params.model.cell)
    epochs = params.train.epochs

    def log_epoch(epoch: int, loss: float, validation_loss: float) -> None:
        log.info("epoch %d/%d loss %.6f val_loss %.6f", epoch + 1, epochs, loss,
                 validation_loss)

    history = train_epochs(model, split(arrays, "train"), split(arrays, "validation"),
                           params.train, log_epoch)
    return model, history


def log_history(run_id: str, history: pd.DataFrame) -> None:
    """Log loss and val_loss with the epoch as the step."""
    tracking.log_metric_series(run_id, (
        (key, row[key], int(row["epoch"]))
        for row in history.to_dict("records") for key in ("loss", "val_loss")
    ))


def main() -> None:
    """Train, save the model and history, and record everything in a new MLflow run."""
    params = load_params()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    with tracking.new_run(params.tracking.experiment) as run:
        run_id = run.info.run_id
        tracking.log_params(run_id, params.flat(paths.STAGES["train"].params))
        model, history = fit(arrays, params)
        with atomic_path(paths.MODEL) as tmp:
            model.save(tmp)
        write_arrays(export_weights(model, params.model.cell), paths.WEIGHTS)
        write_table(history, paths.HISTORY)
        log_history(run_id, history)
        encoder_in, decoder_in, _ = split(arrays, "validation")
        example = {ENCODER_IN: encoder_in[:2], DECODER_IN: decoder_in[:2]}
        model_uri = log_keras_model(model, "model", example)
        # What users serve: input window -> free-running prediction, pure Keras, so
        # mlflow.pyfunc loads and runs it without this project's code.
        predictor_uri = log_keras_model(build_free_running_model(model), "predictor",
                                        encoder_in[:2])
        write_json({"run_id": run_id, "experiment_id": run.info.experiment_id,
                    "model_uri": model_uri, "predictor_uri": predictor_uri}, paths.RUN)
    last = history.iloc[-1]
    log.info("trained %d epochs: loss %.3g, val_loss %.3g", len(history), last["loss"],
             last["val_loss"])


if __name__ == "__main__":
    run_stage(main)
