"""The seed's Seq2Seq network in the Keras 3 Functional API: build, predict, load.

Training is teacher-forced: the decoder sees the true previous target. Prediction is
free-running: each decoder output is fed back as the next decoder input, starting from 0,
exactly as the seed's per-step `predict()` loop does, but unrolled into one model (the
predictor) so all windows decode in one batched call.

With scaling, Keras `Normalization` layers standardise the inputs and the decoder's
target history with the training split's statistics, and an inverted one maps the output
back: both models take and return values in the user's units, and so does the served
predictor.
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



def scaling_layers(statistics: Mapping[str, np.ndarray]) -> dict[str, layers.Layer]:
    """Return the Normalization layers for the inputs and target, and the target's inverse,
    fixed to the given training statistics (see pipeline.data.scaling_statistics)."""
    def normalization(name: str, of: str, invert: bool = False) -> layers.Layer:
        return layers.Normalization(mean=statistics[f"{of}_mean"],
                                    variance=statistics[f"{of}_variance"], invert=invert,
                                    name=name)

    return {INPUT_SCALING: normalization(INPUT_SCALING, "input"),
            TARGET_SCALING: normalization(TARGET_SCALING, "target"),
            TARGET_UNSCALING: normalization(TARGET_UNSCALING, "target", invert=True)}


def build_training_model(  # noqa: PLR0913 - a Keras-style builder, options by keyword
        steps: int, units: int, learning_rate: float, cell: str = "simple_rnn", *,
        steps_per_execution: int = 1, inputs: int = 1,
        scaling: Mapping[str, np.ndarray] | None = None) -> keras.Model:
    """Return the compiled model ([encoder_in, decoder_in]) -> decoder output.

    `inputs` is the number of input columns; with `scaling` statistics the model
    standardises inside and still takes and returns the user's units.
    """
    rnn, unroll = RNN_LAYERS[cell], steps <= UNROLL_MAX_STEPS
    scale = scaling_layers(scaling) if scaling is not None else None
    encoder_in = keras.Input(shape=(steps, inputs), name=ENCODER_IN)  # (windows, steps, k)
    decoder_in = keras.Input(shape=(steps, 1), name=DECODER_IN)  # target shifted right
    encoder_seen, decoder_seen = ((scale[INPUT_SCALING](encoder_in),
                                   scale[TARGET_SCALING](decoder_in)) if scale
                                  else (encoder_in, decoder_in))
    # Only the encoder's final state reaches the decoder: the "context" (LSTM has two).
    states = rnn(units, return_state=True, unroll=unroll, name=ENCODER_RNN)(encoder_seen)[1:]
    decoder_rnn = rnn(units, return_sequences=True, return_state=True, unroll=unroll,
                      name=DECODER_RNN)
    decoded = decoder_rnn(decoder_seen, initial_state=list(states))[0]  # (windows, steps, units)
    output = layers.Dense(1, activation="linear", name=DECODER_OUTPUT)(decoded)
    if scale:
        output = scale[TARGET_UNSCALING](output)  # back to the user's units
    model = keras.Model([encoder_in, decoder_in], output, name="seq2seq")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="mean_squared_error", steps_per_execution=steps_per_execution)
    return model


def build_predictor(trained: keras.Model) -> keras.Model:
    """Return encoder_in -> free-running prediction, sharing `trained`'s layers and weights."""
    _, steps, inputs = trained.get_layer(ENCODER_IN).output.shape
    scaled = INPUT_SCALING in {layer.name for layer in trained.layers}
    # The decoder's cell, one step per call: an RNN layer per step would add a loop each
    # (about 5× slower to trace, 4× slower to run).
    cell = trained.get_layer(DECODER_RNN).cell
    head = trained.get_layer(DECODER_OUTPUT)
    encoder_in = keras.Input(shape=(steps, inputs), name=ENCODER_IN)
    encoder_seen = trained.get_layer(INPUT_SCALING)(encoder_in) if scaled else encoder_in
    states = list(trained.get_layer(ENCODER_RNN)(encoder_seen)[1:])  # each (windows, units)
    start = keras.ops.zeros_like(encoder_in[:, :1, :1])  # (windows, 1, 1): the seed's first 0
    if scaled:  # the 0 the decoder saw in training, scaled as it was there
        start = trained.get_layer(TARGET_SCALING)(start)
    step_in, outputs = start[:, 0, :], []  # (windows, 1)
    for _ in range(steps):
        decoded, states = cell(step_in, states)
        step_in = head(decoded)  # (windows, 1), fed back as the next input (scaled)
        outputs.append(step_in)
    predicted = keras.ops.stack(outputs, axis=1)  # (windows, steps, 1)
    if scaled:
        predicted = trained.get_layer(TARGET_UNSCALING)(predicted)
    return keras.Model(encoder_in, predicted, name="seq2seq_free_running")


def compiled_call(model: keras.Model) -> Callable[..., tf.Tensor]:
    """Return `model`'s inference as one tf.function traced once for any batch size (a
    None batch dimension: the last, smaller batch does not retrace)."""
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
