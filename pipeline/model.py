"""The seed's Seq2Seq network (Keras Functional API): teacher-forced training model, and the
free-running predictor unrolled into one batched model. Scaling, residual head and
attention live inside both, so they take and return the user's units.
"""

from pipeline.backend import keras, tf

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from keras import layers

from pipeline.errors import InputError
from pipeline.files import require

# Unrolled RNNs trace and run faster for short windows (no while loop per layer);
# past this many steps the unrolled graph grows too large to pay off.
UNROLL_MAX_STEPS = 64

# The recurrent layer of encoder and decoder, by the name params.yaml's model.cell uses.
RNN_LAYERS = {"simple_rnn": layers.SimpleRNN, "gru": layers.GRU, "lstm": layers.LSTM}

ENCODER_IN, DECODER_IN = "encoder_in", "decoder_in"
ENCODER_RNN, DECODER_RNN, DECODER_OUTPUT = "encoder_rnn", "decoder_rnn", "decoder_output"
INPUT_SCALING, TARGET_SCALING, TARGET_UNSCALING = ("input_scaling", "target_scaling",
                                                   "target_unscaling")
ATTENTION, RESIDUAL, REFERENCE = "attention", "residual", "reference"
WINDOW_MEAN = "window_mean"  # model.scaling: window (each window by its own statistics)

# The decoder's attention over the encoder's outputs (model.attention): Luong's dot
# product or Bahdanau's additive score, as Keras ships them.
ATTENTION_LAYERS = {"dot": layers.Attention, "additive": layers.AdditiveAttention}
# train.loss: the names Keras knows them by.
LOSSES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "huber": "huber"}


def scaling_layers(statistics: Mapping[str, np.ndarray]) -> dict[str, layers.Layer]:
    """Return Normalization layers (inputs, target, inverse) fixed to training statistics."""
    def normalization(name: str, of: str, invert: bool = False) -> layers.Layer:
        return layers.Normalization(mean=statistics[f"{of}_mean"],
                                    variance=statistics[f"{of}_variance"], invert=invert,
                                    name=name)

    return {INPUT_SCALING: normalization(INPUT_SCALING, "input"),
            TARGET_SCALING: normalization(TARGET_SCALING, "target"),
            TARGET_UNSCALING: normalization(TARGET_UNSCALING, "target", invert=True)}


def window_scaling(encoder_in: tf.Tensor, mean_layer: layers.Layer
                   ) -> dict[str, Callable[[tf.Tensor], tf.Tensor]]:
    """Return `scaling_layers`' three maps from each window's own mean and spread (RevIN),
    the target by the first column's: a taller or shifted stretch looks like those
    trained on."""
    mean = mean_layer(encoder_in)  # (windows, 1, k)
    # + 1e-6: a constant window (spread 0) scales to zeros, not to NaN.
    spread = keras.ops.sqrt(mean_layer(keras.ops.square(encoder_in - mean)) + 1e-6)
    return {INPUT_SCALING: lambda values: (values - mean) / spread,
            TARGET_SCALING: lambda values: (values - mean[..., :1]) / spread[..., :1],
            TARGET_UNSCALING: lambda values: values * spread[..., :1] + mean[..., :1]}


def build_training_model(  # noqa: PLR0913 - a Keras-style builder, options by keyword
        steps: int, units: int, learning_rate: float, cell: str = "simple_rnn", *,
        steps_per_execution: int = 1, inputs: int = 1,
        scaling: Mapping[str, np.ndarray] | str | None = None, residual: str = "none",
        attention: str = "none", loss: str = "mse") -> keras.Model:
    """Return the compiled model ([encoder_in, decoder_in]) -> decoder output. `scaling`:
    statistics, "window" or None; `residual` input/linear: the head corrects the first
    input column (or a linear map of it, identity at first), so the untrained model is
    the seasonal naive; `attention`: dot or additive over encoder steps."""
    rnn, unroll = RNN_LAYERS[cell], steps <= UNROLL_MAX_STEPS
    encoder_in = keras.Input(shape=(steps, inputs), name=ENCODER_IN)  # (windows, steps, k)
    if scaling == "window":
        scale = window_scaling(encoder_in, layers.GlobalAveragePooling1D(
            keepdims=True, name=WINDOW_MEAN))
    else:
        scale = scaling_layers(scaling) if scaling is not None else None
    decoder_in = keras.Input(shape=(steps, 1), name=DECODER_IN)  # target shifted right
    encoder_seen, decoder_seen = ((scale[INPUT_SCALING](encoder_in),
                                   scale[TARGET_SCALING](decoder_in)) if scale
                                  else (encoder_in, decoder_in))
    decoder_seen = keras.ops.concatenate(
        [decoder_start(encoder_in, scale, scaling == "window"), decoder_seen[:, 1:]], axis=1)
    attending = attention != "none"
    # The encoder's final state seeds the decoder: the "context" (LSTM has two states).
    encoded = rnn(units, return_sequences=attending, return_state=True, unroll=unroll,
                  name=ENCODER_RNN)(encoder_seen)
    decoder_rnn = rnn(units, return_sequences=True, return_state=True, unroll=unroll,
                      name=DECODER_RNN)
    # (windows, steps, units)
    decoded = decoder_rnn(decoder_seen, initial_state=list(encoded[1:]))[0]
    if attending:  # each decoder step looks at every encoder step: (windows, steps, 2·units)
        context = ATTENTION_LAYERS[attention](name=ATTENTION)([decoded, encoded[0]])
        decoded = layers.Concatenate()([decoded, context])
    # A residual head starts at zero: the untrained model is the reference itself.
    correcting = residual != "none"
    output = layers.Dense(1, activation="linear", name=DECODER_OUTPUT,
                          kernel_initializer="zeros" if correcting else "glorot_uniform"
                          )(decoded)
    if correcting:
        linear = (layers.Dense(steps, kernel_initializer="identity", name=REFERENCE)
                  if residual == "linear" else None)
        output = layers.Add(name=RESIDUAL)([output, reference(encoder_in, scale, linear)])
    if scale:
        output = scale[TARGET_UNSCALING](output)  # back to the user's units
    model = keras.Model([encoder_in, decoder_in], output, name="seq2seq")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss=LOSSES[loss], steps_per_execution=steps_per_execution)
    # Built now, so a model saved unfitted (free-running decoding fits its predictor) loads
    # without Keras' "Skipping variable loading for optimizer" warning.
    model.optimizer.build(model.trainable_variables)
    return model


