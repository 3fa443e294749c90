"""The network's shapes, the batched free-running predictor against a step-by-step decode,
and training through Keras' `fit` with its callbacks."""

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import default_params

from pipeline import training
from pipeline.errors import InputError
from pipeline.model import (
    DECODER_OUTPUT,
    DECODER_RNN,
    ENCODER_RNN,
    RNN_LAYERS,
    build_predictor,
    build_training_model,
    compiled_call,
    load_model,
)
from pipeline.params import CELLS, TrainParams
from pipeline.training import EpochOrder, early_stopping, fit, window_dataset
from pipeline.windows import Windows

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
    batched = predict(build_predictor(model), encoder_in)
    assert batched.shape == (9, STEPS, 1)
    np.testing.assert_allclose(batched, numpy_decode(model, encoder_in), atol=1e-5)


def test_free_running_model_shares_the_trained_weights(model: keras.Model) -> None:
    free_running = build_predictor(model)
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
        predict(build_predictor(model), encoder_in),
        layer_step_decode(model, encoder_in), atol=1e-5)


def test_params_cell_names_are_the_cells_the_model_builds() -> None:
    assert set(CELLS) == set(RNN_LAYERS)


def stretch(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a random stretch of series, input (points, 1) and target, holding `count`
    windows."""
    rng = np.random.default_rng(seed)
    points = count + STEPS - 1
    return (rng.uniform(-1, 1, (points, 1)).astype(np.float32),
            rng.uniform(-1, 1, points).astype(np.float32))


def train_params(**changes: object) -> TrainParams:
    return TrainParams.model_validate({**default_params()["train"], "batch_size": 4,
                                       "early_stopping_patience": 0, **changes})


class Recorder(keras.callbacks.Callback):
    """A user's callback: what `fit` reports to it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int | None, tuple[str, ...]]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.events.append(("train_begin", None, ()))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.events.append(("epoch_end", epoch, tuple(sorted(logs or {}))))

    def on_train_end(self, logs: dict | None = None) -> None:
        self.events.append(("train_end", None, ()))


def test_fit_drives_keras_callbacks_and_history() -> None:
    keras.utils.set_random_seed(3)
    model = build_training_model(STEPS, UNITS, 0.01)
    recorder = Recorder()
    history = fit(model, stretch(12, 0), stretch(4, 1), train_params(epochs=3), [recorder])
    assert history.epoch == [0, 1, 2]
    assert len(history.history["loss"]) == len(history.history["val_loss"]) == 3
    assert recorder.events == [("train_begin", None, ()),
                               *[("epoch_end", epoch, ("loss", "val_loss")) for epoch in range(3)],
                               ("train_end", None, ())]


def test_fit_is_deterministic_for_a_seed() -> None:
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        model = build_training_model(STEPS, UNITS, 0.01)
        fit(model, stretch(12, 0), stretch(4, 1), train_params(epochs=2, seed=5))
        weights.append(model.get_weights())
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)


def test_early_stopping_stops_and_keeps_the_best_val_loss_weights() -> None:
    keras.utils.set_random_seed(1)
    # A learning rate far too high makes val_loss worse soon: training must stop early.
    model = build_training_model(STEPS, UNITS, 1.0)
    params = train_params(epochs=60, early_stopping_patience=2)
    history = fit(model, stretch(12, 0), stretch(4, 1), params, [early_stopping(params)])
    val_loss = history.history["val_loss"]
    assert len(val_loss) < 60
    kept = model.evaluate(window_dataset(stretch(4, 1), STEPS, 4), verbose=0)
    assert kept == pytest.approx(min(val_loss), rel=1e-4)


def test_saved_predictor_loads_in_safe_mode_and_predicts_the_same(
        model: keras.Model, tmp_path: Path) -> None:
    predictor = build_predictor(model)
    predictor.save(tmp_path / "predictor.keras")
    loaded = load_model(tmp_path / "predictor.keras")
    encoder_in = np.random.default_rng(4).uniform(-1, 1, (3, STEPS, 1)).astype(np.float32)
    np.testing.assert_allclose(predict(loaded, encoder_in), predict(predictor, encoder_in),
                               atol=1e-6)


