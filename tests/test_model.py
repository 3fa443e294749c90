"""The network's shapes, and the batched free-running decoder against a step-by-step one."""


import keras
import numpy as np
import pytest

from pipeline.model import (
    DECODER_OUTPUT,
    DECODER_RNN,
    ENCODER_RNN,
    RNN_LAYERS,
    build_free_running_model,
    build_training_model,
)
from pipeline.params import CELLS

STEPS, UNITS = 6, 5


def predict(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(inputs, training=False))


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(7)
    return build_training_model(STEPS, UNITS, 0.001)


def numpy_decode(model: keras.Model, encoder_in: np.ndarray) -> np.ndarray:
    """Decode one step at a time in NumPy, from the layers' weights: the seed's loop."""
    def rnn_step(layer: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        kernel, recurrent, bias = model.get_layer(layer).get_weights()
        return np.tanh(x @ kernel + h @ recurrent + bias)

    dense_kernel, dense_bias = model.get_layer(DECODER_OUTPUT).get_weights()
    state = np.zeros((len(encoder_in), UNITS), np.float32)
    for t in range(STEPS):
        state = rnn_step(ENCODER_RNN, encoder_in[:, t], state)
    step_in, outputs = np.zeros((len(encoder_in), 1), np.float32), []
    for _ in range(STEPS):
        state = rnn_step(DECODER_RNN, step_in, state)
        step_in = state @ dense_kernel + dense_bias
        outputs.append(step_in)
    return np.stack(outputs, axis=1)


def test_training_model_maps_two_windows_to_one(model: keras.Model) -> None:
    windows = np.zeros((3, STEPS, 1), np.float32)
    output = model.predict([windows, windows], verbose=0)
    assert output.shape == (3, STEPS, 1)
    assert [tuple(t.shape) for t in model.inputs] == [(None, STEPS, 1)] * 2
    # SimpleRNN(units) twice + Dense(1): the seed's parameter count.
    assert model.count_params() == 2 * (UNITS + UNITS * UNITS + UNITS) + UNITS + 1


def test_free_running_decode_matches_step_by_step(model: keras.Model) -> None:
    encoder_in = np.random.default_rng(0).uniform(-1, 1, (9, STEPS, 1)).astype(np.float32)
    batched = predict(build_free_running_model(model), encoder_in)
    assert batched.shape == (9, STEPS, 1)
    np.testing.assert_allclose(batched, numpy_decode(model, encoder_in), atol=1e-5)


def test_free_running_model_shares_the_trained_weights(model: keras.Model) -> None:
    free_running = build_free_running_model(model)
    assert free_running.count_params() == model.count_params()
    shared = {id(variable) for variable in free_running.weights}
    assert shared == {id(variable) for variable in model.weights}


def layer_step_decode(model: keras.Model, encoder_in: np.ndarray) -> np.ndarray:
    """Decode as the seed does: the decoder RNN layer on one step at a time."""
    states = list(model.get_layer(ENCODER_RNN)(encoder_in)[1:])
    step_in, outputs = np.zeros((len(encoder_in), 1, 1), np.float32), []
    for _ in range(encoder_in.shape[1]):
        decoded, *states = model.get_layer(DECODER_RNN)(step_in, initial_state=states)
        step_in = keras.ops.convert_to_numpy(model.get_layer(DECODER_OUTPUT)(decoded))
        outputs.append(step_in[:, 0])
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_trains_shape_and_decodes_like_the_step_by_step_loop(cell: str) -> None:
    keras.utils.set_random_seed(11)
    model = build_training_model(STEPS, UNITS, 0.001, cell)
    encoder_in = np.random.default_rng(2).uniform(-1, 1, (5, STEPS, 1)).astype(np.float32)
    assert model.predict([encoder_in, encoder_in], verbose=0).shape == (5, STEPS, 1)
    np.testing.assert_allclose(
        predict(build_free_running_model(model), encoder_in),
        layer_step_decode(model, encoder_in), atol=1e-5)


def test_params_cell_names_are_the_cells_the_model_builds() -> None:
    assert set(CELLS) == set(RNN_LAYERS)
