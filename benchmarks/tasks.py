"""Measurements the benchmark runs one per process, so each gets its own peak memory.

`python -m benchmarks.tasks NAME REPO NUMBER` runs task NAME against the pipeline outputs
in REPO and prints its figures as one JSON line. Heavy imports happen inside each task.
"""

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import paths
from pipeline.data import sample_series
from pipeline.windows import Windows

STEPS, UNITS = 24, 10  # the seed's; the benchmark runs on default params


def _split(arrays: Windows, name: str) -> tuple[np.ndarray, ...]:
    windows = arrays.split(name).windows()
    return windows["encoder_in"], windows["decoder_in"], windows["target"]


def _repo_arrays(repo: Path) -> Windows:
    return Windows.read(repo / paths.WINDOWS)


def _epoch_timer() -> Any:
    """Return a Keras callback that records each epoch's wall seconds in `.seconds`."""
    import keras  # noqa: PLC0415

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def _seed_style_fit(arrays: Windows, seed: int, epochs: int,
                    batch_size: int) -> dict[str, Any]:
    """Time the seed's `fit` on NumPy arrays with validation_split=0.2."""
    import keras  # noqa: PLC0415 - timed tasks import TensorFlow only when they run

    from benchmarks.seed_reference import build_seed_models  # noqa: PLC0415

    ex, dx, dy = (np.concatenate([a, b]) for a, b in
                  zip(_split(arrays, "train"), _split(arrays, "validation"), strict=True))
    keras.utils.set_random_seed(seed)
    model_train, model_pred_e, pred_d_model = build_seed_models(STEPS, UNITS)
    timer, start = _epoch_timer(), time.perf_counter()
    history = model_train.fit([ex, dx], dy, batch_size=batch_size, epochs=epochs,
                              validation_split=0.2, verbose=0, callbacks=[timer])
    seconds = time.perf_counter() - start
    encoder_in, _, target = _split(arrays, "test")
    # The seed's decode, one step at a time, but all test windows in each call.
    state, step_in, outputs = model_pred_e.predict(encoder_in, verbose=0), np.zeros_like(
        encoder_in[:, :1]), []
    for _ in range(STEPS):
        step_in, state = pred_d_model.predict([step_in, state], verbose=0)
        outputs.append(step_in[:, 0])
    return {"seconds": seconds, "val_loss": history.history["val_loss"][-1],
            "epoch_seconds": timer.seconds,
            "test_free_run_mse": float(np.mean((np.stack(outputs, 1) - target) ** 2))}


def _project_fit(arrays: Windows, seed: int, epochs: int,
                 batch_size: int) -> dict[str, Any]:
    """Time the train stage's model and `fit` (windows streamed from the series) on the
    same windows and split."""
    import keras  # noqa: PLC0415

    from pipeline.model import (  # noqa: PLC0415
        build_predictor,
        build_training_model,
    )
    from pipeline.params import TrainParams  # noqa: PLC0415
    from pipeline.training import fit, steps_per_execution  # noqa: PLC0415

    train, validation = arrays.split("train").stretch, arrays.split("validation").stretch
    keras.utils.set_random_seed(seed)
    model = build_training_model(STEPS, UNITS, 0.001, "simple_rnn",
                                 steps_per_execution=steps_per_execution(
                                     arrays.split("train").count, batch_size))
    params = TrainParams(epochs=epochs, batch_size=batch_size, learning_rate=0.001, seed=seed,
                         devices=1, backup_seconds=10, prediction_images=0,
                         early_stopping_patience=0, loss="mse", decoding="teacher_forcing")
    timer, start = _epoch_timer(), time.perf_counter()
    history = fit(model, train, validation, params, [timer])
    seconds = time.perf_counter() - start
    encoder_in, _, target = _split(arrays, "test")
    predicted = build_predictor(model).predict(encoder_in, verbose=0)
    return {"seconds": seconds, "val_loss": history.history["val_loss"][-1],
            "epoch_seconds": timer.seconds,
            "test_free_run_mse": float(np.mean((predicted - target) ** 2))}


def seed_fit(repo: Path, seed: int) -> dict[str, Any]:
    """The seed's 80 epochs at batch 16 on the repo's windows."""
    return _seed_style_fit(_repo_arrays(repo), seed, 80, 16)


