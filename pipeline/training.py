"""Training with Keras' `fit`: windows as tf.data, seeded epoch order, devices."""

from pipeline.backend import keras, tf

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import ParamsError
from pipeline.model import ENCODER_IN
from pipeline.params import TrainParams
from pipeline.windows import Stretch

log = logging.getLogger(__name__)

# Batches per call into the compiled train step: fewer Python round trips per epoch.
MAX_STEPS_PER_EXECUTION = 32
# A split of at most this many window values (12 MB of float32) is cut once and kept in
# memory: 80 seed epochs 3.9 s against 7.1 s streamed (docs/speed.md). Longer ones stream.
IN_MEMORY_WINDOW_VALUES = 3 * 2**20


class EpochOrder(keras.callbacks.Callback):
    """Each epoch's window order from (seed, epoch) alone, so a resumed training draws the
    uninterrupted one's. One endless dataset serves every epoch, counted from this fit's
    first."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed
        self.first = tf.Variable(-1, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Note the first epoch this fit trains."""
        if self.first.numpy() < 0:
            self.first.assign(epoch)

    def batches(self, items: Any, batch_size: int) -> tf.data.Dataset:
        """Return batches of `items` (first axis the window), epoch after epoch, no end."""
        count = tf.shape(tf.nest.flatten(items)[0], out_type=tf.int64)[0]

        def epoch_batches(index: tf.Tensor) -> tf.data.Dataset:
            # Under a distribution strategy Keras draws one batch before the first epoch
            # begins, for its shapes only, then starts a new iterator: epoch 0's order.
            first = tf.maximum(self.first.read_value(), 0)
            seed = tf.stack([tf.constant(self.seed, tf.int64), index + first])
            order = tf.random.experimental.stateless_shuffle(tf.range(count), seed)
            return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(
                lambda kept: tf.gather(kept, order), items)).batch(batch_size)

        return tf.data.Dataset.range(2**62).flat_map(epoch_batches)


def window_dataset(stretch: Stretch, steps: int, batch_size: int,
                   order: EpochOrder | None = None) -> tf.data.Dataset:
    """Return ((encoder_in, decoder_in), target) batches from a stretch, in `order` or in
    series order."""
    inputs, target = tf.constant(stretch[0]), tf.constant(stretch[1])  # (points, k), (points,)
    offsets = tf.range(steps, dtype=tf.int64)

    def cut(starts: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], tf.Tensor]:
        index = starts[:, None] + offsets  # (batch, steps)
        window_target = tf.gather(target, index)[..., None]  # (batch, steps, 1)
        # Teacher forcing: the target shifted right by one step, 0 first.
        decoder_in = tf.concat([tf.zeros_like(window_target[:, :1]), window_target[:, :-1]], 1)
        return (tf.gather(inputs, index), decoder_in), window_target

    count = len(stretch[1]) - steps + 1
    if count * steps * (inputs.shape[1] + 2) > IN_MEMORY_WINDOW_VALUES:
        starts = (tf.data.Dataset.range(count).batch(batch_size) if order is None
                  else order.batches(tf.range(count, dtype=tf.int64), batch_size))
        return (starts.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))
    windows = cut(tf.range(count, dtype=tf.int64))
    if order is None:
        return tf.data.Dataset.from_tensor_slices(windows).batch(batch_size)
    return order.batches(windows, batch_size)


def model_inputs(model: keras.Model, windows: tf.data.Dataset) -> tf.data.Dataset:
    """Return `windows` as `model` takes them (a predictor reads the encoder's only)."""
    if len(model.inputs) > 1:
        return windows
    return windows.map(lambda inputs, target: (inputs[0], target))


def steps_per_execution(windows: int, batch_size: int) -> int:
    """Return how many batches one compiled call runs: an epoch's, up to a bound."""
    return min(math.ceil(windows / batch_size), MAX_STEPS_PER_EXECUTION)


@contextmanager
def without_graph_rewrites() -> Iterator[None]:
    """Turn Grappler off meanwhile: it costs more than it saves here (docs/speed.md)."""
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def early_stopping(params: TrainParams) -> keras.callbacks.EarlyStopping | None:
    """Return Keras' EarlyStopping keeping the best weights, or None for patience 0."""
    patience = params.early_stopping_patience
    return keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True
                                         ) if patience else None


def fit(model: keras.Model, train: Stretch, validation: Stretch, params: TrainParams,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> keras.callbacks.History:
    """Train `model` in place with Keras' `fit` and `callbacks`; return its History."""
    order = EpochOrder(params.seed)
    steps = model.get_layer(ENCODER_IN).output.shape[1]
    with without_graph_rewrites():
        return model.fit(model_inputs(model, window_dataset(train, steps, params.batch_size,
                                                            order)),
                         steps_per_epoch=math.ceil((len(train[1]) - steps + 1)
                                                   / params.batch_size),
                         validation_data=model_inputs(model, window_dataset(
                             validation, steps, params.batch_size)),
                         epochs=params.epochs, callbacks=[order, *callbacks],
                         shuffle=False, verbose=0)  # the dataset shuffles itself


class StopWhenAsked(keras.callbacks.Callback):
    """End training after the epoch in which `stop_file` appears (a pruned trial)."""

    def __init__(self, stop_file: Path) -> None:
        super().__init__()
        self.stop_file = stop_file

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Stop if asked to."""
        if self.stop_file.exists():
            log.info("asked to stop after epoch %d (%s)", epoch + 1, self.stop_file)
            self.model.stop_training = True


def distribution(devices: str | int) -> tf.distribute.Strategy:
    """Return the strategy `train.devices` asks for: MirroredStrategy for several devices."""
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
