"""Stage `train`: fit the Seq2Seq model with Keras' `fit`, tracked in an MLflow run; write
both models, the history and run.json.
"""

from pipeline.backend import keras

import logging
import os
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from pipeline import paths, resume
from pipeline.cli import run_stage
from pipeline.files import atomic_path, write_table
from pipeline.model import (
    DECODER_IN,
    ENCODER_IN,
    build_predictor,
    build_training_model,
    free_running_trainer,
)
from pipeline.params import Params, load_params
from pipeline.progress import EpochProgress
from pipeline.tracking import logged, provenance, registry, run_data, runs
from pipeline.tracking.images import PredictionImages
from pipeline.tracking.run_record import RunRecord
from pipeline.training import (
    StopWhenAsked,
    distribution,
    early_stopping,
    fit,
    steps_per_execution,
)
from pipeline.windows import Windows

log = logging.getLogger(__name__)

# The series file each split's windows are cut from: the source of its MLflow dataset.
SERIES_OF = {"train": paths.TRAIN_SERIES, "validation": paths.TRAIN_SERIES,
             "test": paths.TEST_SERIES}


def logged_history(run_id: str) -> pd.DataFrame:
    """Return loss and val_loss per epoch as the run holds them (a resumed training's too)."""
    loss, val_loss = (run_data.metric_by_step(run_id, key) for key in ("loss", "val_loss"))
    epochs = sorted(loss)
    return pd.DataFrame({"epoch": epochs, "loss": [loss[epoch] for epoch in epochs],
                         "val_loss": [val_loss.get(epoch, np.nan) for epoch in epochs]})


def train_model(params: Params, windows: Windows,
                callbacks: list[keras.callbacks.Callback]
                ) -> tuple[keras.Model, keras.Model, keras.callbacks.History]:
    """Build a seeded model and fit it; return it, the network `fit` trained (it, or its
    predictor for free-running decoding) and Keras' History."""
    params = params.used()  # `auto` values as they apply to this source
    keras.utils.set_random_seed(params.train.seed)
    strategy = distribution(params.train.devices)
    # Keras' multi-step loop fails under MirroredStrategy (TensorFlow 2.21: "You must feed
    # a value for placeholder tensor"): one batch per call there.
    batches_per_call = 1 if strategy.num_replicas_in_sync > 1 else steps_per_execution(
        windows.train.count, params.train.batch_size)
    with strategy.scope():  # the model's variables on every device used
        model = build_training_model(
            params.window.steps, params.model.units, params.train.learning_rate,
            params.model.cell, inputs=windows.inputs, steps_per_execution=batches_per_call,
            scaling=scaling_of(params, windows),
            residual=params.model.residual, attention=params.model.attention,
            loss=params.train.loss)
        fitted = (free_running_trainer(model) if params.train.decoding == "free_running"
                  else model)
    return model, fitted, fit(fitted, windows.train.stretch, windows.validation.stretch,
                              params.train, callbacks)


def scaling_of(params: Params, windows: Windows) -> dict[str, np.ndarray] | str | None:
    """Return `build_training_model`'s scaling: training statistics, "window" or None."""
    scaling = params.model.scaling
    if scaling == "standard":  # the statistics only when used: a pass over the whole split
        return windows.scaling_statistics()
    return None if scaling == "none" else scaling


def save(model: keras.Model, predictor: keras.Model, history: pd.DataFrame) -> None:
    """Write both models and the history, each atomically."""
    for network, path in ((model, paths.MODEL), (predictor, paths.PREDICTOR)):
        with atomic_path(path) as tmp:
            network.save(tmp)
    write_table(history, paths.HISTORY)


def log_models(model: keras.Model, predictor: keras.Model, windows: Windows,
               registered_model: str) -> dict[str, str]:
    """Log both models and register the predictor; return what run.json records of them."""
    examples = windows.validation.windows(slice(0, 2))
    encoder_in, decoder_in = examples["encoder_in"], examples["decoder_in"]
    trained = logged.log_keras_model(model, "model",
                                     {ENCODER_IN: encoder_in, DECODER_IN: decoder_in})
    served = logged.log_keras_model(predictor, "predictor", encoder_in, registered_model)
    return {"model_uri": trained.model_uri, "predictor_uri": served.model_uri,
            "registered_model": registered_model,
            "model_version": str(served.registered_model_version)}


def main() -> None:
    """Train, save and track: in a new run, or in the run of a killed training this one resumes."""
    params = load_params()
    windows = Windows.read(paths.WINDOWS)
    keras.config.disable_interactive_logging()  # no progress bars in DVC's log...
    logging.getLogger("absl").setLevel(logging.WARNING)  # ...nor from MLflow's predict()
    backup = resume.backup_folder(params)
    choice = runs.choose("train", params.tracking.experiment, resume.recorded_run(backup))
    resumed = choice.kind == "resumed"
    if not resumed:  # nothing to resume, or its run is gone: the backup is stale
        resume.remove(backup)
    with runs.opened(choice) as run:
        run_id = run.info.run_id
        resume.record_run(backup, run_id, choice.resumes)
        if not resumed:
            start_records(params, windows)
        done = frozenset(run_data.metric_by_step(run_id, "loss")) if resumed else frozenset()
        images = PredictionImages(windows, params.train.epochs, params.train.prediction_images,
                                  done)
        stopping = early_stopping(params.used().train)
        started = time.perf_counter()
        model, fitted, _ = train_model(params, windows, [
            *([stopping] if stopping else []), logged.EpochMetrics(done),
            EpochProgress(params.train.epochs), images, *stop_requests(),
            # Last: it backs up the state the others have left after each epoch.
            resume.TrainingBackup(backup, params.train.backup_seconds,
                                  mlflow.flush_async_logging, stopping)])
        mlflow.log_metric(run_data.FIT_SECONDS, time.perf_counter() - started)
        history = logged_history(run_id)
        # The images' predictor shares the model's layers: building it again costs seconds.
        predictor = (fitted if fitted is not model
                     else images.predictor or build_predictor(model))
        save(model, predictor, history)
        RunRecord(run_id, run.info.experiment_id,
                  **log_models(model, predictor, windows, params.tracking.registered_model)
                  ).write()
    resume.remove(backup)
    last = history.iloc[-1]
    log.info("trained %d epochs: loss %.3g, val_loss %.3g", len(history), last["loss"],
             last["val_loss"])


def stop_requests() -> list[keras.callbacks.Callback]:
    """Return the callback that ends training when a tuning study prunes this trial."""
    stop_file = os.environ.get(provenance.STOP_ENV)
    return [StopWhenAsked(Path(stop_file))] if stop_file else []


def start_records(params: Params, windows: Windows) -> None:
    """Log a new run's params (`used.<key>`: what each `auto` stood for) and datasets."""
    run_data.log_params({**params.flat(paths.STAGES["train"].params),
                         **{f"used.{key}": value for key, value in params.resolved().items()}})
    mlflow.set_tag(registry.DATA_TAG, registry.data_digest(params))  # what champion compares
    for split in windows.splits():
        logged.log_dataset(split.name, split.stretch, SERIES_OF[split.name])


if __name__ == "__main__":
    run_stage(main)
