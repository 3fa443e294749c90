"""The Keras side of the `train` stage: fit the model, and save what is logged of it.

Imports TensorFlow (about 5 s). pipeline.train imports this module only after it has
started the tracking agent, so the agent's start-up runs while TensorFlow loads.
"""

import logging
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.files import atomic_path, write_arrays
from pipeline.inference import export_weights
from pipeline.model import DECODER_IN, ENCODER_IN, build_free_running_model, build_training_model
from pipeline.params import Params
from pipeline.training import Split, train_epochs, use_one_thread
from pipeline.window import split_windows

log = logging.getLogger(__name__)


def split(arrays: dict[str, np.ndarray], name: str) -> Split:
    """Return one split's (encoder_in, decoder_in, target) arrays."""
    windows = split_windows(arrays, name)
    return windows["encoder_in"], windows["decoder_in"], windows["target"]


def fit(arrays: dict[str, np.ndarray], params: Params) -> tuple[keras.Model, pd.DataFrame]:
    """Train a fresh, seeded model; return it and its per-epoch history."""
    use_one_thread()
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


def save_model(model: keras.Model, cell: str) -> None:
    """Write the model (model.keras) and its weights as plain arrays (for evaluate)."""
    with atomic_path(paths.MODEL) as tmp:
        model.save(tmp)
    write_arrays(export_weights(model, cell), paths.WEIGHTS)


def save_predictor(model: keras.Model, path: Path) -> keras.Model:
    """Save and return what users serve: input window -> free-running prediction.

    Pure Keras, so mlflow.pyfunc loads and runs it without this project's code.
    """
    predictor = build_free_running_model(model)
    predictor.save(path)
    return predictor


def describe_model(model: keras.Model) -> dict[str, object]:
    """Return what MLflow records of a saved model besides the file, as plain values.

    For the tracking agent, which logs the model without importing Keras
    (pipeline.logged_model): the signature, inputs and outputs as [name, dtype, shape]
    with batch dimension -1, and the Keras version and backend the model was saved with.
    A single input goes unnamed, as MLflow expects of a model called with one array.
    """
    def describe(tensors: list, named: bool) -> list[list[object]]:
        return [[tensor.name if named else "", str(tensor.dtype), [-1, *tensor.shape[1:]]]
                for tensor in tensors]

    return {"signature": {"inputs": describe(model.inputs, len(model.inputs) > 1),
                          "outputs": describe(model.outputs, False)},
            "saved_with": {"keras_version": keras.__version__,
                           "keras_backend": keras.backend.backend()}}


def examples(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return input examples (two validation windows) for the model and the predictor."""
    encoder_in, decoder_in, _ = split(arrays, "validation")
    return {ENCODER_IN: encoder_in[:2], DECODER_IN: decoder_in[:2]}, encoder_in[:2]
