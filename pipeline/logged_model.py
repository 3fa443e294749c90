"""Logging a Keras model to the active MLflow run, ready to load with mlflow.keras or pyfunc.

Imports mlflow.keras, hence TensorFlow: only the stages that train or load models use it.
"""

from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.keras
import numpy as np
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import Schema, TensorSpec


class _KerasFlavor:
    """`mlflow.keras` that makes the model directory before writing the input example.

    mlflow.keras.save_model writes input_example.json before it creates the directory
    (mlflow issue 16183, still in 3.17), so log_model with an input example fails.
    """

    @staticmethod
    def save_model(path: str, **kwargs: Any) -> None:
        """Create `path`, then save as mlflow.keras does."""
        Path(path).mkdir(parents=True, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)


def log_keras_model(model: Any, name: str, example: Mapping[str, Any] | Any) -> str:
    """Log a Keras model with a signature (batch dimension -1) and an input example.

    Returns the model URI. Pip requirements are given, so MLflow does not infer them in a
    subprocess that loads the model again.
    """
    def spec(tensor: Any, tensor_name: str | None = None) -> TensorSpec:
        return TensorSpec(np.dtype(tensor.dtype), (-1, *tensor.shape[1:]), tensor_name)

    inputs = model.inputs
    signature = ModelSignature(
        inputs=Schema([spec(t, t.name) for t in inputs] if len(inputs) > 1 else [spec(inputs[0])]),
        outputs=Schema([spec(model.outputs[0])]),
    )
    requirements = [f"{package}=={version(package)}" for package in ("tensorflow", "keras")]
    info = Model.log(artifact_path=None, name=name, flavor=_KerasFlavor,
                     flavor_name="mlflow.keras", model=model, signature=signature,
                     input_example=example, pip_requirements=requirements)
    return info.model_uri
