"""The figures stay readable and cheap at any series length."""

import numpy as np
import pandas as pd

from pipeline.figures import (
    MAX_DRAWN_POINTS,
    new_predictions,
    pixels,
    predictions_figure,
    series_figure,
)


def series(points: int) -> pd.DataFrame:
    x = np.linspace(0.0, 100.0, points)
    return pd.DataFrame({"x": x, "input": np.sin(x), "target": np.cos(x)})


def test_a_short_series_is_drawn_point_for_point() -> None:
    axes = series_figure(series(100)).axes[0]
    assert [len(line.get_xdata()) for line in axes.lines] == [100, 100]
    assert not axes.collections


def test_a_long_series_is_drawn_as_its_range_per_bin() -> None:
    long = series(100_003)  # not a multiple of the bin count
    axes = series_figure(long).axes[0]
    assert not axes.lines
    target_band = axes.collections[1]
    low_high = target_band.get_paths()[0].vertices[:, 1]
    bins = MAX_DRAWN_POINTS // 2
    assert len(low_high) <= 2 * bins + 3  # the band's outline: one point per bin each way
    # Bins of consecutive points, as equal as integers allow: min and max of each, by hand.
    chunks = np.split(long["target"].to_numpy(), np.arange(1, bins) * len(long) // bins)
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
    expected = np.concatenate([[chunk.min() for chunk in chunks],
                               [chunk.max() for chunk in chunks]])
    np.testing.assert_allclose(np.unique(low_high), np.unique(expected))
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [
        "input (range per bin)", "target (range per bin)"]


def prediction_rows(starts: list[int], values: np.ndarray) -> pd.DataFrame:
    """Return predictions as evaluate writes them: each start window's 5 steps."""
    steps = values.shape[1]
    return pd.DataFrame({"window": np.repeat(starts, steps),
                         "step": np.tile(np.arange(steps), len(starts)),
                         "x": (np.array(starts)[:, None] + np.arange(steps)).ravel() * 0.1,
                         "prediction": values.ravel()})


def test_a_predictions_figure_drawn_again_shows_the_new_predictions_only() -> None:
    starts, rng = [0, 10, 20], np.random.default_rng(4)
    first, later = rng.normal(size=(3, 5)), 3 + rng.normal(size=(3, 5))  # off the old scale
    figure = predictions_figure(series(300), prediction_rows(starts, first), tuple(starts))
    before = pixels(figure, 40)
    new_predictions(figure, later, "later")
    axes = figure.axes[0]
    red = [line for line in axes.lines if line.get_color() == "red"]
    assert [list(line.get_ydata()) for line in red] == later.tolist()
    assert axes.get_title() == "later"
    assert axes.get_ylim()[1] >= later.max()  # rescaled to the new values
    fresh = predictions_figure(series(300), prediction_rows(starts, later), tuple(starts))
    assert [list(line.get_ydata()) for line in fresh.axes[0].lines] == [
        list(line.get_ydata()) for line in axes.lines]  # as if drawn anew
    assert pixels(figure, 40, layout=False).shape == before.shape


def test_a_redrawn_figure_keeps_a_long_targets_band_in_view() -> None:
    starts = [0, 5000]
    figure = predictions_figure(series(10_000), prediction_rows(starts, np.ones((2, 5))),
                                tuple(starts))
    axes = figure.axes[0]
    assert axes.collections  # the target is drawn as its band
    new_predictions(figure, np.full((2, 5), 0.1), "later")  # well inside the band
    low, high = axes.get_ylim()
    assert low <= -0.99 and high >= 0.99  # the cosine's whole range still shows
