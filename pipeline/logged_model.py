"""Logging a saved Keras model to an MLflow run, ready to load with mlflow.keras or pyfunc.

mlflow.keras imports Keras, hence TensorFlow, as it saves: the tracking agent loads this
module only when a stage is about to log models.
"""

import shutil
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.keras
import numpy as np
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from pipeline.errors import InputError


class _KerasFlavor:
    """`mlflow.keras` that makes the model directory before writing the input example.

    mlflow.keras.save_model writes input_example.json before it creates the directory
    (mlflow issue 16183, still in 3.17), so log_model with an input example fails.
    """

    @staticmethod
    def save_model(path: str, **kwargs: Any) -> None:
        """Create `path`, then save as mlflow.keras does."""
        Path(path).mkdir(parents=True, exist_ok=True)
        kwargs.pop("validate_serving_input", None)  # Model.log's option, not the flavor's
        mlflow.keras.save_model(path=path, **kwargs)


class _SavedFile:
    """A Keras model already saved to a .keras file, which MLflow copies instead of re-saving.

    mlflow.keras.save_model uses the model only to call `model.save(path)`; the stage has
    saved it once already, so loading it here to save it again would only cost time.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise InputError(f"{path}: missing; nothing to log as a model")
        self.path = path

    def save(self, path: str, **_: Any) -> None:
        """Copy the saved model to `path`."""
        shutil.copyfile(self.path, path)


def _signature(description: Mapping[str, Any]) -> ModelSignature:
    """Build the signature from pipeline.fitting.describe_signature's plain description."""
    def schema(tensors: list[list[Any]]) -> Schema:
        return Schema([TensorSpec(np.dtype(dtype), tuple(shape), tensor_name or None)
                       for tensor_name, dtype, shape in tensors])

    return ModelSignature(inputs=schema(description["inputs"]),
                          outputs=schema(description["outputs"]))


def log_saved_model(run_id: str, path: str, name: str, example: dict[str, np.ndarray],
                    signature: Mapping[str, Any]) -> str:
    """Log the Keras model saved at `path` to run `run_id`; return its model URI.

    `example` holds one array per input (just the array when there is one). Pip
    requirements are given, so MLflow does not infer them in a subprocess that loads the
    model; and it does not reload the model to check the example (about 0.5 s): the
    tests load both models through pyfunc and predict instead.
    """
    requirements = [f"{package}=={version(package)}" for package in ("tensorflow", "keras")]
    info = Model.log(artifact_path=None, name=name, flavor=_KerasFlavor, run_id=run_id,
                     flavor_name="mlflow.keras", model=_SavedFile(Path(path)),
                     signature=_signature(signature),
                     input_example=example if len(example) > 1 else example.popitem()[1],
                     pip_requirements=requirements, validate_serving_input=False)
    return info.model_uri