def decoder_start(encoder_in: tf.Tensor, scale: Mapping[str, layers.Layer] | None,
                  by_window: bool) -> tf.Tensor:
    """Return the decoder's first input (windows, 1, 1): the seed's 0 scaled as the target;
    by window, 0 itself (the window's level), so only the window's shape reaches the network."""
    zero = keras.ops.zeros_like(encoder_in[:, :1, :1])
    return scale[TARGET_SCALING](zero) if scale and not by_window else zero


def reference(encoder_in: tf.Tensor, scale: Mapping[str, layers.Layer] | None,
              linear: layers.Layer | None = None) -> tf.Tensor:
    """Return what a residual head corrects (windows, steps, 1): the first input column
    scaled as the target, mapped by `linear` if given (LSTNet's autoregressive part)."""
    first = encoder_in[:, :, :1]
    first = scale[TARGET_SCALING](first) if scale else first
    return first if linear is None else keras.ops.expand_dims(linear(first[:, :, 0]), -1)


def build_predictor(trained: keras.Model) -> keras.Model:
    """Return encoder_in -> free-running prediction, sharing `trained`'s layers and weights."""
    _, steps, inputs = trained.get_layer(ENCODER_IN).output.shape
    names = {layer.name for layer in trained.layers}
    encoder_in = keras.Input(shape=(steps, inputs), name=ENCODER_IN)
    scale = None
    if WINDOW_MEAN in names:
        scale = window_scaling(encoder_in, trained.get_layer(WINDOW_MEAN))
    elif INPUT_SCALING in names:
        scale = {name: trained.get_layer(name)
                 for name in (INPUT_SCALING, TARGET_SCALING, TARGET_UNSCALING)}
    # The decoder's cell, one step per call: an RNN layer per step would add a loop each
    # (about 5× slower to trace, 4× slower to run).
    cell = trained.get_layer(DECODER_RNN).cell
    head = trained.get_layer(DECODER_OUTPUT)
    attention = trained.get_layer(ATTENTION) if ATTENTION in names else None
    encoder_seen = scale[INPUT_SCALING](encoder_in) if scale else encoder_in
    encoded = trained.get_layer(ENCODER_RNN)(encoder_seen)
    states = list(encoded[1:])  # each (windows, units)
    linear = trained.get_layer(REFERENCE) if REFERENCE in names else None
    corrected = reference(encoder_in, scale, linear) if RESIDUAL in names else None
    step_in = decoder_start(encoder_in, scale, WINDOW_MEAN in names)[:, 0, :]  # (windows, 1)
    outputs = []
    for step in range(steps):
        decoded, states = cell(step_in, states)  # (windows, units)
        if attention is not None:
            context = attention([decoded[:, None, :], encoded[0]])[:, 0, :]
            decoded = keras.ops.concatenate([decoded, context], axis=-1)
        step_in = head(decoded)  # (windows, 1), fed back as the next input (scaled)
        if corrected is not None:
            step_in = step_in + corrected[:, step, :]
        outputs.append(step_in)
    predicted = keras.ops.stack(outputs, axis=1)  # (windows, steps, 1)
    if scale:
        predicted = scale[TARGET_UNSCALING](predicted)
    return keras.Model(encoder_in, predicted, name="seq2seq_free_running")


def free_running_trainer(trained: keras.Model) -> keras.Model:
    """Return `trained`'s predictor compiled like it (fresh optimizer, same loss), to train
    on its own fed-back outputs."""
    predictor = build_predictor(trained)
    optimizer = trained.optimizer.__class__.from_config(trained.optimizer.get_config())
    predictor.compile(optimizer=optimizer, loss=trained.loss,
                      steps_per_execution=trained.steps_per_execution)
    return predictor


def compiled_call(model: keras.Model) -> Callable[..., tf.Tensor]:
    """Return `model`'s inference as one tf.function traced once for any batch size."""
    specs = [tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype) for tensor in model.inputs]

    @tf.function(input_signature=specs, reduce_retracing=True)
    def call(*inputs: tf.Tensor) -> tf.Tensor:
        return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    return call


def load_model(path: Path) -> keras.Model:
    """Load a model this pipeline saved, with Keras' safe mode on, or fail naming the file."""
    try:
        return keras.saving.load_model(require(path), safe_mode=True)
    except InputError:
        raise
    except Exception as err:  # Keras raises many kinds of error for a damaged archive
        raise InputError(f"{path}: damaged or not a Keras model ({err})") from err
