"""Scaling inside the model: the user's units in and out, the training split's statistics,
and the same skill whatever the units."""

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from conftest import with_overrides

from pipeline.model import (
    INPUT_SCALING,
    TARGET_UNSCALING,
    build_predictor,
    build_training_model,
    compiled_call,
    load_model,
)
from pipeline.params import parse_params
from pipeline.stages.evaluate import score
from pipeline.stages.train import train_model
from pipeline.windows import Windows, shift_right

STEPS = 6


def damped(points: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    """Return a damped oscillation with two input columns, in units around 100."""
    x = np.arange(points) * 0.3 + offset
    decay = np.exp(-0.01 * x)
    inputs = np.stack([100 + 40 * decay * np.sin(x), 5 * np.cos(x / 3)], axis=1)
    return {"x": x, "input": inputs, "target": 100 + 40 * decay * np.cos(x)}


def arrays_of(scale: float = 1.0) -> Windows:
    """Return windows.npz arrays of the damped series, every value times `scale`."""
    def scaled(series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**series, "input": series["input"] * scale, "target": series["target"] * scale}

    return Windows.cut(scaled(damped(80)), scaled(damped(40, offset=30)), STEPS, 0.25)


def test_the_model_standardises_with_the_training_statistics() -> None:
    arrays = arrays_of()
    statistics = arrays.scaling_statistics()
    model = build_training_model(STEPS, 4, 0.01, inputs=2, scaling=statistics)
    layer = model.get_layer(INPUT_SCALING)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.mean).ravel(),
                               statistics["input_mean"], rtol=1e-6)
    # The training split's stretch of series comes out at mean 0 and std 1, per column.
    stretch = arrays.train.input[None].astype(np.float32)  # (1, points, 2)
    standardised = keras.ops.convert_to_numpy(layer(stretch))[0]
    np.testing.assert_allclose(standardised.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(standardised.std(axis=0), 1, atol=1e-5)
    unscaling = model.get_layer(TARGET_UNSCALING)
    assert unscaling.invert


def test_free_running_output_fed_back_teacher_forced_gives_itself() -> None:
    # The predictor and the training model must agree on the scaled start (a 0 in the
    # user's units) and on feeding outputs back: teacher forcing on the predictor's own
    # output, shifted right, reproduces that output.
    keras.utils.set_random_seed(4)
    arrays = arrays_of()
    model = build_training_model(STEPS, 5, 0.01, "gru", inputs=2,
                                 scaling=arrays.scaling_statistics())
    encoder_in = arrays.split("test").windows()["encoder_in"]
    predicted = keras.ops.convert_to_numpy(build_predictor(model)(encoder_in))
    decoder_in = shift_right(predicted[..., 0])[..., None]
    forced = keras.ops.convert_to_numpy(model([encoder_in, decoder_in]))
    np.testing.assert_allclose(forced, predicted, rtol=1e-5, atol=1e-3)


def test_a_saved_scaled_predictor_loads_in_safe_mode(tmp_path: Path) -> None:
    arrays = arrays_of()
    predictor = build_predictor(build_training_model(STEPS, 4, 0.01, inputs=2,
                                                     scaling=arrays.scaling_statistics()))
    predictor.save(tmp_path / "predictor.keras")
    encoder_in = arrays.split("validation").windows()["encoder_in"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(load_model(tmp_path / "predictor.keras")(encoder_in)),
        keras.ops.convert_to_numpy(predictor(encoder_in)), rtol=1e-6)


def train_and_evaluate(params: Any, arrays: Windows
                       ) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Train with the stage's own function, evaluate the predictor; return the metrics and
    the test predictions."""
    model, _, _ = train_model(params, arrays, [])
    predictor = build_predictor(model)
    test_windows = arrays.split("test").windows()["encoder_in"]
    return (score(compiled_call(predictor), compiled_call(model), arrays, 256),
            keras.ops.convert_to_numpy(predictor(test_windows)))


def test_a_series_in_thousandfold_units_predicts_thousandfold_with_the_same_skill(
        tiny_params: dict[str, Any]) -> None:
    params = parse_params(with_overrides(tiny_params, {
        "window": {"steps": STEPS}, "model": {"scaling": "standard"},
        "train": {"epochs": 5}}))
    assert params.used().model.scaling == "standard" and arrays_of().inputs == 2
    metrics, predicted = train_and_evaluate(params, arrays_of())
    metrics_1000, predicted_1000 = train_and_evaluate(params, arrays_of(1000.0))
    np.testing.assert_allclose(predicted_1000, 1000 * predicted, rtol=1e-3)
    for split in ("train", "validation", "test"):
        assert metrics_1000[split]["free_run_mse"] == pytest.approx(
            1e6 * metrics[split]["free_run_mse"], rel=1e-3)
        assert metrics_1000[split]["skill_vs_mean"] == pytest.approx(
            metrics[split]["skill_vs_mean"], abs=1e-3)


def test_without_scaling_the_model_is_the_tutorials(tiny_params: dict[str, Any]) -> None:
    params = parse_params(with_overrides(tiny_params, {"model": {"scaling": "none"}}))
    model, _, _ = train_model(params, Windows.cut(damped(80), damped(40), 8, 0.25), [])
    names = {layer.name for layer in model.layers}
    assert not names & {INPUT_SCALING, TARGET_UNSCALING}
