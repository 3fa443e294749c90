"""How the network is trained: windows streamed by `tf.data`, Keras' `fit` with its
callbacks, and the devices it runs on.

As the seed: Adam on shuffled mini-batches, validation loss after each epoch; any Keras
callback works. Windows are cut batch by batch from each split's stretch of series, so
memory grows with points, not with points × steps.
"""

from pipeline.backend import keras, tf

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pipeline.data import Stretch
from pipeline.errors import ParamsError
from pipeline.model import ENCODER_IN
from pipeline.params import TrainParams
from pipeline.resume import TrainingBackup

log = logging.getLogger(__name__)

# Batches per call into the compiled train step: fewer Python round trips per epoch.
MAX_STEPS_PER_EXECUTION = 32
# tf.data's shuffle buffer holds each window index as a tensor, about 190 bytes apiece
# (1.7 GB and 9 s to fill at 9 million windows, measured). Past this many windows each
# epoch's order is a seeded permutation of the indices instead, 8 bytes apiece; up to it
# the order stays tf.data's, so the published runs on the seed's series are unchanged.
BUFFERED_SHUFFLE_LIMIT = 1_000_000
# A split whose windows hold at most this many values (inputs, decoder inputs and target:
# 12 MB of float32) is cut once and kept in memory: an epoch of the seed's few batches
# then costs 10 ms instead of 30-50 ms, most of which went to starting the streaming
# pipeline again (measured: 80 seed epochs 3.9 s against 7.1 s). Longer splits are
# streamed.
IN_MEMORY_WINDOW_VALUES = 3 * 2**20


def shuffled_starts(count: int, seed: int) -> tf.data.Dataset:
    """Return window indices 0..count-1 in a new seeded order each pass (epoch)."""
    if count <= BUFFERED_SHUFFLE_LIMIT:
        return tf.data.Dataset.range(count).shuffle(count, seed=seed,
                                                     reshuffle_each_iteration=True)
    passes = tf.Variable(-1, dtype=tf.int64, trainable=False)  # the pass being drawn

    @tf.autograph.experimental.do_not_convert
    def permutation(_: tf.Tensor) -> tf.Tensor:
        pass_seed = tf.stack([tf.constant(seed, tf.int64), passes.assign_add(1)])
        return tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                        seed=pass_seed)

    return tf.data.Dataset.range(1).map(permutation).unbatch()


def window_dataset(stretch: Stretch, steps: int, batch_size: int,
                   shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Return ((encoder_in, decoder_in), target) batches cut from a split's stretch of
    series by window index, reshuffled each epoch if seeded.

    Memory stays O(points): only indices are shuffled, and each batch gathers its windows
    when it is needed. A split of at most IN_MEMORY_WINDOW_VALUES values is cut once and
    kept. Up to BUFFERED_SHUFFLE_LIMIT windows the order and values equal shuffling
    materialised windows with the same seed (tested), so training is what it was when
    windows were arrays.
    """
    inputs, target = tf.constant(stretch[0]), tf.constant(stretch[1])  # (points, k), (points,)
    offsets = tf.range(steps, dtype=tf.int64)

    def cut(starts: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], tf.Tensor]:
        index = starts[:, None] + offsets  # (batch, steps)
        window_target = tf.gather(target, index)[..., None]  # (batch, steps, 1)
        # Teacher forcing: the target shifted right by one step, 0 first.
        decoder_in = tf.concat([tf.zeros_like(window_target[:, :1]), window_target[:, :-1]], 1)
        return (tf.gather(inputs, index), decoder_in), window_target

    count = len(stretch[1]) - steps + 1
    if count * steps * (inputs.shape[1] + 2) <= IN_MEMORY_WINDOW_VALUES:
        windows = tf.data.Dataset.from_tensor_slices(cut(tf.range(count, dtype=tf.int64)))
        if shuffle_seed is not None:
            windows = windows.shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
        return windows.batch(batch_size)
    starts = tf.data.Dataset.range(count) if shuffle_seed is None else shuffled_starts(
        count, shuffle_seed)
    return (starts.batch(batch_size)
            .map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def model_inputs(model: keras.Model, windows: tf.data.Dataset) -> tf.data.Dataset:
    """Return `windows` as `model` takes them: a free-running predictor (one input) reads
    the encoder's input only, never the true previous target."""
    if len(model.inputs) > 1:
        return windows
    return windows.map(lambda inputs, target: (inputs[0], target))


def steps_per_execution(windows: int, batch_size: int) -> int:
    """Return how many batches one compiled call runs: an epoch's, up to a bound."""
    return min(math.ceil(windows / batch_size), MAX_STEPS_PER_EXECUTION)


@contextmanager
def without_graph_rewrites() -> Iterator[None]:
    """Turn TensorFlow's Grappler graph rewrites off for a while, then restore the option.

    On this small network they cost more than they save: in a probe (three seeds, one
    thread), 80 seed epochs took 2.3-2.5 s with them off and 2.7-3.0 s with them on.
    """
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def fit(model: keras.Model, train: Stretch, validation: Stretch, params: TrainParams,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> keras.callbacks.History:
    """Train `model` in place with Keras' `fit`; return its History.

    As the seed: Adam on shuffled mini-batches, validation loss after each epoch. With
    `early_stopping_patience`, Keras' EarlyStopping ends training and keeps the
    best-val_loss weights. A TrainingBackup among `callbacks` (pipeline.resume) runs after
    the others and backs up the EarlyStopping's state too.
    """
    stopping = keras.callbacks.EarlyStopping(patience=params.early_stopping_patience,
                                             restore_best_weights=True
                                             ) if params.early_stopping_patience else None
    backups = [callback for callback in callbacks if isinstance(callback, TrainingBackup)]
    for backup in backups:
        backup.stopping = stopping
    others = [callback for callback in callbacks if callback not in backups]
    steps = model.get_layer(ENCODER_IN).output.shape[1]
    with without_graph_rewrites():
        return model.fit(model_inputs(model, window_dataset(train, steps, params.batch_size,
                                                            shuffle_seed=params.seed)),
                         validation_data=model_inputs(model, window_dataset(
                             validation, steps, params.batch_size)),
                         epochs=params.epochs,
                         callbacks=[*([stopping] if stopping else []), *others, *backups],
                         shuffle=False, verbose=0)  # the dataset shuffles itself


class StopWhenAsked(keras.callbacks.Callback):
    """End training cleanly after the epoch in which `stop_file` appears: Keras'
    documented `model.stop_training`. A tuning study asks this of a trial it prunes."""

    def __init__(self, stop_file: Path) -> None:
        super().__init__()
        self.stop_file = stop_file

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Stop if asked to."""
        if self.stop_file.exists():
            log.info("asked to stop after epoch %d (%s)", epoch + 1, self.stop_file)
            self.model.stop_training = True


def distribution(devices: str | int) -> tf.distribute.Strategy:
    """Return the strategy `train.devices` asks for: `auto` mirrors training over every
    GPU when there are several, N over the first N GPUs (or, without enough GPUs, logical
    CPU devices), and one device is TensorFlow's default strategy."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if devices == "auto":
        devices = max(len(gpus), 1)
    if devices == 1:
        return tf.distribute.get_strategy()
    found = gpus if len(gpus) >= devices else [
        device.name for device in tf.config.list_logical_devices("CPU")]
    if len(found) < devices:
        raise ParamsError(f"params.yaml: train.devices = {devices} is invalid: this machine "
                          f"has {len(gpus)} GPU(s) and {len(found)} CPU device(s)")
    return tf.distribute.MirroredStrategy(found[:devices])
