"""Stage `generate`: the training and held-out test series, sampled from the seed's
functions or read from the user's CSV (last `test_rows` held out, gaps as `missing`
says). No TensorFlow or MLflow.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.data import input_names, sample_series
from pipeline.errors import InputError
from pipeline.files import read_table, write_table
from pipeline.params import CsvParams, GenerateParams, Params, load_params
from pipeline.windows import split_sizes, starts_outside, window_count

log = logging.getLogger(__name__)


def make_series(params: GenerateParams, points: int, start_pi: float, stop_pi: float,
                noise: np.random.Generator) -> pd.DataFrame:
    """Return columns x, input, target over `points` samples of [start_pi·π, stop_pi·π]."""
    x = np.linspace(start_pi * np.pi, stop_pi * np.pi, points)
    # No draw at all when off, so the seed's series stay exact.
    drawn = noise.normal(0.0, params.noise_std, points) if params.noise_std > 0 else None
    return pd.DataFrame(sample_series(params.input, params.target, x, params.target_phase_pi,
                                      drawn))


def make_train_and_test(params: GenerateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the training series and the held-out test series."""
    # Separate noise streams, so resizing the test series leaves the training noise alone.
    train_noise, test_noise = (np.random.default_rng([params.noise_seed, stream])
                               for stream in (0, 1))
    return (make_series(params, params.points, params.x_start_pi, params.x_stop_pi,
                        train_noise),
            make_series(params, params.test_points, params.test_x_start_pi,
                        params.test_x_stop_pi, test_noise))


def read_own_series(csv: CsvParams) -> pd.DataFrame:
    """Return the CSV's x, input(s) and target: gaps handled, values finite, x increasing;
    index = data row - 1."""
    path = Path(csv.path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (generate.csv.path); put your series there "
                         f"and track it with `dvc add {path}`")
    used = list(dict.fromkeys((csv.x, *csv.inputs, csv.target)))
    table = fill_gaps(read_table(path, used)[used].astype(np.float64), csv)
    for column in used:
        infinite = np.flatnonzero(np.isinf(table[column].to_numpy()))
        if infinite.size:
            raise InputError(f"{path}: column {column!r} has an infinite value in data row "
                             f"{table.index[infinite[0]] + 1}")
    check_increasing(table, csv.x, path)
    names = {"x": csv.x, **dict(zip(input_names(csv.inputs), csv.inputs, strict=True)),
             "target": csv.target}
    return pd.DataFrame({name: table[column] for name, column in names.items()})


def check_increasing(table: pd.DataFrame, x: str, path: Path | str) -> None:
    """Fail naming the first data row whose x is not above the previous row's."""
    unsorted = np.flatnonzero(np.diff(table[x].to_numpy()) <= 0)
    if unsorted.size:
        raise InputError(f"{path}: column {x!r} (x) must increase from row to row; data "
                         f"row {table.index[unsorted[0] + 1] + 1} does not")


def fill_gaps(table: pd.DataFrame, csv: CsvParams) -> pd.DataFrame:
    """Return `table` with its gaps handled as `generate.csv.missing` says (error, drop,
    interpolate)."""
    gaps = table.isna()
    if not gaps.any(axis=None):
        return table
    if csv.missing == "drop":
        log.info("dropped %d of %d rows with an empty or NaN value (generate.csv.missing = "
                 "drop)", gaps.any(axis=1).sum(), len(table))
        return table[~gaps.any(axis=1)]
    if csv.missing == "error":
        row = int(gaps.any(axis=1).to_numpy().argmax())  # the first row with a gap
        column = gaps.columns[gaps.iloc[row].to_numpy().argmax()]
        raise InputError(f"{csv.path}: column {column!r} has an empty or NaN value in data "
                         f"row {row + 1}; set "
                         f"generate.csv.missing to drop or interpolate to accept gaps")
    return interpolate(table, gaps, csv)


def interpolate(table: pd.DataFrame, gaps: pd.DataFrame, csv: CsvParams) -> pd.DataFrame:
    """Return `table` with each inner gap filled linearly (x by row, others in x); an edge
    gap is an error."""
    edges = gaps.iloc[[0, -1]].any()
    if edges.any():
        column = edges.idxmax()
        row = 1 if gaps[column].iloc[0] else len(table)
        raise InputError(f"{csv.path}: column {column!r} has a gap in data row {row}, at the "
                         f"edge: generate.csv.missing = interpolate fills only gaps between "
                         f"two values; use drop")
    log.info("interpolated %d empty or NaN values (generate.csv.missing = interpolate)",
             gaps.to_numpy().sum())
    filled = table.copy()
    filled[csv.x] = filled[csv.x].interpolate(method="linear")
    check_increasing(filled, csv.x, csv.path)
    x = filled[csv.x].to_numpy()
    for column in filled.columns.drop(csv.x):
        missing = gaps[column].to_numpy()
        filled.loc[missing, column] = np.interp(x[missing], x[~missing],
                                                filled[column].to_numpy()[~missing])
    return filled


def split_own_series(series: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (training, test) rows, or fail if either is too short for its windows or a
    plotted start is no training window."""
    csv, window = params.generate.csv, params.window
    rows, steps, path = len(series), window.steps, csv.path
    train_rows = rows - csv.test_rows
    fit, validation = split_sizes(max(window_count(train_rows, steps), 0),
                                  window.validation_fraction)
    if fit < 1 or validation < 1:
        raise InputError(f"{path}: {rows} rows leave {max(train_rows, 0)} for training after "
                         f"generate.csv.test_rows = {csv.test_rows}: too few rows for one "
                         f"{steps}-step window on each side of the validation split")
    if window_count(csv.test_rows, steps) < 1:
        raise InputError(f"{path}: its last {csv.test_rows} rows (generate.csv.test_rows) are "
                         f"too few rows for one {steps}-step test window")
    outside = starts_outside(params.plot.start_points, train_rows, steps)
    if outside:
        raise InputError(f"{path}: plot.start_points {outside} are not training windows of its "
                         f"{train_rows} training rows (0..{window_count(train_rows, steps) - 1})")
    return (series.iloc[:train_rows].reset_index(drop=True),
            series.iloc[train_rows:].reset_index(drop=True))


def main() -> None:
    """Write data/series/train.csv and test.csv."""
    params = load_params()
    if params.generate.source == "csv":
        train, test = split_own_series(read_own_series(params.generate.csv), params)
    else:
        train, test = make_train_and_test(params.generate)
    write_table(train, paths.TRAIN_SERIES)
    write_table(test, paths.TEST_SERIES)
    log.info("wrote %d training and %d test points", len(train), len(test))


if __name__ == "__main__":
    run_stage(main)
