"""What a training run records besides params and metrics: its data and its models.

Datasets: each split's stretch of series (the points its windows are cut from) as an
MLflow dataset input, its digest the hash DVC records for the series file it came from,
its source that file's path in the project.
Models: logged with MLflow's Keras flavor, a signature and explicit pip requirements;
the predictor also becomes a new version of the registered model.
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
    """Record one split's stretch of series, input (points, k) and target (points,), as a
    dataset input of the active run."""
    with warnings.catch_warnings():
        # A relative path matches two of MLflow's local-file sources, and they are alike.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        dataset = mlflow.data.from_numpy(stretch[0], source=str(source), targets=stretch[1],
                                         name=split, digest=dvc_md5(source))
    mlflow.log_input(dataset, context=DATASET_CONTEXTS[split])


def log_keras_model(model: Any, name: str, example: Any,
                    registered_model: str | None = None) -> ModelInfo:
    """Log a Keras model to the active run with `mlflow.keras.log_model` and a signature
    inferred from `example`; return its ModelInfo. With `registered_model`, the model also
    becomes that model's next version.

    Pip requirements are explicit, so MLflow does not infer them by loading the model. No
    input example is logged: in MLflow 3.17 the Keras flavor writes it before it creates
    the model's folder and fails (mlflow issue 16183); the serving payload is in docs/guide.md.
    """
    # A direct call, not predict(): two windows need no compiled predict function.
    signature = infer_signature(example, np.asarray(model(example, training=False)))
    requirements = [f"{package}=={version(package)}" for package in ("tensorflow", "keras")]
    return mlflow.keras.log_model(model, name=name, signature=signature,
                                  pip_requirements=requirements,
                                  registered_model_name=registered_model)


class EpochMetrics(MlflowCallback):
    """MLflow's Keras callback, each metric once per epoch with the epoch as its step.

    MlflowCallback also logs `validation_<metric>` whenever an evaluation ends, always at
    step 0 (mlflow issue 14293): a second val_loss, drawn as a vertical line. `fit` already
    reports `val_loss` per epoch, so that record is left out. A resumed training trains
    again the epochs after its last backup; those the run already holds (`logged`) keep
    their first record.
    """

    def __init__(self, logged: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.logged = logged

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Log the epoch's metrics, unless the run holds them already."""
        if epoch not in self.logged:
            super().on_epoch_end(epoch, logs)

    def on_test_end(self, logs: dict[str, float] | None = None) -> None:
        """Log nothing: the epoch's val_* metrics come with on_epoch_end."""
