"""params.yaml loads into typed values, and every kind of bad value is named clearly."""

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import default_params, with_overrides

from pipeline.errors import ParamsError
from pipeline.params import load_params, parse_params
from pipeline.windows import split_sizes, window_count


def test_defaults_are_the_seed_run() -> None:
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert (params.generate.points, params.generate.x_start_pi, params.generate.x_stop_pi) == (
        100, -3.0, 3.0)
    assert (params.generate.input, params.generate.target) == ("sin", "cos")
    assert (params.window.steps, params.window.validation_fraction) == (24, 0.2)
    assert params.model.units == 10
    assert (params.train.epochs, params.train.batch_size, params.train.learning_rate) == (
        80, 16, 0.001)
    assert params.plot.start_points == (0, 24, 49, 74)


def test_flat_names_every_value_by_section_and_key() -> None:
    params = parse_params(default_params())
    flat = params.flat()
    assert flat["train.epochs"] == 80
    assert flat["tracking.experiment"] == params.tracking.experiment
    assert set(params.flat(("model",))) == {"model.cell", "model.units", "model.scaling",
                                            "model.residual", "model.attention"}
    assert flat["generate.csv.test_rows"] == params.generate.csv.test_rows  # nested: dotted
    assert params.flat(("evaluate", "plot.start_points")) == {  # a section, and one key
        "evaluate.batch_size": 1024, "evaluate.sample_windows": 8,
        "plot.start_points": (0, 24, 49, 74)}
    leaves = [value for section in default_params().values() for value in section.values()]
    count = sum(len(value) if isinstance(value, dict) else 1 for value in leaves)
    assert len(flat) == count


def test_integers_are_accepted_where_floats_are_expected() -> None:
    params = parse_params(with_overrides(default_params(), {"train": {"learning_rate": 1}}))
    assert params.train.learning_rate == 1.0
    assert isinstance(params.train.learning_rate, float)


def test_split_sizes_round_as_keras_validation_split() -> None:
    # Keras 3: split_at = floor(n * (1 - fraction)); the seed's 76 windows give 60 + 16.
    assert window_count(100, 24) == 76
    assert split_sizes(76, 0.2) == (60, 16)
    assert split_sizes(10, 0.5) == (5, 5)


def csv(**changes: Any) -> dict[str, Any]:
    """Return the committed generate.csv section with `changes`."""
    return {**default_params()["generate"]["csv"], **changes}


