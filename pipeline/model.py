"""The seed's Seq2Seq network, in the Keras 3 Functional API, and its free-running decoder.

Training is teacher-forced: the decoder sees the true previous target. Prediction is
free-running: each decoder output is fed back as the next decoder input, starting from 0,
exactly as the seed's per-step `predict()` loop does, but unrolled into one model so all
windows decode in one batched call.
"""

import keras
from keras import layers

from pipeline.inference import DECODER_OUTPUT, DECODER_RNN, ENCODER_RNN

# Unrolled RNNs trace and run faster for short windows (no while loop per layer);
# past this many steps the unrolled graph grows too large to pay off.
UNROLL_MAX_STEPS = 64

# The recurrent layer of encoder and decoder, by the name params.yaml's model.cell uses.
RNN_LAYERS = {"simple_rnn": layers.SimpleRNN, "gru": layers.GRU, "lstm": layers.LSTM}

ENCODER_IN = "encoder_in"
DECODER_IN = "decoder_in"


def build_training_model(steps: int, units: int, learning_rate: float,
                         cell: str = "simple_rnn") -> keras.Model:
    """Return the compiled model ([encoder_in, decoder_in]) -> decoder output."""
    rnn, unroll = RNN_LAYERS[cell], steps <= UNROLL_MAX_STEPS
    encoder_in = keras.Input(shape=(steps, 1), name=ENCODER_IN)  # (windows, steps, 1)
    # Only the encoder's final state reaches the decoder: the "context" (LSTM has two).
    states = rnn(units, return_state=True, unroll=unroll, name=ENCODER_RNN)(encoder_in)[1:]
    decoder_in = keras.Input(shape=(steps, 1), name=DECODER_IN)  # target shifted right
    decoder_rnn = rnn(units, return_sequences=True, return_state=True, unroll=unroll,
                      name=DECODER_RNN)
    decoded = decoder_rnn(decoder_in, initial_state=list(states))[0]  # (windows, steps, units)
    output = layers.Dense(1, activation="linear", name=DECODER_OUTPUT)(decoded)
    model = keras.Model([encoder_in, decoder_in], output, name="seq2seq")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="mean_squared_error")
    return model


def build_free_running_model(trained: keras.Model) -> keras.Model:
    """Return encoder_in -> predicted target, sharing `trained`'s layers and weights."""
    steps = trained.get_layer(ENCODER_IN).output.shape[1]
    # The decoder's cell, one step per call: an RNN layer per step would add a loop each
    # (about 5× slower to trace, 4× slower to run).
    cell = trained.get_layer(DECODER_RNN).cell
    head = trained.get_layer(DECODER_OUTPUT)
    encoder_in = keras.Input(shape=(steps, 1), name=ENCODER_IN)
    states = list(trained.get_layer(ENCODER_RNN)(encoder_in)[1:])  # each (windows, units)
    step_in = keras.ops.zeros_like(encoder_in[:, 0, :])  # (windows, 1): the seed's first 0
    outputs = []
    for _ in range(steps):
        decoded, states = cell(step_in, states)
        step_in = head(decoded)  # (windows, 1), fed back as the next input
        outputs.append(step_in)
    predicted = keras.ops.stack(outputs, axis=1)  # (windows, steps, 1)
    return keras.Model(encoder_in, predicted, name="seq2seq_free_running")
