"""The compiled training loop does exactly Keras' per-batch work, in the same order."""

import keras
import numpy as np

from pipeline.model import build_training_model
from pipeline.params import TrainParams
from pipeline.training import train_epochs

STEPS, UNITS, WINDOWS = 6, 4, 20


def data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, (WINDOWS, STEPS, 1)).astype(np.float32)
    decoder_in = np.concatenate([np.zeros_like(target[:, :1]), target[:, :-1]], axis=1)
    return rng.uniform(-1, 1, target.shape).astype(np.float32), decoder_in, target


def test_loop_matches_keras_train_on_batch_with_the_same_order() -> None:
    params = TrainParams(epochs=3, batch_size=8, learning_rate=0.01, seed=5,
                         early_stopping_patience=0)
    train, validation = data(0), data(1)
    keras.utils.set_random_seed(0)
    ours = build_training_model(STEPS, UNITS, params.learning_rate)
    keras.utils.set_random_seed(0)
    reference = build_training_model(STEPS, UNITS, params.learning_rate)
    history = train_epochs(ours, train, validation, params)

    order = np.random.default_rng(params.seed)  # the loop's documented shuffle
    for _ in range(params.epochs):
        permutation = order.permutation(WINDOWS)
        for start in range(0, WINDOWS, params.batch_size):
            batch = permutation[start:start + params.batch_size]
            reference.train_on_batch([train[0][batch], train[1][batch]], train[2][batch])

    for mine, theirs in zip(ours.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    expected_val_loss = reference.evaluate([validation[0], validation[1]], validation[2],
                                           verbose=0)
    assert list(history.columns) == ["epoch", "loss", "val_loss"]
    assert list(history["epoch"]) == [0, 1, 2]
    np.testing.assert_allclose(history["val_loss"].iloc[-1], expected_val_loss, rtol=1e-4)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]


def test_same_seed_same_weights() -> None:
    params = TrainParams(epochs=2, batch_size=8, learning_rate=0.01, seed=9,
                         early_stopping_patience=0)
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        model = build_training_model(STEPS, UNITS, params.learning_rate)
        train_epochs(model, data(0), data(1), params)
        weights.append(model.get_weights())
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)


def test_early_stopping_stops_and_keeps_the_best_weights() -> None:
    # A learning rate this large makes val_loss stop improving within a few epochs.
    params = TrainParams(epochs=200, batch_size=8, learning_rate=1.0, seed=1,
                         early_stopping_patience=3)
    keras.utils.set_random_seed(4)
    model = build_training_model(STEPS, UNITS, params.learning_rate)
    validation = data(1)
    history = train_epochs(model, data(0), validation, params)
    best = history["val_loss"].idxmin()
    assert len(history) == best + 1 + params.early_stopping_patience < params.epochs
    restored = model.evaluate([validation[0], validation[1]], validation[2], verbose=0)
    np.testing.assert_allclose(restored, history["val_loss"].min(), rtol=1e-4)
