"""Stage `generate`: the training and held-out test series, as two tables.

By default it samples functions: the seed's `x = linspace(-3π, 3π, 100)`, input sin(x),
target cos(x), and a test series over an x range the model never sees. With
`generate.source: csv` it reads the user's own series from a CSV instead, its last
`test_rows` rows held out for test, and checks it fits the windows before writing
anything. NumPy and pandas only: this stage must not import TensorFlow or MLflow.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.data import SERIES_COLUMNS, sample_series, split_sizes, window_count
from pipeline.errors import InputError
from pipeline.io import read_table, write_table
from pipeline.params import CsvParams, GenerateParams, WindowParams, load_params

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
    """Return the CSV's x, input and target columns, checked finite and sorted by x."""
    path = Path(csv.path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (generate.csv.path); put your series there "
                         f"and track it with `dvc add {path}`")
    names = dict(zip(SERIES_COLUMNS, (csv.x, csv.input, csv.target), strict=True))
    table = read_table(path, list(dict.fromkeys(names.values())))
    for column in dict.fromkeys(names.values()):
        bad = np.flatnonzero(~np.isfinite(table[column].to_numpy(dtype=np.float64)))
        if bad.size:
            raise InputError(f"{path}: column {column!r} has an empty, NaN or infinite value "
                             f"in data row {bad[0] + 1}")
    unsorted = np.flatnonzero(np.diff(table[csv.x].to_numpy(dtype=np.float64)) <= 0)
    if unsorted.size:
        raise InputError(f"{path}: column {csv.x!r} (x) must increase from row to row; data "
                         f"row {unsorted[0] + 2} does not")
    return pd.DataFrame({name: table[column] for name, column in names.items()})


def split_own_series(series: pd.DataFrame, csv: CsvParams,
                     window: WindowParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (training, test) rows, or fail if either is too short for its windows."""
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
    return (series.iloc[:train_rows].reset_index(drop=True),
            series.iloc[train_rows:].reset_index(drop=True))


def main() -> None:
    """Write data/series/train.csv and test.csv."""
    params = load_params()
    if params.generate.source == "csv":
        train, test = split_own_series(read_own_series(params.generate.csv),
                                       params.generate.csv, params.window)
    else:
        train, test = make_train_and_test(params.generate)
    write_table(train, paths.TRAIN_SERIES)
    write_table(test, paths.TEST_SERIES)
    log.info("wrote %d training and %d test points", len(train), len(test))


if __name__ == "__main__":
    run_stage(main)
