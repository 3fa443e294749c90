"""All devices of a machine: MirroredStrategy, tried on two logical CPU devices."""

import json
import sys
from typing import Any

import pytest
import tensorflow as tf
from conftest import ROOT, run, with_overrides

from pipeline.errors import ParamsError
from pipeline.training import distribution

# Logical devices must be set before TensorFlow initialises: a fresh process, as Keras'
# own distribution tests do.
TWO_CPUS = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pipeline.windows import Windows
from pipeline.params import parse_params
from pipeline.stages.train import train_model
from pipeline.training import distribution
x = np.arange(120.0) * 0.3
series = {"x": x, "input": np.sin(x), "target": np.cos(x)}
arrays = Windows.cut(series, series, 8, 0.25)
found = {}
for devices in (1, 2):
    params = parse_params(json.loads(sys.argv[1]))
    params = params.model_copy(update={"train": params.train.model_copy(
        update={"devices": devices})})
    model, _, history = train_model(params, arrays, [])
    found[devices] = {"replicas": distribution(devices).num_replicas_in_sync,
                      "loss": history.history["loss"]}
print(json.dumps(found))
"""


def test_two_devices_train_to_the_one_device_loss(tiny_params: dict[str, Any]) -> None:
    raw = with_overrides(tiny_params, {"train": {"epochs": 4}})
    output = run([sys.executable, "-c", TWO_CPUS, json.dumps(raw)], ROOT).stdout
    found = json.loads(output.strip().splitlines()[-1])
    assert (found["1"]["replicas"], found["2"]["replicas"]) == (1, 2)
    one, two = found["1"]["loss"], found["2"]["loss"]
    assert len(one) == len(two) == 4 and two[-1] < two[0]  # it trains
    assert two == pytest.approx(one, rel=0.01)  # gradients averaged over two halves


def test_more_devices_than_the_machine_has_is_named() -> None:
    # What this machine has, read from it: the message must hold with or without GPUs.
    gpus, cpus = (len(tf.config.list_logical_devices(kind)) for kind in ("GPU", "CPU"))
    with pytest.raises(ParamsError, match=rf"train.devices = 64 is invalid: this machine has "
                                          rf"{gpus} GPU\(s\) and {cpus} CPU device\(s\)"):
        distribution(64)
