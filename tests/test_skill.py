"""Scores summed batch by batch: baselines and skill against a computation by hand, and
the streamed evaluation against a direct one."""

import logging

import keras
import numpy as np
import pytest

from pipeline.metrics import SplitScores
from pipeline.model import build_predictor, build_training_model, compiled_call
from pipeline.params import parse_params
from pipeline.stages.evaluate import predictions, score, summary, warn_if_beaten
from pipeline.windows import SPLITS, Windows


def skill_metrics(model_mse: float, windows: dict[str, np.ndarray],
                  target_mean: float) -> dict[str, float]:
    """Return the baselines' and skill scores of a model whose error is √model_mse at every
    step, the windows added in two batches."""
    scores = SplitScores(target_mean)
    for part in (slice(0, 1), slice(1, None)):
        target = windows["target"][part]
        scores.add(windows["encoder_in"][part], target, target + np.sqrt(model_mse), target)
    found = scores.metrics()
    assert found["free_run_mse"] == pytest.approx(model_mse)
    return {key: value for key, value in found.items() if key.startswith(("baseline", "skill"))}


def small_split() -> dict[str, np.ndarray]:
    """Return the test windows of a 7-point series cut into 3-step windows."""
    x = np.arange(7.0)
    series = {"x": x, "input": np.array([1.0, 3, 2, 5, 4, 6, 0]),
              "target": np.array([2.0, 1, 4, 3, 6, 5, 9])}
    return Windows.cut(series, series, 3, 0.5).split("test").windows()


def by_hand(target_mean: float, model_mse: float) -> dict[str, float]:
    """Return the baselines' MSEs and the skills, one window and step at a time."""
    inputs, target = [1.0, 3, 2, 5, 4, 6, 0], [2.0, 1, 4, 3, 6, 5, 9]
    squared: dict[str, list[float]] = {"mean": [], "last_input": [], "input": []}
    for start in range(4):  # 7 points - 3 steps: the seed drops the last full window
        last = inputs[start + 2]
        for step in range(3):
            truth = target[start + step]
            squared["mean"].append((target_mean - truth) ** 2)
            squared["last_input"].append((last - truth) ** 2)
            squared["input"].append((inputs[start + step] - truth) ** 2)
    found = {}
    for name, values in squared.items():
        baseline = sum(values) / len(values)
        found[f"baseline_{name}_mse"] = baseline
        found[f"skill_vs_{name}"] = 1 - model_mse / baseline
    return found


def test_baselines_and_skill_equal_a_computation_by_hand() -> None:
    metrics = skill_metrics(2.5, small_split(), target_mean=3.0)
    expected = by_hand(3.0, 2.5)
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-12), key


def test_a_perfect_model_has_skill_one_and_a_mean_model_skill_zero() -> None:
    windows = small_split()
    assert skill_metrics(0.0, windows, 3.0)["skill_vs_mean"] == 1.0
    as_bad = skill_metrics(0.0, windows, 3.0)["baseline_mean_mse"]
    assert skill_metrics(as_bad, windows, 3.0)["skill_vs_mean"] == pytest.approx(0.0)


def test_several_inputs_have_the_mean_baseline_only() -> None:
    windows = small_split()
    windows["encoder_in"] = np.concatenate([windows["encoder_in"]] * 2, axis=2)
    assert set(skill_metrics(1.0, windows, 3.0)) == {"baseline_mean_mse", "skill_vs_mean"}


def test_an_exact_baseline_gives_no_skill_rather_than_a_division_by_zero() -> None:
    windows = small_split()
    windows["target"] = np.full_like(windows["target"], 3.0)
    metrics = skill_metrics(0.5, windows, 3.0)
    assert metrics["baseline_mean_mse"] == 0.0
    assert "skill_vs_mean" not in metrics


