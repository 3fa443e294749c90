"""params.yaml as one validated, typed, immutable object (pydantic, strict, unknown keys
forbidden). A failure is one `ParamsError` line naming the key, the value and what is
allowed (the field's `description`).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from pipeline.data import SIGNALS
from pipeline.errors import ParamsError
from pipeline.files import read_yaml
from pipeline.params_errors import one_line
from pipeline.paths import PARAMS_FILE
from pipeline.windows import split_sizes, starts_outside, window_count

# Names of the recurrent cells pipeline.model builds (here, so that checking params
# needs no Keras import; a test keeps the two lists equal).
CELLS = ("simple_rnn", "gru", "lstm")

Number = Annotated[float, Field(allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, lt=2**32, description="must be in 0..2**32-1")]
Name = Annotated[str, Field(pattern=r"\S", description="must be a non-empty name")]
Value = bool | int | float | str  # one params.yaml value, as `dvc exp run -S` sets it


def _inside_project(path: str) -> str:
    """Accept a relative path that stays inside the project (DVC tracks nothing else)."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise ValueError(path)
    return path


ProjectPath = Annotated[str, AfterValidator(_inside_project),
                        Field(description="must be a relative path inside the project")]


def _column_names(value: Any) -> str | tuple[str, ...]:
    """Accept one column name, or a non-empty list of distinct ones (as a tuple)."""
    names = [value] if isinstance(value, str) else value
    if (not isinstance(names, list | tuple) or not names or len(set(names)) != len(names)
            or not all(isinstance(name, str) and name.strip() for name in names)):
        raise ValueError(value)
    return value if isinstance(value, str) else tuple(names)


def _auto_or_at_least(low: int) -> Any:
    """Return a validator accepting 'auto' or a whole number ≥ `low`."""
    def check(value: Any) -> str | int:
        if value == "auto" or (type(value) is int and value >= low):
            return value
        raise ValueError(value)
    return BeforeValidator(check)


Patience = Annotated[str | int, _auto_or_at_least(0),
                     Field(description="must be 'auto' or a number of epochs ≥ 0 (0 = off)")]
Devices = Annotated[str | int, _auto_or_at_least(1),
                    Field(description="must be 'auto' or a number of devices ≥ 1")]

ColumnNames = Annotated[str | tuple[str, ...], BeforeValidator(_column_names),
                        Field(description="must be a column name or a list of distinct "
                                          "column names")]


def at_least(low: int) -> Any:
    """Return the constraint `≥ low` on an integer."""
    return Field(ge=low, description=f"must be ≥ {low}")


def between(low: float, high: float) -> Any:
    """Return the constraint `low ≤ value ≤ high` on a number."""
    return Field(ge=low, le=high, allow_inf_nan=False, description=f"must be in {low}..{high}")


def one_of(*names: str) -> Any:
    """Return the type of a text value that must be one of `names`."""
    allowed = " or ".join((", ".join(map(repr, names[:-1])), repr(names[-1])))
    return Annotated[Literal[names], Field(description=f"must be {allowed}")]


Signal = one_of(*SIGNALS)


class Section(BaseModel):
    """One section of params.yaml: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CsvParams(Section):
    """A CSV file of the user's own series, read when `generate.source` is csv."""

    path: ProjectPath
    x: Name
    input: ColumnNames
    target: Name
    test_rows: Annotated[int, at_least(2)]
    missing: one_of("error", "drop", "interpolate")

    @property
    def inputs(self) -> tuple[str, ...]:
        """Return the input column names, one or several."""
        return (self.input,) if isinstance(self.input, str) else self.input


class GenerateParams(Section):
    """The training series and the held-out test series."""

    source: one_of("functions", "csv")
    csv: CsvParams
    points: Annotated[int, at_least(2)]
    x_start_pi: Number
    x_stop_pi: Number
    input: Signal
    target: Signal
    test_points: Annotated[int, at_least(2)]
    test_x_start_pi: Number
    test_x_stop_pi: Number
    target_phase_pi: Number
    noise_std: Annotated[float, between(0, 10)]  # 0: no noise
    noise_seed: Seed


class WindowParams(Section):
    """How the series are cut into encoder/decoder windows."""

    steps: Annotated[int, at_least(1)]
    validation_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False,
                                                description="must be between 0 and 1 "
                                                            "(exclusive)")]


class ModelParams(Section):
    """The Seq2Seq network."""

    cell: one_of(*CELLS)
    units: Annotated[int, between(1, 4096)]
    scaling: one_of("auto", "standard", "window", "none")
    residual: one_of("auto", "input", "linear", "none")
    attention: one_of("none", "dot", "additive")


