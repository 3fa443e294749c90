"""tune.yaml: per params.yaml key a range, choices or a fixed value, each checked by
params.yaml's rules before any trial runs.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ParamsError
from pipeline.files import read_yaml
from pipeline.params import Params, Value, with_values

# The optuna.Trial methods a dimension calls: suggest_int, suggest_float, suggest_categorical.
Suggest = Any


class Entry(BaseModel):
    """Strict, immutable, no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Range(Entry):
    """A number in [low, high]: an integer when both ends are, on a log scale or a grid."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be less than high ({self.high})")
        if self.log and (self.step is not None or self.low <= 0):
            raise ValueError("a log range needs low > 0 and no step")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step ({self.step}) must be > 0")
        return self

    def integral(self) -> bool:
        """Return whether the range holds integers (both ends and any step are)."""
        return all(isinstance(value, int) for value in (self.low, self.high, self.step or 1))

    def suggest(self, trial: Suggest, key: str) -> Value:
        """Return the trial's value for `key`."""
        if self.integral():
            return trial.suggest_int(key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log)

    def ends(self) -> tuple[Value, ...]:
        """Return the values that bound the range."""
        return self.low, self.high


class Choices(Entry):
    """One of a list of values."""

    choices: Annotated[tuple[Value, ...], Field(strict=False, min_length=1)]

    def suggest(self, trial: Suggest, key: str) -> Value:
        """Return the trial's value for `key`."""
        return trial.suggest_categorical(key, self.choices)

    def ends(self) -> tuple[Value, ...]:
        """Return every value."""
        return self.choices


class Fixed(Entry):
    """The same value in every trial."""

    value: Value

    def suggest(self, trial: Suggest, key: str) -> Value:
        """Return the value (the trial records it as a user attribute, not a param)."""
        trial.set_user_attr(key, self.value)
        return self.value

    def ends(self) -> tuple[Value, ...]:
        """Return the value."""
        return (self.value,)


Dimension = Range | Choices | Fixed


# The pruners tune.yaml may name: Optuna's, by the name of their class.
PRUNERS = {"median": "MedianPruner", "successive_halving": "SuccessiveHalvingPruner",
           "hyperband": "HyperbandPruner", "none": "NopPruner"}


class Pruner(BaseModel):
    """Optuna's pruner by name, with its class's keyword arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: Literal[tuple(PRUNERS)]  # type: ignore[valid-type]

    def build(self, path: Path = Path("tune.yaml")) -> Any:
        """Return the Optuna pruner, or fail in one line naming a keyword it refuses."""
        import optuna  # noqa: PLC0415 - Optuna loads only when a study runs

        options = dict(self.model_extra or {})
        try:
            return getattr(optuna.pruners, PRUNERS[self.name])(**options)
        except (TypeError, ValueError) as err:
            raise ParamsError(f"{path}: pruner {self.name} with {options} is invalid: "
                              f"{err}") from err


class SearchSpace(Entry):
    """tune.yaml: the default study name, the sampler's seed, the pruner and the space."""

    study: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    pruner: Pruner = Pruner(name="none")
    space: Annotated[dict[str, Dimension], Field(min_length=1)]

    def suggest(self, trial: Suggest) -> dict[str, Value]:
        """Return a trial's params.yaml values by dotted key."""
        return {key: dimension.suggest(trial, key) for key, dimension in self.space.items()}


def _dimension(key: str, raw: Any) -> Dimension:
    """Return one entry of `space` typed: a mapping with low/high or choices, or a value."""
    if not isinstance(raw, dict):
        return Fixed(value=raw)
    kind = Range if "low" in raw or "high" in raw else Choices
    return kind.model_validate(raw)


def parse_space(raw: Any, params: Params, path: Path) -> SearchSpace:
    """Validate tune.yaml's content against the params it varies; fail in one line."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping with study, seed and space")
    keys = params.flat()
    space = raw.get("space")
    dimensions: dict[str, Dimension] = {}
    for key, entry in (space.items() if isinstance(space, dict) else ()):
        if key not in keys:
            raise ParamsError(f"{path}: space.{key} is not a params.yaml key "
                              f"(keys are section.key, as in `dvc exp run -S`)")
        try:
            dimensions[key] = _dimension(key, entry)
        except ValidationError as err:
            raise ParamsError(f"{path}: space.{key} = {entry!r} is invalid: "
                              f"{err.errors()[0]['msg']}") from err
        for value in dimensions[key].ends():
            try:
                with_values(params, {key: value})
            except ParamsError as err:
                raise ParamsError(f"{path}: space.{key} allows {value!r}, which params.yaml "
                                  f"does not ({err})") from err
    try:
        parsed = SearchSpace.model_validate({**raw, "space": dimensions})
    except ValidationError as err:
        error = err.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "tune.yaml"
        raise ParamsError(f"{path}: {where} is invalid: {error['msg']}") from err
    parsed.pruner.build(path)  # a keyword the pruner refuses fails here, not mid-study
    return parsed


def load_space(path: Path, params: Params) -> SearchSpace:
    """Read and validate a search space file."""
    return parse_space(read_yaml(path), params, path)