def project_fit(repo: Path, seed: int) -> dict[str, Any]:
    """The project's 80 epochs at batch 16 on the repo's windows."""
    return _project_fit(_repo_arrays(repo), seed, 80, 16)


def _scale_arrays(points: int) -> Windows:
    """Windows of a sin→cos series of `points` points with the seed's spacing."""
    x = np.arange(points) * (6 * np.pi / 99)
    series = sample_series("sin", "cos", x)
    return Windows.cut(series, series, STEPS, 0.2)


def _per_epoch(fit: Callable[..., dict[str, Any]], code: int) -> dict[str, Any]:
    """Seconds per epoch at scale: the median of epochs 2 and 3 (the first one traces)."""
    points, batch_size = divmod(code, 1000)
    epochs = fit(_scale_arrays(points), 0, 3, batch_size)["epoch_seconds"]
    return {"seconds": float(np.median(epochs[1:]))}


def seed_scale(_: Path, code: int) -> dict[str, Any]:
    """Seed-style `fit` per epoch; `code` = points * 1000 + batch size."""
    return _per_epoch(_seed_style_fit, code)


def project_scale(_: Path, code: int) -> dict[str, Any]:
    """The project's `fit` per epoch; `code` = points * 1000 + batch size."""
    return _per_epoch(_project_fit, code)


def _evaluated_windows(repo: Path) -> np.ndarray:
    """Return the encoder inputs of every split: the windows evaluate decodes."""
    arrays = _repo_arrays(repo)
    return np.concatenate([arrays.split(split).windows()["encoder_in"]
                           for split in ("train", "validation", "test")])


def seed_decode(repo: Path, limit: int) -> dict[str, Any]:
    """Time TensorFlow's import and the seed's per-step loop over the evaluated windows."""
    start = time.perf_counter()
    from benchmarks.seed_reference import build_seed_models, seed_predict  # noqa: PLC0415

    imported = time.perf_counter() - start
    _, model_pred_e, pred_d_model = build_seed_models(STEPS, UNITS)
    windows = _evaluated_windows(repo)
    sample = windows[:limit] if limit else windows
    start = time.perf_counter()
    for index in range(len(sample)):
        seed_predict(model_pred_e, pred_d_model, sample[index:index + 1], STEPS)
    per_window = (time.perf_counter() - start) / len(sample)
    return {"import_seconds": imported, "per_window": per_window, "sampled": len(sample),
            "windows": len(windows)}


def project_decode(repo: Path, _: int) -> dict[str, Any]:
    """Time the saved predictor's batched decode of the same windows, once traced."""
    from pipeline.model import load_model  # noqa: PLC0415

    windows = _evaluated_windows(repo)
    predictor = load_model(repo / paths.PREDICTOR)
    predictor.predict(windows, batch_size=1024, verbose=0)
    start = time.perf_counter()
    predictor.predict(windows, batch_size=1024, verbose=0)
    return {"per_window": (time.perf_counter() - start) / len(windows)}


def seed_script(_: Path, __: int) -> dict[str, Any]:
    """Run the seed notebook end to end: import, data, fit, decode 4 windows."""
    from benchmarks.seed_reference import (  # noqa: PLC0415
        build_seed_models,
        seed_fit,
        seed_predict,
        seed_windows,
    )

    x = np.linspace(-3 * np.pi, 3 * np.pi, 100)
    ex, dx, dy = seed_windows(np.sin(x), np.cos(x), STEPS)
    model_train, model_pred_e, pred_d_model = build_seed_models(STEPS, UNITS)
    seed_fit(model_train, ex, dx, dy)
    for point in (0, 24, 49, 74):
        seed_predict(model_pred_e, pred_d_model, ex[point:point + 1], STEPS)
    return {}


TASKS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "seed-fit": seed_fit, "project-fit": project_fit, "seed-scale": seed_scale,
    "project-scale": project_scale, "seed-decode": seed_decode,
    "project-decode": project_decode, "seed-script": seed_script,
}

if __name__ == "__main__":
    name, repo, number = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    sys.stdout.write(json.dumps(TASKS[name](repo, number)) + "\n")