class TrainParams(Section):
    """The optimisation."""

    epochs: Annotated[int, at_least(1)]
    batch_size: Annotated[int, at_least(1)]
    learning_rate: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False,
                                          description="must be in (0, 1]")]
    loss: one_of("mse", "mae", "huber")
    decoding: one_of("auto", "teacher_forcing", "free_running")
    seed: Seed
    early_stopping_patience: Patience
    devices: Devices
    backup_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False,
                                           description="must be a number ≥ 0")]
    prediction_images: Annotated[int, between(0, 20)]


class EvaluateParams(Section):
    """The free-running evaluation."""

    batch_size: Annotated[int, at_least(1)]
    sample_windows: Annotated[int, at_least(1)]


class PlotParams(Section):
    """The figures."""

    # Lax at this level only so that YAML's list becomes a tuple; items stay strict.
    start_points: Annotated[tuple[Annotated[int, Field(strict=True)], ...],
                            Field(strict=False, min_length=1,
                                  description="must list at least one window index")]
    dpi: Annotated[int, between(20, 600)]


class TrackingParams(Section):
    """Where MLflow records the run."""

    experiment: Name
    registered_model: Name
    trial: Annotated[str, Field(max_length=200, description="must be text")]


class Params(Section):
    """All of params.yaml, one typed section per stage."""

    generate: GenerateParams
    window: WindowParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    plot: PlotParams
    tracking: TrackingParams

    def resolved(self) -> dict[str, str | int]:
        """Return what each `auto` stands for by dotted key: the tutorial's choice for
        functions, the choices that beat the naive forecasts for a CSV."""
        own = self.generate.source == "csv"
        one_input = own and len(self.generate.csv.inputs) == 1
        auto = {"model.scaling": "window" if one_input else "standard" if own else "none",
                "model.residual": "linear" if one_input else "none",
                "train.decoding": "free_running" if own else "teacher_forcing",
                "train.early_stopping_patience": self.train.epochs // 4 if own else 0}
        flat = self.flat()
        return {key: value if flat[key] == "auto" else flat[key] for key, value in auto.items()}

    def used(self) -> "Params":
        """Return these params with every `auto` replaced by what it stands for."""
        return with_values(self, self.resolved())

    def flat(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Return every value (or those under `names`) by dotted key."""
        flat = _flatten(self.model_dump())
        if names is None:
            return flat
        return {key: value for key, value in flat.items()
                if any(key == name or key.startswith(f"{name}.") for name in names)}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return nested mappings as one mapping with dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def with_values(params: Params, values: Mapping[str, Any]) -> Params:
    """Return `params` with dotted keys set to `values`, validated as params.yaml is."""
    raw = params.model_dump()
    for key, value in values.items():
        *sections, name = key.split(".")
        target = raw
        for section in sections:
            target = target[section]
        target[name] = value
    return parse_params(raw)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a `ParamsError` naming `key`, its `value` and what is `allowed` unless `ok`."""
    if not ok:
        raise ParamsError(f"{PARAMS_FILE}: {key} = {value!r} is invalid: {allowed}")


def check_relations(params: Params) -> None:
    """Check the rules that tie values together (a CSV's lengths: in `generate`, once read)."""
    if params.generate.source == "functions":
        check_sampled_lengths(params)
    else:
        csv = params.generate.csv
        as_written = csv.input if isinstance(csv.input, str) else list(csv.input)
        _require(csv.target not in csv.inputs, "generate.csv.input", as_written,
                 f"must not include the target column {csv.target!r}: the model would read "
                 f"what it predicts")


def check_sampled_lengths(params: Params) -> None:
    """Check the sampled series leave windows for every split and every plotted start."""
    gen, steps = params.generate, params.window.steps
    for start, stop in (("x_start_pi", "x_stop_pi"), ("test_x_start_pi", "test_x_stop_pi")):
        _require(getattr(gen, stop) > getattr(gen, start), f"generate.{stop}", getattr(gen, stop),
                 f"must be greater than generate.{start} ({getattr(gen, start)})")
    for key in ("points", "test_points"):
        points = getattr(gen, key)
        _require(window_count(points, steps) >= 1, "window.steps", steps,
                 f"must be less than generate.{key} ({points}) to leave a window")
    windows = window_count(gen.points, steps)
    fit, validation = split_sizes(windows, params.window.validation_fraction)
    _require(fit >= 1 and validation >= 1, "window.validation_fraction",
             params.window.validation_fraction,
             f"must leave at least one of the {windows} training windows on each side")
    starts = list(params.plot.start_points)
    _require(not starts_outside(params.plot.start_points, gen.points, steps),
             "plot.start_points", starts,
             f"each must be a training window index in 0..{windows - 1}")


def parse_params(raw: Any) -> Params:
    """Validate the content of params.yaml and return it typed."""
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(one_line(err.errors()[0], raw, Params)) from err
    check_relations(params)
    return params


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (safe YAML only)."""
    return parse_params(read_yaml(path))
