"""What a training run records besides params and metrics: its data and its models.

Datasets: each split's stretch of series (the points its windows are cut from) as an
MLflow dataset input, its digest the hash DVC records for the series file it came from,
its source that file's path in the project.
Models: logged with MLflow's Keras flavor, a signature, an input example and explicit
pip requirements; the predictor also becomes a new version of the registered model.
"""

import warnings
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
from mlflow.models import Model, infer_signature
from mlflow.models.model import ModelInfo

from pipeline.io import dvc_md5

# The MLflow dataset context of each split, and the series file its windows are cut from.
DATASET_CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}


def log_dataset(split: str, stretch: tuple[np.ndarray, np.ndarray], source: Path) -> None:
    """Record one split's stretch of series, input (points, k) and target (points,), as a
    dataset input of the active run."""
    with warnings.catch_warnings():
        # A relative path matches two of MLflow's local-file sources, and they are alike.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        dataset = mlflow.data.from_numpy(stretch[0], source=str(source), targets=stretch[1],
                                         name=split, digest=dvc_md5(source))
    mlflow.log_input(dataset, context=DATASET_CONTEXTS[split])


def _save_model_into_new_folder(path: str, **options: Any) -> None:
    import mlflow.keras  # noqa: PLC0415 - imports TensorFlow; only train logs models

    Path(path).mkdir(parents=True, exist_ok=True)
    mlflow.keras.save_model(path=path, **options)


def log_keras_model(model: Any, name: str, example: Any,
                    registered_model: str | None = None) -> ModelInfo:
    """Log a Keras model to the active run with a signature and input example; return its
    ModelInfo. With `registered_model`, the model also becomes that model's next version.

    Pip requirements are explicit, so MLflow does not infer them by loading the model.
    """
    # A direct call, not predict(): two windows need no compiled predict function.
    signature = infer_signature(example, np.asarray(model(example, training=False)))
    requirements = [f"{package}=={version(package)}" for package in ("tensorflow", "keras")]
    # This is mlflow.keras.log_model(model, name=..., ...) with one fix: in MLflow 3.17 its
    # save_model writes the input example before it creates the model's folder, and fails
    # (mlflow issue 16183). The same Model.log call, with a save_model that creates it.
    keras_flavor = SimpleNamespace(__name__="mlflow.keras",
                                   save_model=_save_model_into_new_folder)
    return Model.log(artifact_path=None, name=name, flavor=keras_flavor, model=model,
                     signature=signature, input_example=example,
                     pip_requirements=requirements, registered_model_name=registered_model)
