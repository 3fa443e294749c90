"""generate and window: exact small cases, the seed's arrays, the split."""

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import default_params, with_overrides

from benchmarks.seed_reference import seed_windows
from pipeline.data import sawtooth
from pipeline.params import parse_params
from pipeline.stages.generate import make_train_and_test
from pipeline.windows import Windows, shift_right


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


def series_of(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": x, "input": np.sin(x), "target": np.cos(x)}


def test_windows_exact_small_case() -> None:
    values = np.arange(6.0)
    series = {"x": values, "input": values, "target": values + 10}
    arrays = Windows.cut(series, series, steps=3, validation_fraction=0.3)
    # The seed makes len - steps = 3 windows: the last full one, [3, 4, 5], is dropped.
    train, validation = arrays.split("train").windows(), arrays.split("validation").windows()
    np.testing.assert_array_equal(train["encoder_in"][..., 0], [[0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(validation["encoder_in"][..., 0], [[2, 3, 4]])
    np.testing.assert_array_equal(train["target"][..., 0], [[10, 11, 12], [11, 12, 13]])
    np.testing.assert_array_equal(train["decoder_in"][..., 0], [[0, 10, 11], [0, 11, 12]])
    np.testing.assert_array_equal(validation["start"], [2])
    np.testing.assert_array_equal(arrays.split("test").windows()["start"], [0, 1, 2])


def test_decoder_input_is_target_shifted_right_by_one_with_zero_first() -> None:
    target = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(shift_right(target), [[0, 1, 2], [0, 4, 5]])


def test_windows_equal_the_seed_loop_on_default_params() -> None:
    x = np.linspace(-3 * np.pi, 3 * np.pi, 100)
    arrays = Windows.cut(series_of(x), series_of(x), 24, 0.2)
    ex, dx, dy = (a[..., 0] for a in seed_windows(np.sin(x), np.cos(x), 24))
    splits = [arrays.split(split).windows() for split in ("train", "validation")]
    for name, expected in (("encoder_in", ex), ("decoder_in", dx), ("target", dy)):
        joined = np.concatenate([windows[name] for windows in splits])
        assert joined.shape == (76, 24, 1)
        assert joined.dtype == np.float32
        np.testing.assert_array_equal(joined[..., 0], expected.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([w["start"] for w in splits]), np.arange(76))


def keras_validation_starts(windows: int, validation_split: float) -> tuple[float, float]:
    """Return the mean window index Keras' `fit(validation_split=...)` trains on and the
    one it validates on, observed through the public API: a frozen model whose MAE on a
    window is that window's index."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones", trainable=False)])
    model.compile(optimizer="sgd", loss="mae")
    index = np.arange(windows, dtype=np.float32)[:, None]
    history = model.fit(index, np.zeros_like(index), batch_size=windows, epochs=1,
                        validation_split=validation_split, shuffle=False, verbose=0)
    return history.history["loss"][0], history.history["val_loss"][0]


def test_split_is_the_last_windows_as_keras_takes_them() -> None:
    x = np.linspace(-3 * np.pi, 3 * np.pi, 100)
    arrays = Windows.cut(series_of(x), series_of(x), 24, 0.2)
    fit, validation = arrays.split("train").windows(), arrays.split("validation").windows()
    np.testing.assert_array_equal(fit["start"], np.arange(60))
    np.testing.assert_array_equal(validation["start"], np.arange(60, 76))
    assert keras_validation_starts(76, 0.2) == pytest.approx(
        (fit["start"].mean(), validation["start"].mean()))


def test_stored_arrays_grow_with_points_not_points_times_steps(tmp_path: Path) -> None:
    x = np.linspace(0, 100, 10_000)
    windows = Windows.cut(series_of(x), series_of(x), 50, 0.2)
    windows.write(tmp_path / "windows.npz")
    with np.load(tmp_path / "windows.npz") as stored:
        assert sum(stored[name].size for name in stored.files) < 7 * 10_000
    assert Windows.read(tmp_path / "windows.npz").train.count == windows.train.count


@pytest.mark.parametrize("steps", [1, 5])
def test_every_window_starts_where_its_start_index_says(steps: int) -> None:
    x = np.linspace(0, 1, 20)
    arrays = Windows.cut(series_of(x), series_of(x + 5), steps, 0.25)
    for split, series_x in (("train", x), ("validation", x), ("test", x + 5)):
        windows = arrays.split(split).windows()
        np.testing.assert_array_equal(windows["x"][:, 0], series_x[windows["start"]])


def test_phase_shift_and_named_signals() -> None:
    raw = with_overrides(default_params(), {"generate": {
        "input": "triangle", "target": "sin", "target_phase_pi": 0.5}})
    train, _ = make_train_and_test(parse_params(raw).generate)
    np.testing.assert_allclose(train["target"], np.cos(train["x"]), atol=1e-12)
    assert 0.95 < train["input"].abs().max() <= 1.0  # the grid misses the exact peaks
    np.testing.assert_allclose(sawtooth(np.array([0.0, np.pi / 2, -np.pi / 2])),
                               [0.0, 0.5, -0.5])


def test_noise_is_seeded_added_to_the_input_only_and_separate_per_series() -> None:
    noisy = {"generate": {"noise_std": 0.1, "noise_seed": 7}}
    first, first_test = make_train_and_test(
        parse_params(with_overrides(default_params(), noisy)).generate)
    again, _ = make_train_and_test(
        parse_params(with_overrides(default_params(), noisy)).generate)
    resized = with_overrides(default_params(), {"generate": {**noisy["generate"],
                                                             "test_points": 50}})
    same_train, _ = make_train_and_test(parse_params(resized).generate)
    clean, _ = make_train_and_test(parse_params(default_params()).generate)
    np.testing.assert_array_equal(first["input"], again["input"])
    np.testing.assert_array_equal(first["input"], same_train["input"])
    np.testing.assert_array_equal(first["target"], clean["target"])
    assert 0.05 < float((first["input"] - clean["input"]).std()) < 0.15
    assert not np.allclose(first_test["input"][:50], first["input"][:50])


def test_windows_of_several_input_columns_equal_a_direct_cut() -> None:
    rng = np.random.default_rng(3)
    x = np.arange(30.0)
    inputs = rng.normal(size=(30, 3))  # (points, k)
    series = {"x": x, "input": inputs, "target": rng.normal(size=30)}
    test_series = {"x": x + 30, "input": inputs * 2, "target": series["target"] + 1}
    arrays = Windows.cut(series, test_series, steps=5, validation_fraction=0.25)
    assert arrays.inputs == 3
    for split, source in (("train", series), ("validation", series), ("test", test_series)):
        windows = arrays.split(split).windows()
        expected = np.stack([source["input"][start:start + 5] for start in windows["start"]])
        assert windows["encoder_in"].shape == (len(windows["start"]), 5, 3)
        np.testing.assert_array_equal(windows["encoder_in"], expected.astype(np.float32))
        expected_target = np.stack([source["target"][start:start + 5]
                                    for start in windows["start"]])
        np.testing.assert_array_equal(windows["target"][..., 0],
                                      expected_target.astype(np.float32))


def test_scaling_statistics_come_from_the_training_split_only() -> None:
    # Training rows rise 0..59; the validation windows' rows and the test series lie far
    # above: none of them may move the statistics.
    x = np.arange(60.0)
    series = {"x": x, "input": np.stack([x, -x], axis=1), "target": 2 * x}
    test_series = {"x": x + 60, "input": np.full((60, 2), 1e6), "target": np.full(60, 1e6)}
    arrays = Windows.cut(series, test_series, steps=10, validation_fraction=0.5)
    fit_windows = len(arrays.split("train").windows()["start"])  # 25 windows: points 0..33
    covered = np.arange(fit_windows + 10 - 1.0)
    statistics = arrays.scaling_statistics()
    np.testing.assert_allclose(statistics["input_mean"], [covered.mean(), -covered.mean()])
    np.testing.assert_allclose(statistics["input_variance"], [covered.var()] * 2)
    np.testing.assert_allclose(statistics["target_mean"], [2 * covered.mean()])
    np.testing.assert_allclose(statistics["target_variance"], [4 * covered.var()])
    assert statistics["target_mean"][0] < series["target"].mean()  # validation left out
