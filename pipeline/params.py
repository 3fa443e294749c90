"""Typed, validated params: read once from params.yaml and checked before any work.

Every failure is a `ParamsError` whose one-line message names the key, the bad value and
what is allowed, so a typo costs the user seconds, not a training run.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from pipeline.errors import ParamsError
from pipeline.paths import PARAMS_FILE
from pipeline.signals import SIGNALS


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a `ParamsError` naming `key`, its `value` and what is `allowed` unless `ok`."""
    if not ok:
        raise ParamsError(f"{PARAMS_FILE}: {key} = {value!r} is invalid: {allowed}")


def window_count(points: int, steps: int) -> int:
    """Return how many windows a series yields; the seed drops the last full one."""
    return points - steps


def split_sizes(windows: int, validation_fraction: float) -> tuple[int, int]:
    """Return (fit, validation) window counts, rounded as Keras 3's `validation_split`."""
    fit = math.floor(windows * (1.0 - validation_fraction))
    return fit, windows - fit


@dataclass(frozen=True)
class GenerateParams:
    """The training series and the held-out test series."""

    points: int
    x_start_pi: float
    x_stop_pi: float
    input: str
    target: str
    test_points: int
    test_x_start_pi: float
    test_x_stop_pi: float
    target_phase_pi: float
    noise_std: float
    noise_seed: int

    def check(self) -> None:
        """Check each value on its own."""
        _require(0.0 <= self.noise_std <= 10.0, "generate.noise_std", self.noise_std,
                 "must be in 0..10 (0 = no noise)")
        _require(0 <= self.noise_seed < 2**32, "generate.noise_seed", self.noise_seed,
                 "must be in 0..2**32-1")
        for key in ("points", "test_points"):
            _require(getattr(self, key) >= 2, f"generate.{key}", getattr(self, key), "must be ≥ 2")
        for key in ("input", "target"):
            name = getattr(self, key)
            _require(name in SIGNALS, f"generate.{key}", name, f"must be one of {sorted(SIGNALS)}")
        _require(
            self.x_stop_pi > self.x_start_pi, "generate.x_stop_pi", self.x_stop_pi,
            f"must be greater than generate.x_start_pi ({self.x_start_pi})",
        )
        _require(
            self.test_x_stop_pi > self.test_x_start_pi, "generate.test_x_stop_pi",
            self.test_x_stop_pi,
            f"must be greater than generate.test_x_start_pi ({self.test_x_start_pi})",
        )


@dataclass(frozen=True)
class WindowParams:
    """How the series are cut into encoder/decoder windows."""

    steps: int
    validation_fraction: float

    def check(self) -> None:
        """Check each value on its own."""
        _require(self.steps >= 1, "window.steps", self.steps, "must be ≥ 1")
        _require(
            0.0 < self.validation_fraction < 1.0, "window.validation_fraction",
            self.validation_fraction, "must be between 0 and 1 (exclusive)",
        )


# Names of the recurrent cells pipeline.model builds (kept here so that validating params
# needs no Keras import).
CELLS = ("simple_rnn", "gru", "lstm")


@dataclass(frozen=True)
class ModelParams:
    """The Seq2Seq network."""

    cell: str
    units: int

    def check(self) -> None:
        """Check each value on its own."""
        _require(self.cell in CELLS, "model.cell", self.cell, f"must be one of {list(CELLS)}")
        _require(1 <= self.units <= 4096, "model.units", self.units, "must be in 1..4096")