def test_a_model_a_naive_forecast_beats_on_validation_says_so_in_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    beaten_by_two = {"free_run_mse": 2.0, "baseline_mean_mse": 1.0, "skill_vs_mean": -1.0,
                     "baseline_input_mse": 0.5, "skill_vs_input": -3.0,
                     "baseline_last_input_mse": 4.0, "skill_vs_last_input": 0.5}
    with caplog.at_level(logging.WARNING):
        warn_if_beaten(beaten_by_two)
    (record,) = caplog.records
    # The strongest baseline is named with the skill against it; the other loss after.
    assert record.message.startswith("on validation the seasonal naive (the input window) "
                                     "forecast beats the model: skill -3 vs input "
                                     "(free-running MSE 2 vs 0.5), and it loses to mean too")
    assert "\n" not in record.message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        warn_if_beaten({"free_run_mse": 0.5, "baseline_mean_mse": 1.0, "skill_vs_mean": 0.5,
                        "baseline_input_mse": 0.6, "skill_vs_input": 0.17})
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        warn_if_beaten({"free_run_mse": 0.5, "baseline_mean_mse": 1.0, "skill_vs_mean": 0.5,
                        "baseline_last_input_mse": 0.4, "skill_vs_last_input": -0.25})
    (record,) = caplog.records
    assert "naive (last value) forecast beats the model: skill -0.25 vs last_input" in (
        record.message)


def test_the_log_line_gives_the_mse_and_the_skill() -> None:
    line = summary("test", {"free_run_mse": 0.25, "teacher_forced_mse": 0.1,
                            "baseline_mean_mse": 1.0, "skill_vs_mean": 0.75})
    assert line == ("test: free-running MSE 0.25, skill 0.75 vs mean (MSE 1); "
                    "teacher-forced MSE 0.1")


def test_streamed_scores_equal_a_direct_computation_over_all_windows() -> None:
    rng = np.random.default_rng(5)
    series = {"x": np.arange(60.0), "input": rng.normal(size=60), "target": rng.normal(size=60)}
    arrays = Windows.cut(series, {**series, "input": series["input"] * 2}, 6, 0.25)
    keras.utils.set_random_seed(2)
    model = build_training_model(6, 4, 0.01, scaling=arrays.scaling_statistics())
    predictor = build_predictor(model)
    # Batches of 7 are cut across windows.
    streamed = score(compiled_call(predictor), compiled_call(model), arrays, batch_size=7)
    mean = float(arrays.scaling_statistics()["target_mean"][0])
    for split in SPLITS:
        windows = arrays.split(split).windows()
        error = keras.ops.convert_to_numpy(predictor(windows["encoder_in"])).astype(
            np.float64) - windows["target"]
        assert streamed[split]["free_run_mse"] == pytest.approx(np.mean(error**2), rel=1e-6)
        assert streamed[split]["free_run_mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-6)
        assert streamed[split]["free_run_max_abs_error"] == pytest.approx(np.abs(error).max())
        forced = keras.ops.convert_to_numpy(model([windows["encoder_in"], windows["decoder_in"]]))
        assert streamed[split]["teacher_forced_mse"] == pytest.approx(
            np.mean((forced.astype(np.float64) - windows["target"]) ** 2), rel=1e-6)
        baseline = np.mean((mean - windows["target"].astype(np.float64)) ** 2)
        assert streamed[split]["baseline_mean_mse"] == pytest.approx(baseline, rel=1e-6)
        assert streamed[split]["skill_vs_mean"] == pytest.approx(
            1 - np.mean(error**2) / baseline, rel=1e-6)


@pytest.mark.parametrize("points", [200, 200_000])
def test_the_prediction_table_stays_bounded_whatever_the_series_length(
        points: int, tiny_params: dict) -> None:
    x = np.arange(float(points))
    series = {"x": x, "input": np.sin(x / 7), "target": np.cos(x / 7)}
    arrays = Windows.cut(series, series, 8, 0.2)
    params = parse_params(tiny_params)  # 8 steps, 8 sample windows, start points 0 and 20
    table = predictions(compiled_call(build_predictor(build_training_model(8, 4, 0.01))),
                        arrays, params)
    per_split = table.groupby("split")["window"].unique()
    assert len(table) <= (3 * params.evaluate.sample_windows + 2) * 8  # rows: window steps
    assert {0, 20} <= set(np.concatenate([per_split["train"], per_split["validation"]]))
    test_windows = sorted(per_split["test"])
    assert len(test_windows) == params.evaluate.sample_windows
    assert (test_windows[0], test_windows[-1]) == (0, points - 9)  # first and last window
