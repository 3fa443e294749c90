"""The seed notebook's own way, kept faithful as the benchmark's reference.

Model, `fit(..., validation_split=0.2)` and the per-step `predict()` decode loop as in
../shared/seeds/ (with its typos fixed: `BATCH_SIZE`, `Input(shape=(units,))`). Not used
by the pipeline; `pipeline.benchmark` measures the project against it.
"""

import numpy as np
import tensorflow as tf


def build_seed_models(steps: int, units: int) -> tuple[tf.keras.Model, ...]:
    """Return the seed's (model_train, model_pred_e, pred_d_model), sharing layers."""
    tf.keras.backend.clear_session()
    e_input = tf.keras.layers.Input(shape=(steps, 1), name="e_input")
    _, e_state = tf.keras.layers.SimpleRNN(units, return_state=True, name="e_rnn")(e_input)
    d_input = tf.keras.layers.Input(shape=(steps, 1), name="d_input")
    d_rnn = tf.keras.layers.SimpleRNN(units, return_sequences=True, return_state=True,
                                      name="d_rnn")
    d_rnn_out, _ = d_rnn(d_input, initial_state=[e_state])
    d_dense = tf.keras.layers.Dense(1, activation="linear", name="d_output")
    model_train = tf.keras.models.Model(inputs=[e_input, d_input], outputs=d_dense(d_rnn_out))
    model_train.compile(optimizer="adam", loss="mean_squared_error")
    model_pred_e = tf.keras.models.Model(inputs=[e_input], outputs=[e_state])
    pred_d_input = tf.keras.layers.Input(shape=(1, 1))
    pred_d_state_in = tf.keras.layers.Input(shape=(units,))
    pred_d_output, pred_d_state = d_rnn(pred_d_input, initial_state=[pred_d_state_in])
    pred_d_model = tf.keras.Model(inputs=[pred_d_input, pred_d_state_in],
                                  outputs=[d_dense(pred_d_output), pred_d_state])
    return model_train, model_pred_e, pred_d_model


def seed_windows(seq_in: np.ndarray, seq_out: np.ndarray, steps: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the seed's (ex, dx, dy), built with its Python loop."""
    n = len(seq_in) - steps
    ex, dx, dy = np.zeros((n, steps)), np.zeros((n, steps)), np.zeros((n, steps))
    for i in range(n):
        ex[i] = seq_in[i:i + steps]
        dx[i, 1:] = seq_out[i:i + steps - 1]
        dy[i] = seq_out[i:i + steps]
    return ex.reshape(n, steps, 1), dx.reshape(n, steps, 1), dy.reshape(n, steps, 1)


def seed_fit(model_train: tf.keras.Model, ex: np.ndarray, dx: np.ndarray, dy: np.ndarray
             ) -> tf.keras.callbacks.History:
    """Train as the seed does: batch 16, 80 epochs, the last 20% for validation."""
    return model_train.fit([ex, dx], dy, batch_size=16, epochs=80, validation_split=0.2,
                           verbose=False)


def seed_predict(model_pred_e: tf.keras.Model, pred_d_model: tf.keras.Model,
                 input_data: np.ndarray, steps: int) -> list[float]:
    """Decode one window as the seed does: a `predict()` per decoder step."""
    state_value = model_pred_e.predict(input_data, verbose=0)
    _dy = np.zeros((1, 1, 1))
    output_data = []
    for _ in range(steps):
        y_output, state_value = pred_d_model.predict([_dy, state_value], verbose=0)
        output_data.append(float(y_output[0, 0, 0]))
        _dy[0, 0, 0] = y_output[0, 0, 0]
    return output_data
