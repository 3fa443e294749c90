"""A user's CSV with several input columns and with gaps (`generate.csv.missing`)."""

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run, write_params
from test_own_series import OWN, own_params, write_csv

from pipeline.errors import InputError
from pipeline.paths import TEST_SERIES, TRAIN_SERIES, WINDOWS
from pipeline.stages import generate, window
from pipeline.windows import Windows


def two_inputs(rows: int = 60) -> pd.DataFrame:
    """Return a series whose target y answers two drivers, u and v."""
    time = np.arange(rows) * 0.5
    return pd.DataFrame({"time": time, "u": np.sin(time), "v": 10 * np.cos(time / 2),
                         "y": np.sin(time + 1) + 0.1 * np.cos(time / 2)})


def generated(folder: Path) -> pd.DataFrame:
    """Return the training and test series generate wrote, end to end."""
    return pd.concat([pd.read_csv(folder / TRAIN_SERIES), pd.read_csv(folder / TEST_SERIES)],
                     ignore_index=True)


def test_several_input_columns_reach_the_encoder_as_k_features(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params, input=["v", "u"]))
    series = two_inputs()
    write_csv(tmp_path, series.to_csv(index=False))
    generate.main()
    assert list(generated(tmp_path).columns) == ["x", "input.v", "input.u", "target"]
    window.main()
    arrays = Windows.read(WINDOWS)
    for split, rows in (("train", series[:40]), ("test", series[40:])):
        windows = arrays.split(split).windows()
        inputs = rows[["v", "u"]].to_numpy()
        expected = np.stack([inputs[start:start + 8] for start in windows["start"]])
        np.testing.assert_array_equal(windows["encoder_in"], expected.astype(np.float32))


def with_gaps() -> pd.DataFrame:
    """Return the two-input series with empty cells in data rows 4 (u), 11 (y), 30 (time)."""
    series = two_inputs()
    series.loc[3, "u"] = series.loc[10, "y"] = series.loc[29, "time"] = np.nan
    return series


def test_missing_drop_removes_the_rows_with_gaps(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params, input=["u", "v"], missing="drop"))
    write_csv(tmp_path, with_gaps().to_csv(index=False))
    generate.main()
    kept = two_inputs().drop(index=[3, 10, 29])
    np.testing.assert_array_equal(generated(tmp_path)["x"], kept["time"])
    np.testing.assert_array_equal(generated(tmp_path)["input.u"], kept["u"])
    assert len(pd.read_csv(tmp_path / TEST_SERIES)) == 20


def test_missing_interpolate_fills_gaps_linearly_in_x(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params, input=["u", "v"], missing="interpolate"))
    series = with_gaps()
    series.loc[4, "time"] = 1.9  # uneven x around a gap: interpolation is in x, not by row
    write_csv(tmp_path, series.to_csv(index=False))
    generate.main()
    filled = generated(tmp_path)
    assert len(filled) == 60 and not filled.isna().any(axis=None)
    assert filled.loc[29, "x"] == pytest.approx((series.loc[28, "time"] +
                                                 series.loc[30, "time"]) / 2)
    weight = (series.loc[3, "time"] - series.loc[2, "time"]) / (series.loc[4, "time"] -
                                                                series.loc[2, "time"])
    assert filled.loc[3, "input.u"] == pytest.approx(
        series.loc[2, "u"] + weight * (series.loc[4, "u"] - series.loc[2, "u"]))
    assert filled.loc[10, "target"] == pytest.approx((series.loc[9, "y"] +
                                                      series.loc[11, "y"]) / 2)
    untouched = series.notna().all(axis=1).to_numpy()
    np.testing.assert_array_equal(filled["input.v"][untouched], series["v"][untouched])


def test_missing_error_names_the_first_gap_from_the_top(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params, input=["u", "v"]))
    write_csv(tmp_path, with_gaps().to_csv(index=False))
    with pytest.raises(InputError, match=r"column 'u' has an empty or NaN value in data "
                                         r"row 4; set generate.csv.missing to drop"):
        generate.main()


EDGE_GAP = two_inputs().assign(v=lambda table: table["v"].where(table.index != 59))
BAD_INPUTS = [
    ({"input": ["u", "nope"]}, two_inputs(), "missing column(s) nope; found time, u, v, y"),
    ({"input": ["u", "v"]}, two_inputs().assign(v="high"),
     "column 'v' has text, 'high', in data row 1; every cell must be a number (or empty)"),
    ({"input": ["u", "v"], "missing": "interpolate"}, EDGE_GAP,
     "column 'v' has a gap in data row 60, at the edge: generate.csv.missing = interpolate "
     "fills only gaps between two values; use drop"),
]


@pytest.mark.parametrize(("csv", "table", "message"), BAD_INPUTS,
                         ids=["unknown-column", "text-column", "gap-at-the-edge"])
def test_a_bad_input_gets_one_line_and_changes_nothing(
        tmp_path: Path, tiny_params: dict[str, Any], csv: dict[str, Any],
        table: pd.DataFrame, message: str) -> None:
    command = [sys.executable, "-m", "pipeline.stages.generate"]
    write_params(tmp_path, own_params(tiny_params, input=["u", "v"]))
    write_csv(tmp_path, two_inputs().to_csv(index=False))
    run(command, tmp_path)
    before = {path: (tmp_path / path).read_bytes() for path in (TRAIN_SERIES, TEST_SERIES)}
    write_params(tmp_path, own_params(tiny_params, **csv))
    write_csv(tmp_path, table.to_csv(index=False))
    done = run(command, tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert line.endswith(f"error: {OWN}: {message}")
    assert {path: (tmp_path / path).read_bytes() for path in before} == before


def test_the_sunspot_example_reads_as_the_readme_says(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sunspots.csv"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "examples").mkdir(parents=True)
    (tmp_path / "docs" / "examples" / "sunspots.csv").write_bytes(example.read_bytes())
    params = own_params(tiny_params, test_rows=60, path="docs/examples/sunspots.csv", x="year",
                        input="sunspots", target="sunspots_in_11_years", missing="drop")
    write_params(tmp_path, params)
    generate.main()
    train, test = pd.read_csv(TRAIN_SERIES), pd.read_csv(TEST_SERIES)
    assert (len(train), len(test)) == (238, 60)  # 309 years, the last 11 without a target
    assert (train["x"].iloc[0], test["x"].iloc[0], test["x"].iloc[-1]) == (1700, 1938, 1997)
    assert train["input"].max() <= test["input"].max() == pytest.approx(190.2)
    np.testing.assert_array_equal(train["target"][:-11], train["input"][11:])


def test_start_points_outside_a_csvs_training_windows_stop_generate_before_any_work(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    raw = own_params(tiny_params, input=["u", "v"])
    write_params(tmp_path, {**raw, "plot": {**raw["plot"], "start_points": [0, 500]}})
    write_csv(tmp_path, two_inputs().to_csv(index=False))
    with pytest.raises(InputError, match=r"plot.start_points \[500\] are not training windows "
                                         r"of its \d+ training rows \(0\.\.\d+\)"):
        generate.main()
    assert not (tmp_path / TRAIN_SERIES).exists()
