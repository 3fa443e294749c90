"""What a training run records besides params and metrics: datasets (each split's stretch,
its digest DVC's hash of its file) and models (MLflow's Keras flavor, signature, explicit
pip requirements).
"""

import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.keras
import numpy as np
from mlflow.keras import MlflowCallback
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

from pipeline.files import dvc_md5

# The MLflow dataset context of each split, and the series file its windows are cut from.
DATASET_CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}


def log_dataset(split: str, stretch: tuple[np.ndarray, np.ndarray], source: Path) -> None:
    """Record one split's stretch (input, target) as a dataset input of the active run."""
    with warnings.catch_warnings():
        # A relative path matches two of MLflow's local-file sources, and they are alike.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        dataset = mlflow.data.from_numpy(stretch[0], source=str(source), targets=stretch[1],
                                         name=split, digest=dvc_md5(source))
    mlflow.log_input(dataset, context=DATASET_CONTEXTS[split])


def log_keras_model(model: Any, name: str, example: Any,
                    registered_model: str | None = None) -> ModelInfo:
    """Log a Keras model with `mlflow.keras.log_model` (registered as `registered_model` if
    given). No input example: MLflow 3.17 writes it before the model's folder exists
    (mlflow issue 16183)."""
    # A direct call, not predict(): two windows need no compiled predict function.
    signature = infer_signature(example, np.asarray(model(example, training=False)))
    requirements = [f"{package}=={version(package)}" for package in ("tensorflow", "keras")]
    return mlflow.keras.log_model(model, name=name, signature=signature,
                                  pip_requirements=requirements,
                                  registered_model_name=registered_model)


class EpochMetrics(MlflowCallback):
    """MLflow's Keras callback without its step-0 `validation_loss` (mlflow issue 14293),
    skipping epochs a resumed run holds."""

    def __init__(self, logged: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.logged = logged

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Log the epoch's metrics, unless the run holds them already."""
        if epoch not in self.logged:
            super().on_epoch_end(epoch, logs)

    def on_test_end(self, logs: dict[str, float] | None = None) -> None:
        """Log nothing: the epoch's val_* metrics come with on_epoch_end."""