BAD: list[tuple[dict[str, Any], str]] = [
    ({"train": {"epochs": 0}}, "train.epochs = 0 is invalid: must be ≥ 1"),
    ({"train": {"epochs": 2.5}}, "train.epochs = 2.5 is invalid: must be an integer"),
    ({"train": {"epochs": True}}, "train.epochs = True is invalid: must be an integer"),
    ({"train": {"batch_size": "16"}}, "train.batch_size = '16' is invalid: must be an integer"),
    ({"train": {"learning_rate": -0.1}}, "train.learning_rate = -0.1 is invalid"),
    ({"train": {"learning_rate": math.nan}}, "train.learning_rate = nan is invalid"),
    ({"train": {"seed": -1}}, "train.seed = -1 is invalid"),
    ({"model": {"units": 0}}, "model.units = 0 is invalid: must be in 1..4096"),
    ({"model": {"cell": "rnn"}},
     "model.cell = 'rnn' is invalid: must be 'simple_rnn', 'gru' or 'lstm'"),
    ({"generate": {"input": "tan"}},
     "generate.input = 'tan' is invalid: must be 'sin', 'cos', 'triangle' or 'sawtooth'"),
    ({"generate": {"points": 1}}, "generate.points = 1 is invalid: must be ≥ 2"),
    ({"generate": {"x_stop_pi": -5.0}}, "generate.x_stop_pi = -5.0 is invalid: must be greater"),
    ({"window": {"steps": 100}}, "window.steps = 100 is invalid: must be less than"),
    ({"window": {"steps": 0}}, "window.steps = 0 is invalid: must be ≥ 1"),
    ({"window": {"validation_fraction": 1.0}}, "window.validation_fraction = 1.0 is invalid"),
    ({"window": {"validation_fraction": 0.99}},
     "window.validation_fraction = 0.99 is invalid: must leave at least one"),
    ({"plot": {"start_points": [0, 76]}}, "plot.start_points = [0, 76] is invalid: each must be"),
    ({"plot": {"start_points": []}}, "plot.start_points = [] is invalid"),
    ({"plot": {"start_points": "0, 24"}}, "must be a list of integers"),
    ({"tracking": {"experiment": " "}}, "tracking.experiment = ' ' is invalid"),
    ({"train": {"optimizer": "sgd"}}, "train.optimizer = 'sgd' is invalid: unknown key"),
    ({"train": {"learning_rate": "0.001"}},
     "train.learning_rate = '0.001' is invalid: must be a finite number"),
    ({"generate": {"noise_std": 11.0}}, "generate.noise_std = 11.0 is invalid: must be in 0..10"),
    ({"generate": {"source": "excel"}}, "generate.source = 'excel' is invalid: must be 'func"),
    ({"generate": {"csv": "my.csv"}}, "generate.csv = 'my.csv' is invalid: must be a mapping"),
    ({"generate": {"csv": {"path": "../elsewhere.csv", "x": "t", "input": "u", "target": "y",
                           "test_rows": 60}}},
     "generate.csv.path = '../elsewhere.csv' is invalid: must be a relative path inside"),
    ({"generate": {"csv": {"path": "/tmp/a.csv", "x": "t", "input": "u", "target": "y",
                           "test_rows": 1}}},
     "generate.csv.path = '/tmp/a.csv' is invalid: must be a relative path inside the project"),
    ({"generate": {"csv": {"path": "a.csv", "x": "t", "input": "u", "target": "y",
                           "test_rows": 1}}}, "generate.csv.test_rows = 1 is invalid: must be ≥ 2"),
    ({"generate": {"csv": {"path": "a.csv", "x": "t", "input": "u", "target": "y",
                           "test_rows": 9, "missing": "error", "sep": ";"}}},
     "generate.csv.sep = ';' is invalid: unknown key; generate.csv takes path, x, input"),
    ({"generate": {"csv": {"path": "a.csv", "x": "t", "input": "u", "test_rows": 9}}},
     "missing key generate.csv.target"),
    ({"tracking": {"registered_model": ""}}, "tracking.registered_model = '' is invalid"),
    ({"train": {"devices": 0}}, "train.devices = 0 is invalid: must be 'auto' or a number"),
    ({"train": {"devices": "all"}}, "train.devices = 'all' is invalid: must be 'auto' or a"),
    ({"evaluate": {"sample_windows": 0}}, "evaluate.sample_windows = 0 is invalid: must be ≥ 1"),
    ({"model": {"scaling": "minmax"}},
     "model.scaling = 'minmax' is invalid: must be 'auto', 'standard', 'window' or 'none'"),
    ({"generate": {"csv": csv(missing="fill")}},
     "generate.csv.missing = 'fill' is invalid: must be 'error', 'drop' or 'interpolate'"),
    ({"generate": {"csv": csv(input=[])}},
     "generate.csv.input = [] is invalid: must be a column name or a list of distinct"),
    ({"generate": {"csv": csv(input=["u", "u"])}}, "generate.csv.input = ['u', 'u'] is invalid"),
    ({"generate": {"csv": csv(input=["u", 3])}}, "generate.csv.input = ['u', 3] is invalid"),
    ({"generate": {"source": "csv", "csv": csv(input=["u", "y"])}},
     "generate.csv.input = ['u', 'y'] is invalid: must not include the target column 'y'"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_values_are_named_with_what_is_allowed(overrides: dict, message: str) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params(with_overrides(default_params(), overrides))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_key_and_section_are_named() -> None:
    raw = default_params()
    del raw["train"]["seed"]
    with pytest.raises(ParamsError, match=r"missing key train\.seed"):
        parse_params(raw)
    raw = default_params()
    del raw["plot"]
    with pytest.raises(ParamsError, match="missing section 'plot'"):
        parse_params(raw)


def test_a_section_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(ParamsError, match="section 'model' must be a mapping, got 3"):
        parse_params({**default_params(), "model": 3})


def test_unknown_section_is_named() -> None:
    with pytest.raises(ParamsError, match="unknown section 'trian'"):
        parse_params({**default_params(), "trian": {"epochs": 1}})


def test_broken_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: [1\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML at line \d"):
        load_params(path)


def test_yaml_tags_that_would_build_python_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_numbers_in_exponent_form_are_numbers_as_dvc_writes_them(tmp_path: Path) -> None:
    # `dvc exp run -S train.learning_rate=0.000001` writes 1e-06, which PyYAML alone reads
    # as text; a learning rate written by hand as 1e-4 is the same case.
    path = tmp_path / "params.yaml"
    text = yaml.safe_dump(default_params(), sort_keys=False)
    path.write_text(text.replace("learning_rate: 0.001", "learning_rate: 1e-06"),
                    encoding="utf-8")
    assert load_params(path).train.learning_rate == 1e-6
    path.write_text(text.replace("learning_rate: 0.001", "learning_rate: '1e-4'"),
                    encoding="utf-8")
    with pytest.raises(ParamsError, match=r"train\.learning_rate = '1e-4' is invalid"):
        load_params(path)  # quoted, it is text, as YAML says


def test_a_csv_source_leaves_length_checks_to_generate() -> None:
    # The sampled series' lengths do not apply: generate checks the CSV's rows instead.
    raw = with_overrides(default_params(), {"generate": {"source": "csv"},
                                            "window": {"steps": 100}})
    assert parse_params(raw).window.steps == 100
    raw["generate"]["source"] = "functions"
    with pytest.raises(ParamsError, match=r"window\.steps = 100 is invalid"):
        parse_params(raw)


def test_scaling_is_as_set_and_auto_keeps_the_tutorial_exact() -> None:
    # The tutorial's run, exact.
    assert parse_params(default_params()).used().model.scaling == "none"
    # What `auto` takes for a CSV: test_model_options, by source and inputs.
    own = with_overrides(default_params(), {"generate": {"source": "csv"}})
    for scaling in ("standard", "window", "none"):
        for raw in (default_params(), own):
            chosen = with_overrides(raw, {"model": {"scaling": scaling}})
            assert parse_params(chosen).used().model.scaling == scaling


def test_one_input_column_or_several() -> None:
    one = parse_params(default_params()).generate.csv
    assert (one.input, one.inputs) == ("u", ("u",))
    several = parse_params(with_overrides(default_params(), {"generate": {
        "csv": csv(input=["u", "t"])}})).generate.csv
    assert several.inputs == ("u", "t")
