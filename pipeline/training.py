"""A compiled training loop: the work of Keras' `fit`, without its per-epoch overhead.

Same work as the seed's `fit`: each epoch shuffles the training windows, takes Adam steps
on mini-batches of `batch_size`, and measures the validation loss. One `tf.function`
runs a whole epoch (traced once), so 80 epochs on 60 windows cost about a second instead
of `fit`'s ~0.1 s of Python and tf.data overhead per epoch. The shuffle order comes from
a NumPy generator seeded with `train.seed`, so training stays deterministic.
"""

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.params import TrainParams

log = logging.getLogger(__name__)

THREADS_ENV = "TF_NUM_INTRAOP_THREADS"
# (encoder_in, decoder_in, target), each (windows, steps, 1) float32
Split = tuple[np.ndarray, np.ndarray, np.ndarray]
EpochCallback = Callable[[int, float, float], None]


def _epoch_function(model: keras.Model, train: Split, validation: Split,
                    batch_size: int) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Return a traced function: one epoch over `train` in the given order, then validation."""
    encoder_in, decoder_in, target = (tf.constant(array) for array in train)
    val_encoder_in, val_decoder_in, val_target = (tf.constant(array) for array in validation)
    windows = len(train[0])
    batches = -(-windows // batch_size)
    loss_fn = keras.losses.get(model.loss)
    optimizer = model.optimizer
    # Create Adam's slots now: creating variables inside tf.function forces a second trace.
    optimizer.build(model.trainable_variables)

    def mean_loss(y: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(loss_fn(y, predicted))

    def batch_step(order: tf.Tensor, batch: tf.Tensor, total: tf.Tensor
                   ) -> tuple[tf.Tensor, tf.Tensor]:
        index = order[batch * batch_size:tf.minimum((batch + 1) * batch_size, windows)]
        with tf.GradientTape() as tape:
            predicted = model([tf.gather(encoder_in, index), tf.gather(decoder_in, index)],
                              training=True)
            loss = mean_loss(tf.gather(target, index), predicted)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        # Weighted by batch size, as Keras averages the epoch's loss.
        return batch + 1, total + loss * tf.cast(tf.size(index), tf.float32)

    # Written as graph code (an explicit while_loop), so tracing skips AutoGraph's
    # source conversion of this function and of every Keras call in it.
    @tf.function(autograph=False)
    def epoch(order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        _, total = tf.while_loop(
            lambda batch, _: batch < batches,
            lambda batch, total: batch_step(order, batch, total),
            (tf.constant(0), tf.constant(0.0)))
        validation_loss = mean_loss(val_target, model([val_encoder_in, val_decoder_in],
                                                      training=False))
        return total / windows, validation_loss

    return epoch


@contextmanager
def _without_graph_rewrites() -> Iterator[None]:
    """Turn off Grappler's graph rewrites for a while, then restore the options.

    They cost about half a second on the first call of this small graph and save
    nothing measurable on it.
    """
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def use_one_thread() -> None:
    """Run TensorFlow on one thread, unless TF_NUM_INTRAOP_THREADS says otherwise.

    This model's ops are far too small to split across cores: on one thread 80 epochs
    train in 1.2-1.4 s instead of 1.5-2.2 s (same weights, see tests/test_experiments.py),
    and the other core is left to the tracking agent. Works only before TensorFlow's
    first op; later, its thread pools stay as they are.
    """
    if THREADS_ENV in os.environ:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process
        log.debug("TensorFlow already started; keeping its thread pools")


def train_epochs(model: keras.Model, train: Split, validation: Split, params: TrainParams,
                 on_epoch: EpochCallback | None = None) -> pd.DataFrame:
    """Train `model` in place; return the history: epoch, loss, val_loss."""
    with _without_graph_rewrites():
        return _train(model, train, validation, params, on_epoch)


class _EarlyStopping:
    """Keep the best weights; say when val_loss has not improved for `patience` epochs."""

    def __init__(self, model: keras.Model, patience: int) -> None:
        self.model, self.patience = model, patience
        self.best, self.best_weights, self.waited = float("inf"), None, 0

    def should_stop(self, validation_loss: float) -> bool:
        """Record an epoch's val_loss; return True when training should stop."""
        if validation_loss < self.best:
            self.best, self.best_weights, self.waited = (
                validation_loss, self.model.get_weights(), 0)
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore_best(self) -> None:
        """Put the best epoch's weights back into the model."""
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _train(model: keras.Model, train: Split, validation: Split, params: TrainParams,
           on_epoch: EpochCallback | None) -> pd.DataFrame:
    epoch = _epoch_function(model, train, validation, params.batch_size)
    order = np.random.default_rng(params.seed)
    stopping = _EarlyStopping(model, params.early_stopping_patience)
    rows = []
    for number in range(params.epochs):
        loss, validation_loss = (float(value) for value in
                                 epoch(tf.constant(order.permutation(len(train[0])))))
        rows.append((number, loss, validation_loss))
        if on_epoch is not None:
            on_epoch(number, loss, validation_loss)
        if params.early_stopping_patience and stopping.should_stop(validation_loss):
            break
    if params.early_stopping_patience:
        stopping.restore_best()  # also when the last epoch was not the best
    return pd.DataFrame(rows, columns=["epoch", "loss", "val_loss"])