def test_a_damaged_model_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK not really a zip")
    with pytest.raises(InputError, match=r"model.keras: damaged or not a Keras model"):
        load_model(path)


def small_arrays(inputs: int = 2) -> Windows:
    """Return windows.npz arrays of a 40-point series with `inputs` input columns."""
    rng = np.random.default_rng(8)
    series = {"x": np.arange(40.0), "input": rng.normal(size=(40, inputs)),
              "target": rng.normal(size=40)}
    return Windows.cut(series, {**series, "x": series["x"] + 40}, STEPS, 0.25)


@pytest.fixture(params=["streamed", "in memory"])
def windows_kept(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Cut windows both ways: streamed batch by batch (long splits) or cut once and kept
    (short ones)."""
    if request.param == "streamed":
        monkeypatch.setattr(training, "IN_MEMORY_WINDOW_VALUES", 0)
    return request.param


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_streamed_windows_equal_the_arrays_of_every_split(split: str, windows_kept: str) -> None:
    arrays = small_arrays()
    expected = arrays.split(split).windows()
    batches = list(window_dataset(arrays.split(split).stretch, STEPS, 4))
    for position, name in ((0, "encoder_in"), (1, "decoder_in")):
        streamed = np.concatenate([inputs[position].numpy() for inputs, _ in batches])
        np.testing.assert_array_equal(streamed, expected[name])
    np.testing.assert_array_equal(np.concatenate([target.numpy() for _, target in batches]),
                                  expected["target"])


def epoch_targets(arrays: Windows, seed: int, first: int, epochs: int
                  ) -> list[np.ndarray]:
    """Return the training targets in the order each of `epochs` epochs draws them, for a
    fit whose first epoch is `first`."""
    order = EpochOrder(seed)
    order.on_epoch_begin(first)
    stretch = arrays.split("train").stretch
    batches = iter(window_dataset(stretch, STEPS, 4, order))  # endless: epoch after epoch
    per_epoch = math.ceil((len(stretch[1]) - STEPS + 1) / 4)
    return [np.concatenate([next(batches)[1].numpy() for _ in range(per_epoch)])
            for _ in range(epochs)]


def test_each_epoch_draws_every_window_once_in_an_order_of_the_seed_and_epoch(
        windows_kept: str) -> None:
    arrays = small_arrays()
    windows = arrays.split("train").windows()["target"]
    first = epoch_targets(arrays, 9, 0, 3)
    for drawn in first:  # every window exactly once, with its own values
        order = [int(np.flatnonzero((windows == window).all(axis=(1, 2)))[0])
                 for window in drawn]
        assert sorted(order) == list(range(len(windows)))
    # The epoch alone decides: a training resumed at epoch 2 draws what epoch 2 drew.
    np.testing.assert_array_equal(epoch_targets(arrays, 9, 2, 1)[0], first[2])
    assert not np.array_equal(first[0], first[1])  # reshuffled each epoch
    assert not np.array_equal(first[0], epoch_targets(arrays, 10, 0, 1)[0])  # and by seed


def test_kept_and_streamed_windows_are_drawn_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = small_arrays()
    kept = epoch_targets(arrays, 9, 0, 2)
    monkeypatch.setattr(training, "IN_MEMORY_WINDOW_VALUES", 0)
    for streamed, in_memory in zip(epoch_targets(arrays, 9, 0, 2), kept, strict=True):
        np.testing.assert_array_equal(streamed, in_memory)


def test_the_compiled_call_traces_once_for_every_batch_size(model: keras.Model) -> None:
    call = compiled_call(build_predictor(model))
    for batch in (7, 3, 1, 7):
        encoder_in = np.zeros((batch, STEPS, 1), np.float32)
        assert call(encoder_in).shape == (batch, STEPS, 1)
    assert call.experimental_get_tracing_count() == 1
