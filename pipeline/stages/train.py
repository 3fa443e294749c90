"""Stage `train`: fit the seed's Seq2Seq model with Keras' `fit` and open its MLflow run.

Writes the training model, the predictor (the same weights, decoding free-running), the
per-epoch history (a DVC plot) and run.json, the MLflow run that `evaluate` and `plot`
add to. The run holds the params, provenance tags, its three datasets (pipeline.logged),
`loss` and `val_loss` per epoch (logged live by MLflow's Keras callback; epoch lines go to
the stage's log), the machine's CPU and memory over time (MLflow's system metrics), and both
models, logged with signatures and input examples: `model` takes [encoder_in, decoder_in]
(teacher forcing), `predictor` maps input windows (batch, steps, k) to their
free-running predictions (batch, steps, 1) and is registered as a new model version. Both
take and return the user's units (scaling, if on, is inside them).
"""

from pipeline.backend import keras

import logging

import numpy as np
import pandas as pd
from mlflow.keras import MlflowCallback

from pipeline import logged, paths, tracking
from pipeline.cli import run_stage
from pipeline.data import (
    ARRAY_NAMES,
    SPLITS,
    input_count,
    scaling_statistics,
    split_stretch,
    split_window_count,
    split_windows,
)
from pipeline.io import atomic_path, read_arrays, write_json, write_table
from pipeline.model import (
    DECODER_IN,
    ENCODER_IN,
    build_predictor,
    build_training_model,
)
from pipeline.params import Params, load_params
from pipeline.progress import EpochProgress
from pipeline.training import distribution, fit, steps_per_execution

log = logging.getLogger(__name__)

# The series file each split's windows are cut from: the source of its MLflow dataset.
SERIES_OF = {"train": paths.TRAIN_SERIES, "validation": paths.TRAIN_SERIES,
             "test": paths.TEST_SERIES}


def history_table(history: keras.callbacks.History) -> pd.DataFrame:
    """Return Keras' History as the table DVC plots: epoch, loss, val_loss."""
    return pd.DataFrame({"epoch": history.epoch, "loss": history.history["loss"],
                         "val_loss": history.history["val_loss"]})


def train_model(params: Params, arrays: dict[str, np.ndarray],
                callbacks: list[keras.callbacks.Callback]) -> tuple[keras.Model, pd.DataFrame]:
    """Build a seeded model and fit it; return it and its history."""
    keras.utils.set_random_seed(params.train.seed)
    train, validation = split_stretch(arrays, "train"), split_stretch(arrays, "validation")
    strategy = distribution(params.train.devices)
    # Keras' multi-step loop fails under MirroredStrategy (TensorFlow 2.21: "You must feed
    # a value for placeholder tensor"): one batch per call there.
    batches_per_call = 1 if strategy.num_replicas_in_sync > 1 else steps_per_execution(
        split_window_count(arrays, "train"), params.train.batch_size)
    with strategy.scope():  # the model's variables on every device used
        model = build_training_model(
            params.window.steps, params.model.units, params.train.learning_rate,
            params.model.cell, inputs=input_count(arrays), steps_per_execution=batches_per_call,
            scaling=scaling_statistics(arrays) if params.scales() else None)
    return model, history_table(fit(model, train, validation, params.train, callbacks))


def save(model: keras.Model, predictor: keras.Model, history: pd.DataFrame) -> None:
    """Write both models and the history, each atomically."""
    for network, path in ((model, paths.MODEL), (predictor, paths.PREDICTOR)):
        with atomic_path(path) as tmp:
            network.save(tmp)
    write_table(history, paths.HISTORY)


def log_models(model: keras.Model, predictor: keras.Model, arrays: dict[str, np.ndarray],
               registered_model: str) -> dict[str, str]:
    """Log both models, two validation windows as their examples, and register the
    predictor; return their URIs and its version, as run.json records them."""
    examples = split_windows(arrays, "validation", slice(0, 2))
    encoder_in, decoder_in = examples["encoder_in"], examples["decoder_in"]
    trained = logged.log_keras_model(model, "model",
                                     {ENCODER_IN: encoder_in, DECODER_IN: decoder_in})
    served = logged.log_keras_model(predictor, "predictor", encoder_in, registered_model)
    return {"model_uri": trained.model_uri, "predictor_uri": served.model_uri,
            "registered_model": registered_model,
            "model_version": str(served.registered_model_version)}


def main() -> None:
    """Train, save the models and history, and record everything in a new MLflow run."""
    params = load_params()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    keras.config.disable_interactive_logging()  # no progress bars in DVC's log...
    logging.getLogger("absl").setLevel(logging.WARNING)  # ...nor from MLflow's predict()
    with tracking.training_run(params.tracking.experiment) as run:
        tracking.log_params(params.flat(paths.STAGES["train"].params))
        for name in SPLITS:
            logged.log_dataset(name, split_stretch(arrays, name), SERIES_OF[name])
        model, history = train_model(params, arrays,
                                     [MlflowCallback(), EpochProgress(params.train.epochs)])
        predictor = build_predictor(model)
        save(model, predictor, history)
        record = log_models(model, predictor, arrays, params.tracking.registered_model)
        write_json({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                    **record}, paths.RUN)
    last = history.iloc[-1]
    log.info("trained %d epochs: loss %.3g, val_loss %.3g", len(history), last["loss"],
             last["val_loss"])


if __name__ == "__main__":
    run_stage(main)
