"""Stage `generate`: sample the input and target signals into two tables.

The training series is the seed's `x = linspace(-3π, 3π, 100)`, input sin(x), target
cos(x); the test series uses the same functions over an x range the model never sees.
NumPy and pandas only: this stage must not import TensorFlow or MLflow.
"""

import logging

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.files import write_table
from pipeline.params import GenerateParams, load_params
from pipeline.signals import SIGNALS

log = logging.getLogger(__name__)


def make_series(points: int, start_pi: float, stop_pi: float, input_name: str,
                target_name: str) -> pd.DataFrame:
    """Return columns x, input, target over `points` samples of [start_pi·π, stop_pi·π]."""
    x = np.linspace(start_pi * np.pi, stop_pi * np.pi, points)
    return pd.DataFrame({"x": x, "input": SIGNALS[input_name](x),
                         "target": SIGNALS[target_name](x)})


def make_train_and_test(params: GenerateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the training series and the held-out test series."""
    train = make_series(params.points, params.x_start_pi, params.x_stop_pi,
                        params.input, params.target)
    test = make_series(params.test_points, params.test_x_start_pi, params.test_x_stop_pi,
                       params.input, params.target)
    return train, test


def main() -> None:
    """Write data/series/train.csv and test.csv."""
    params = load_params()
    train, test = make_train_and_test(params.generate)
    write_table(train, paths.TRAIN_SERIES)
    write_table(test, paths.TEST_SERIES)
    log.info("wrote %d training and %d test points", len(train), len(test))


if __name__ == "__main__":
    run_stage(main)
