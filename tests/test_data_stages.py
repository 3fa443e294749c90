"""generate and window: exact small cases, the seed's arrays, the split."""

import numpy as np
import pytest
from conftest import default_params
from keras.src.trainers.data_adapters.array_slicing import train_validation_split

from pipeline.generate import make_series, make_train_and_test
from pipeline.params import parse_params
from pipeline.window import SPLITS, make_windows, shift_right, sliding_windows, window_splits


def seed_windows(seq_in: np.ndarray, seq_out: np.ndarray, steps: int):
    """The seed notebook's own loop, as written there."""
    n = len(seq_in) - steps
    ex, dx, dy = np.zeros((n, steps)), np.zeros((n, steps)), np.zeros((n, steps))
    for i in range(n):
        ex[i] = seq_in[i:i + steps]
        dx[i, 1:] = seq_out[i:i + steps - 1]
        dy[i] = seq_out[i:i + steps]
    return ex, dx, dy


def test_training_series_is_the_seeds() -> None:
    train, _ = make_train_and_test(parse_params(default_params()).generate)
    x = np.linspace(-3 * np.pi, 3 * np.pi, 100)
    np.testing.assert_array_equal(train["x"], x)
    np.testing.assert_array_equal(train["input"], np.sin(x))
    np.testing.assert_array_equal(train["target"], np.cos(x))


def test_test_series_is_held_out_with_the_same_spacing() -> None:
    train, test = make_train_and_test(parse_params(default_params()).generate)
    assert test["x"].min() > train["x"].max()
    np.testing.assert_allclose(np.diff(test["x"]), np.diff(train["x"]).mean(), rtol=1e-9)
    np.testing.assert_allclose(test["target"], np.cos(test["x"]))


def test_sliding_windows_exact_small_case() -> None:
    windows = sliding_windows(np.arange(6.0), 3)
    # The seed makes len - steps windows: the last full window [3, 4, 5] is dropped.
    np.testing.assert_array_equal(windows, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])


def test_decoder_input_is_target_shifted_right_by_one_with_zero_first() -> None:
    target = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(shift_right(target), [[0, 1, 2], [0, 4, 5]])


def test_windows_equal_the_seed_loop_on_default_params() -> None:
    series = make_series(100, -3.0, 3.0, "sin", "cos")
    windows = make_windows(series["x"].to_numpy(), series["input"].to_numpy(),
                           series["target"].to_numpy(), 24)
    ex, dx, dy = seed_windows(np.sin(series["x"]), np.cos(series["x"]), 24)
    for name, expected in (("encoder_in", ex), ("decoder_in", dx), ("target", dy)):
        assert windows[name].shape == (76, 24, 1)
        assert windows[name].dtype == np.float32
        np.testing.assert_array_equal(windows[name][..., 0], expected.astype(np.float32))
    np.testing.assert_array_equal(windows["start"], np.arange(76))


def test_split_is_the_last_windows_as_keras_takes_them() -> None:
    series = {c: make_series(100, -3.0, 3.0, "sin", "cos")[c].to_numpy()
              for c in ("x", "input", "target")}
    arrays = window_splits(series, series, 24, 0.2)
    all_windows = np.concatenate([arrays["train.encoder_in"], arrays["validation.encoder_in"]])
    keras_fit, keras_validation = train_validation_split(all_windows, validation_split=0.2)
    np.testing.assert_array_equal(arrays["train.encoder_in"], keras_fit)
    np.testing.assert_array_equal(arrays["validation.encoder_in"], keras_validation)
    np.testing.assert_array_equal(arrays["validation.start"], np.arange(60, 76))
    assert {key.split(".")[0] for key in arrays} == set(SPLITS)


@pytest.mark.parametrize("steps", [1, 5])
def test_every_window_starts_where_its_start_index_says(steps: int) -> None:
    x = np.linspace(0, 1, 20)
    windows = make_windows(x, np.sin(x), np.cos(x), steps)
    np.testing.assert_array_equal(windows["x"][:, 0], x[windows["start"]])
