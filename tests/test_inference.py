"""evaluate's NumPy network against the Keras model it was exported from, for every cell."""

import keras
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.evaluate import in_batches
from pipeline.inference import CELL_KEY, WEIGHT_NAMES, Seq2Seq, export_weights
from pipeline.model import DECODER_IN, ENCODER_IN, build_free_running_model, build_training_model
from pipeline.params import CELLS

STEPS, UNITS, WINDOWS = 7, 6, 11


def trained_like(cell: str) -> keras.Model:
    """A model whose weights and biases are all non-zero, as after training."""
    keras.utils.set_random_seed(5)
    model = build_training_model(STEPS, UNITS, 0.001, cell)
    rng = np.random.default_rng(3)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.6, weight.shape).astype(np.float32))
    return model


def windows(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (WINDOWS, STEPS, 1)).astype(np.float32)


def keras_output(model: keras.Model, inputs: object) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(inputs, training=False))


@pytest.mark.parametrize("cell", CELLS)
def test_free_running_matches_the_keras_predictor(cell: str) -> None:
    model = trained_like(cell)
    net = Seq2Seq(export_weights(model, cell))
    encoder_in = windows(0)
    expected = keras_output(build_free_running_model(model), encoder_in)
    assert np.abs(expected).max() > 0.1  # a decode that says something
    np.testing.assert_allclose(net.free_running(encoder_in), expected, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_teacher_forced_matches_the_keras_training_model(cell: str) -> None:
    model = trained_like(cell)
    encoder_in, decoder_in = windows(1), windows(2)
    expected = keras_output(model, {ENCODER_IN: encoder_in, DECODER_IN: decoder_in})
    np.testing.assert_allclose(Seq2Seq(export_weights(model, cell)).teacher_forced(
        encoder_in, decoder_in), expected, atol=1e-5)


def test_exported_names_are_the_names_evaluate_reads() -> None:
    assert set(export_weights(trained_like("lstm"), "lstm")) == set(WEIGHT_NAMES)


def test_an_unknown_cell_is_named() -> None:
    arrays = {**export_weights(trained_like("gru"), "gru"), CELL_KEY: np.array("transformer")}
    with pytest.raises(InputError, match=r"weights.npz: unknown cell 'transformer'"):
        Seq2Seq(arrays, "data/model/weights.npz")


def test_batch_size_does_not_change_predictions() -> None:
    net = Seq2Seq(export_weights(trained_like("simple_rnn"), "simple_rnn"))
    encoder_in = windows(4)
    one_pass = net.free_running(encoder_in)
    for batch_size in (1, 3, 100):
        np.testing.assert_allclose(in_batches(net.free_running, batch_size, encoder_in),
                                   one_pass, rtol=1e-12)