@dataclass(frozen=True)
class TrainParams:
    """The optimisation."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    early_stopping_patience: int

    def check(self) -> None:
        """Check each value on its own."""
        _require(self.early_stopping_patience >= 0, "train.early_stopping_patience",
                 self.early_stopping_patience, "must be ≥ 0 (0 = off)")
        _require(self.epochs >= 1, "train.epochs", self.epochs, "must be ≥ 1")
        _require(self.batch_size >= 1, "train.batch_size", self.batch_size, "must be ≥ 1")
        _require(
            0.0 < self.learning_rate <= 1.0, "train.learning_rate", self.learning_rate,
            "must be in (0, 1]",
        )
        _require(0 <= self.seed < 2**32, "train.seed", self.seed, "must be in 0..2**32-1")


@dataclass(frozen=True)
class EvaluateParams:
    """The free-running evaluation."""

    batch_size: int

    def check(self) -> None:
        """Check each value on its own."""
        _require(self.batch_size >= 1, "evaluate.batch_size", self.batch_size, "must be ≥ 1")


@dataclass(frozen=True)
class PlotParams:
    """The figures."""

    start_points: tuple[int, ...]
    dpi: int

    def check(self) -> None:
        """Check each value on its own."""
        _require(len(self.start_points) >= 1, "plot.start_points", list(self.start_points),
                 "must list at least one window index")
        _require(20 <= self.dpi <= 600, "plot.dpi", self.dpi, "must be in 20..600")


@dataclass(frozen=True)
class TrackingParams:
    """Where MLflow records the run."""

    experiment: str

    def check(self) -> None:
        """Check each value on its own."""
        _require(bool(self.experiment.strip()), "tracking.experiment", self.experiment,
                 "must be a non-empty name")


@dataclass(frozen=True)
class Params:
    """All of params.yaml, one typed section per stage."""

    generate: GenerateParams
    window: WindowParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    plot: PlotParams
    tracking: TrackingParams

    def check(self) -> None:
        """Check the rules that tie sections together."""
        steps = self.window.steps
        for key, points in (("points", self.generate.points),
                            ("test_points", self.generate.test_points)):
            _require(window_count(points, steps) >= 1, "window.steps", steps,
                     f"must be less than generate.{key} ({points}) to leave a window")
        windows = window_count(self.generate.points, steps)
        fit, validation = split_sizes(windows, self.window.validation_fraction)
        _require(fit >= 1 and validation >= 1, "window.validation_fraction",
                 self.window.validation_fraction,
                 f"must leave at least one of the {windows} training windows on each side")
        for point in self.plot.start_points:
            _require(0 <= point < windows, "plot.start_points", list(self.plot.start_points),
                     f"each must be a training window index in 0..{windows - 1}")

    def flat(self, sections: Iterable[str] | None = None) -> dict[str, Any]:
        """Return the values of `sections` (default all) under `section.key` names."""
        names = [item.name for item in fields(self)] if sections is None else sections
        return {
            f"{name}.{item.name}": getattr(getattr(self, name), item.name)
            for name in names
            for item in fields(getattr(self, name))
        }


def _coerce(key: str, value: Any, kind: Any) -> Any:
    """Return `value` as `kind` (int, float, str or tuple[int, ...]) or raise."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is int:
        _require(is_int, key, value, "must be an integer")
        return value
    if kind is float:
        ok = (is_int or isinstance(value, float)) and math.isfinite(value)
        _require(ok, key, value, "must be a finite number")
        return float(value)
    if kind is str:
        _require(isinstance(value, str), key, value, "must be a string")
        return value
    ok = isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    )
    _require(ok, key, value, "must be a list of integers")
    return tuple(value)


def _parse_section(section: str, cls: type, raw: Any) -> Any:
    """Build one section's dataclass from its mapping, rejecting unknown or missing keys."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{PARAMS_FILE}: section {section!r} must be a mapping, got {raw!r}")
    allowed = [item.name for item in fields(cls)]
    for key in raw:
        _require(key in allowed, f"{section}.{key}", raw[key],
                 f"unknown key; {section} takes {', '.join(allowed)}")
    for key in allowed:
        if key not in raw:
            raise ParamsError(f"{PARAMS_FILE}: missing key {section}.{key}")
    hints = get_type_hints(cls)
    parsed = cls(**{key: _coerce(f"{section}.{key}", raw[key], hints[key]) for key in allowed})
    parsed.check()
    return parsed


def parse_params(raw: Any) -> Params:
    """Validate the content of params.yaml and return it typed."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{PARAMS_FILE}: must be a mapping of sections, got {raw!r}")
    sections = get_type_hints(Params)
    for name in raw:
        if name not in sections:
            raise ParamsError(f"{PARAMS_FILE}: unknown section {name!r}; "
                              f"sections are {', '.join(sections)}")
    for name in sections:
        if name not in raw:
            raise ParamsError(f"{PARAMS_FILE}: missing section {name!r}")
    params = Params(**{name: _parse_section(name, cls, raw[name])
                       for name, cls in sections.items()})
    params.check()
    return params


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (safe YAML only)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ParamsError(f"{path}: cannot be read ({err.strerror})") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}") from err
    return parse_params(raw)
