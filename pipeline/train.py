"""Stage `train`: fit the seed's Seq2Seq model and open its MLflow run.

Writes the model, its weights as plain arrays (for evaluate), the per-epoch history (a DVC
plot) and run.json, the id of the MLflow run that `evaluate` and `plot` add to. The run
holds the params, the provenance tags, the loss curves (one step per epoch), and two
logged models with signatures and input examples: `model`, the teacher-forced training
model, and `predictor`, which maps an input window (batch, steps, 1) to its free-running
predicted window (batch, steps, 1).
"""

import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.files import read_arrays, write_json
from pipeline.params import Params, load_params
from pipeline.tables import write_table
from pipeline.window import ARRAY_NAMES

log = logging.getLogger(__name__)


class RunLog(Protocol):
    """What training sends to its run: pipeline.tracking.Run, or nothing in the benchmark."""

    def log_params(self, values: Mapping[str, Any]) -> None: ...

    def log_metrics(self, series: Iterable[tuple[str, float, int]]) -> None: ...

    def log_model(self, path: Path, name: str, example: Mapping[str, np.ndarray] | np.ndarray,
                  description: Mapping[str, Any]) -> int: ...


def history_metrics(history: pd.DataFrame) -> list[tuple[str, float, int]]:
    """Return loss and val_loss per epoch as (key, value, step = epoch)."""
    return [(key, row[key], int(row["epoch"]))
            for row in history.to_dict("records") for key in ("loss", "val_loss")]


def train_and_log(params: Params, arrays: dict[str, np.ndarray], run: RunLog,
                  scratch: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fit; write the model and history; send each to `run` as soon as it is written.

    Returns the history and the requests whose results are the logged models' URIs.
    """
    from pipeline import fitting  # noqa: PLC0415 - TensorFlow: the caller started the agent

    run.log_params(params.flat(paths.STAGES["train"].params))
    model, history = fitting.fit(arrays, params)
    fitting.save_model(model, params.model.cell)
    model_example, predictor_example = fitting.examples(arrays)
    logging_model = run.log_model(paths.MODEL, "model", model_example,
                                  fitting.describe_model(model))
    predictor_path = scratch / "predictor.keras"
    predictor = fitting.save_predictor(model, predictor_path)
    logging_predictor = run.log_model(predictor_path, "predictor", predictor_example,
                                      fitting.describe_model(predictor))
    write_table(history, paths.HISTORY)
    run.log_metrics(history_metrics(history))
    return history, {"model_uri": logging_model, "predictor_uri": logging_predictor}


def main() -> None:
    """Train, save the model and history, and record everything in a new MLflow run."""
    params = load_params()
    arrays = read_arrays(paths.WINDOWS, ARRAY_NAMES)
    link = tracking.prepare_models()  # before TensorFlow's import, which it overlaps
    with tracking.new_run(params.tracking.experiment, link) as run, \
            tempfile.TemporaryDirectory() as scratch:
        history, models = train_and_log(params, arrays, run, Path(scratch))
        write_json({"run_id": run.run_id, "experiment_id": run.experiment_id,
                    **{key: run.result(request) for key, request in models.items()}},
                   paths.RUN)
    last = history.iloc[-1]
    log.info("trained %d epochs: loss %.3g, val_loss %.3g", len(history), last["loss"],
             last["val_loss"])


if __name__ == "__main__":
    run_stage(main)
