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
from pipeline.data import sample_series
from pipeline.io import write_table
from pipeline.params import GenerateParams, load_params

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


def main() -> None:
    """Write data/series/train.csv and test.csv."""
    params = load_params()
    train, test = make_train_and_test(params.generate)
    write_table(train, paths.TRAIN_SERIES)
    write_table(test, paths.TEST_SERIES)
    log.info("wrote %d training and %d test points", len(train), len(test))


if __name__ == "__main__":
    run_stage(main)
