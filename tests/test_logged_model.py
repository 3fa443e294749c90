"""The agent's Keras-free model logging writes what mlflow.keras.save_model writes."""

from pathlib import Path

import keras
import mlflow.keras
import numpy as np
import pytest
import yaml
from mlflow.models import Model

from pipeline.fitting import describe_model
from pipeline.logged_model import _KerasFlavor, _signature, requirements
from pipeline.model import DECODER_IN, ENCODER_IN, build_free_running_model, build_training_model

STEPS = 4
# Differ between any two saves of the same model.
VOLATILE = {"utc_time_created", "model_uuid"}


def models() -> dict[str, tuple[keras.Model, object]]:
    """Return both models train logs, each with an input example of two windows."""
    trained = build_training_model(STEPS, 3, 0.001)
    windows = np.linspace(0, 1, 2 * STEPS, dtype=np.float32).reshape(2, STEPS, 1)
    return {"model": (trained, {ENCODER_IN: windows, DECODER_IN: windows}),
            "predictor": (build_free_running_model(trained), windows)}


def log_ours(model: keras.Model, example: object, scratch: Path) -> Path:
    """Save `model` as train does and write it with the agent's flavor; return the directory."""
    saved = scratch / "saved.keras"
    model.save(saved)
    description = describe_model(model)
    _KerasFlavor.save_model(str(scratch / "ours"), Model(), model=saved,
                            signature=_signature(description["signature"]),
                            input_example=example, pip_requirements=requirements(),
                            saved_with=description["saved_with"])
    return scratch / "ours"


def files(directory: Path) -> dict[str, bytes]:
    """Return every file under `directory` by its relative path."""
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def model_file(directory: Path) -> dict[str, object]:
    """Return the MLmodel file's fields, less those that differ between saves."""
    fields = yaml.safe_load((directory / "MLmodel").read_text())
    return {key: value for key, value in fields.items() if key not in VOLATILE}


@pytest.mark.parametrize("name", ["model", "predictor"])
def test_the_flavor_matches_mlflow_keras_file_for_file(tmp_path: Path, name: str) -> None:
    model, example = models()[name]
    ours = log_ours(model, example, tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()  # mlflow.keras writes the example before it creates the directory
    mlflow.keras.save_model(model, str(theirs), input_example=example,
                            signature=_signature(describe_model(model)["signature"]),
                            pip_requirements=requirements())

    their_files, our_files = files(theirs), files(ours)
    assert sorted(our_files) == sorted(their_files)
    assert our_files["data/model.keras"] == (tmp_path / "saved.keras").read_bytes()
    for path in set(their_files) - {"MLmodel", "data/model.keras"}:
        assert our_files[path] == their_files[path], path
    assert model_file(ours) == model_file(theirs)
    assert model_file(ours)["flavors"]["keras"]["keras_backend"] == "tensorflow"


def test_the_logged_model_loads_with_mlflow_keras_and_predicts_the_same(
        tmp_path: Path) -> None:
    model, example = models()["predictor"]
    loaded = mlflow.keras.load_model(str(log_ours(model, example, tmp_path)))
    np.testing.assert_allclose(loaded.predict(example, verbose=0),
                               model.predict(example, verbose=0))
