"""The trained Seq2Seq network run in NumPy, from its weights: evaluate needs no TensorFlow.

`train` writes the weights of its Keras model to weights.npz (`export_weights`); this
module runs the same network on them, teacher-forced and free-running, with the equations
of Keras 3's SimpleRNN, GRU (reset_after) and LSTM cells. Importing TensorFlow costs about
5 s; these few small matrix products take milliseconds. tests/test_inference.py checks
every cell against the Keras model itself.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.errors import InputError

# The layers whose weights are exported, and the names they have in both worlds.
ENCODER_RNN, DECODER_RNN, DECODER_OUTPUT = "encoder_rnn", "decoder_rnn", "decoder_output"
RNN_WEIGHTS = ("kernel", "recurrent_kernel", "bias")
CELL_KEY = "cell"
WEIGHT_NAMES = (
    CELL_KEY,
    *(f"{layer}.{name}" for layer in (ENCODER_RNN, DECODER_RNN) for name in RNN_WEIGHTS),
    f"{DECODER_OUTPUT}.kernel", f"{DECODER_OUTPUT}.bias",
)

State = tuple[np.ndarray, ...]
Weights = dict[str, np.ndarray]


def export_weights(model: Any, cell: str) -> dict[str, np.ndarray]:
    """Return `model`'s weights by `<layer>.<weight>` name, plus the cell kind."""
    arrays: dict[str, np.ndarray] = {CELL_KEY: np.array(cell)}
    for layer in (ENCODER_RNN, DECODER_RNN):
        for name, value in zip(RNN_WEIGHTS, model.get_layer(layer).get_weights(), strict=True):
            arrays[f"{layer}.{name}"] = value
    kernel, bias = model.get_layer(DECODER_OUTPUT).get_weights()
    arrays[f"{DECODER_OUTPUT}.kernel"], arrays[f"{DECODER_OUTPUT}.bias"] = kernel, bias
    return arrays


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warning for large |x|


def _simple_rnn(w: Weights, x: np.ndarray, state: State) -> State:
    return (np.tanh(x @ w["kernel"] + state[0] @ w["recurrent_kernel"] + w["bias"]),)


def _gru(w: Weights, x: np.ndarray, state: State) -> State:
    # Keras 3's default reset_after=True: separate input and recurrent biases, and the
    # reset gate applied after the recurrent product.
    h = state[0]
    x_z, x_r, x_h = np.split(x @ w["kernel"] + w["bias"][0], 3, axis=-1)
    h_z, h_r, h_h = np.split(h @ w["recurrent_kernel"] + w["bias"][1], 3, axis=-1)
    z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
    return (z * h + (1.0 - z) * np.tanh(x_h + r * h_h),)


def _lstm(w: Weights, x: np.ndarray, state: State) -> State:
    h, c = state
    i, f, g, o = np.split(x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"], 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


CELL_STEPS: dict[str, tuple[Callable[[Weights, np.ndarray, State], State], int]] = {
    "simple_rnn": (_simple_rnn, 1), "gru": (_gru, 1), "lstm": (_lstm, 2),
}


class Seq2Seq:
    """The encoder, decoder and linear head, computing in float64."""

    def __init__(self, arrays: dict[str, np.ndarray], source: object = "weights") -> None:
        """Take the arrays `export_weights` returns (WEIGHT_NAMES), read from `source`."""
        self.cell = str(arrays[CELL_KEY])
        if self.cell not in CELL_STEPS:
            raise InputError(f"{source}: unknown cell {self.cell!r}; run `dvc repro -f train`")
        self.step, self.state_count = CELL_STEPS[self.cell]
        self.layers = {layer: {name: arrays[f"{layer}.{name}"].astype(np.float64)
                               for name in RNN_WEIGHTS}
                       for layer in (ENCODER_RNN, DECODER_RNN)}
        self.head = (arrays[f"{DECODER_OUTPUT}.kernel"].astype(np.float64),
                     arrays[f"{DECODER_OUTPUT}.bias"].astype(np.float64))

    def encode(self, encoder_in: np.ndarray) -> State:
        """Return the encoder's final state for windows (count, steps, 1)."""
        units = self.layers[ENCODER_RNN]["recurrent_kernel"].shape[0]
        state = (np.zeros((len(encoder_in), units)),) * self.state_count
        for t in range(encoder_in.shape[1]):
            state = self.step(self.layers[ENCODER_RNN], encoder_in[:, t], state)
        return state

    def _decode_step(self, step_in: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        state = self.step(self.layers[DECODER_RNN], step_in, state)
        kernel, bias = self.head
        return state[0] @ kernel + bias, state

    def teacher_forced(self, encoder_in: np.ndarray, decoder_in: np.ndarray) -> np.ndarray:
        """Return the decoder's outputs when fed the true previous targets."""
        state, outputs = self.encode(encoder_in), []
        for t in range(decoder_in.shape[1]):
            output, state = self._decode_step(decoder_in[:, t], state)
            outputs.append(output)
        return np.stack(outputs, axis=1)

    def free_running(self, encoder_in: np.ndarray) -> np.ndarray:
        """Return the predictions when each output is fed back as the next input, from 0."""
        state, outputs = self.encode(encoder_in), []
        step_in = np.zeros((len(encoder_in), 1))
        for _ in range(encoder_in.shape[1]):
            step_in, state = self._decode_step(step_in, state)
            outputs.append(step_in)
        return np.stack(outputs, axis=1)
