"""Logging a saved Keras model to an MLflow run, ready to load with mlflow.keras or pyfunc.

The tracking agent runs this without Keras. mlflow.keras imports Keras, hence TensorFlow
(5 s of CPU and 500 MB in the agent), only to call `model.save` and to read two version
strings. The stage has already saved the model, and sends those strings along, so
`_KerasFlavor` writes the same layout mlflow.keras.save_model writes (MLflow 3.17,
pinned), with the same MLflow helpers. tests/test_logged_model.py compares the two
layouts file by file, so an MLflow upgrade that changes the flavor fails there.
"""

import shutil
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlflow import pyfunc
from mlflow.models import Model, ModelSignature
from mlflow.models.utils import _save_example
from mlflow.types.schema import Schema, TensorSpec
from mlflow.utils.environment import _process_pip_requirements, _PythonEnv
from mlflow.utils.file_utils import get_total_file_size

from pipeline.errors import InputError

FLAVOR = "keras"
# mlflow.keras's layout: data/model.keras, and data/keras_module.txt naming the module
# that loads it.
DATA = "data"
MODEL_FILE = "model.keras"
MODULE_FILE = "keras_module.txt"


class _KerasFlavor:
    """mlflow.keras.save_model for a model already saved to a .keras file.

    Also creates the model directory before writing the input example: mlflow.keras
    writes it first and fails (mlflow issue 16183, still in 3.17).
    """

    @staticmethod
    def save_model(path: str, mlflow_model: Model, **kwargs: Any) -> None:
        """Write the model directory at `path` as mlflow.keras.save_model does.

        Model.log calls this with log_saved_model's keyword arguments.
        """
        directory, saved_with = Path(path), kwargs["saved_with"]
        (directory / DATA).mkdir(parents=True)
        mlflow_model.signature = kwargs["signature"]
        _save_example(mlflow_model, kwargs["input_example"], path)
        (directory / DATA / MODULE_FILE).write_text("keras")
        shutil.copyfile(kwargs["model"], directory / DATA / MODEL_FILE)
        mlflow_model.add_flavor(FLAVOR, data=DATA, keras_version=saved_with["keras_version"],
                                keras_backend=saved_with["keras_backend"],
                                save_exported_model=False)
        pyfunc.add_to_model(mlflow_model, loader_module="mlflow.keras",
                            conda_env="conda.yaml", python_env="python_env.yaml")
        mlflow_model.model_size_bytes = get_total_file_size(path) or None
        mlflow_model.save(str(directory / "MLmodel"))
        _write_environment(directory, kwargs["pip_requirements"])


def requirements() -> list[str]:
    """Return the pip requirements of a logged model: this environment's TensorFlow, Keras."""
    return [f"{package}=={version(package)}" for package in ("tensorflow", "keras")]


def warm_up() -> None:
    """Run MLflow's requirements processing once, so the first model logs without it.

    Its first call maps every installed package to its modules (about 0.6 s), to warn
    when the requirements do not match what is installed.
    """
    _process_pip_requirements(None, requirements())


def _write_environment(directory: Path, requirements: list[str]) -> None:
    """Write conda.yaml, requirements.txt and python_env.yaml as MLflow's flavors do."""
    conda_env, pip_requirements, constraints = _process_pip_requirements(None, requirements)
    with (directory / "conda.yaml").open("w") as stream:
        yaml.safe_dump(conda_env, stream=stream, default_flow_style=False)
    if constraints:
        (directory / "constraints.txt").write_text("\n".join(constraints))
    (directory / "requirements.txt").write_text("\n".join(pip_requirements))
    _PythonEnv.current().to_yaml(str(directory / "python_env.yaml"))


def _signature(description: Mapping[str, Any]) -> ModelSignature:
    """Build the signature from pipeline.fitting.describe_model's plain description."""
    def schema(tensors: list[list[Any]]) -> Schema:
        return Schema([TensorSpec(np.dtype(dtype), tuple(shape), tensor_name or None)
                       for tensor_name, dtype, shape in tensors])

    return ModelSignature(inputs=schema(description["inputs"]),
                          outputs=schema(description["outputs"]))


def log_saved_model(run_id: str, path: str, name: str, example: dict[str, np.ndarray],
                    description: Mapping[str, Any]) -> str:
    """Log the Keras model saved at `path` to run `run_id`; return its model URI.

    `example` holds one array per input (just the array when there is one), and
    `description` is pipeline.fitting.describe_model's. Pip requirements are given, so
    MLflow does not infer them in a subprocess that loads the model; and it does not
    reload the model to check the example (that needs TensorFlow): the tests load both
    models through pyfunc and predict instead.
    """
    saved = Path(path)
    if not saved.is_file():
        raise InputError(f"{saved}: missing; nothing to log as a model")
    info = Model.log(artifact_path=None, name=name, flavor=_KerasFlavor, run_id=run_id,
                     flavor_name="mlflow.keras", model=saved,
                     signature=_signature(description["signature"]),
                     saved_with=description["saved_with"],
                     input_example=example if len(example) > 1 else example.popitem()[1],
                     pip_requirements=requirements(), validate_serving_input=False)
    return info.model_uri
