"""dvc.yaml agrees with pipeline/paths.py and with what each stage's code imports."""

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, run

from pipeline.paths import STAGES

DVC_YAML: dict[str, Any] = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
HEAVY = ("tensorflow", "keras", "mlflow", "matplotlib.pyplot")
# The stages the design keeps light: TensorFlow alone costs 2.5-5 s to import, MLflow
# 1-2.5 s.
MUST_NOT_IMPORT = {
    "generate": {"tensorflow", "keras", "mlflow"},
    "window": {"tensorflow", "keras", "mlflow"},
    "plot": {"tensorflow", "keras"},
}


def entries(stage: dict[str, Any], kind: str) -> set[str]:
    """Return the paths listed under `kind`, whether plain or with options."""
    return {next(iter(item)) if isinstance(item, dict) else item for item in stage.get(kind, [])}


def is_package(name: str) -> bool:
    """Return whether a dotted pipeline name is a package (a folder), not a module."""
    return (ROOT / name.replace(".", "/")).is_dir()


def lazily_imported(stage: str) -> list[str]:
    """Return the pipeline modules a stage imports inside a function (only when it runs)."""
    tree = ast.parse((ROOT / "pipeline" / "stages" / f"{stage}.py").read_text(encoding="utf-8"))
    return [f"{node.module}.{alias.name}" if is_package(node.module) else node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module.startswith("pipeline")
            and node.col_offset > 0 for alias in node.names]


def imported(stage: str) -> dict[str, Any]:
    """Import a stage and the modules it imports lazily in a fresh interpreter; return its
    pipeline and heavy modules."""
    code = ("import importlib, json, sys\nfor name in sys.argv[1:]: "
            "importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    modules = json.loads(run([sys.executable, "-c", code, f"pipeline.stages.{stage}",
                              *lazily_imported(stage)], ROOT).stdout)
    return {
        "files": {name.replace(".", "/") + ".py" for name in modules
                  if name.startswith("pipeline.") and not is_package(name)},
        "heavy": {name for name in HEAVY if name in modules},
    }


def test_package_inits_hold_only_their_docstring() -> None:
    # They are no stage's dep, so code in them would change results unseen by DVC.
    inits = sorted((ROOT / "pipeline").rglob("__init__.py"))
    assert len(inits) == 4  # pipeline and its stages, tracking and tuning
    for init in inits:
        (only,) = ast.parse(init.read_text(encoding="utf-8")).body
        assert isinstance(only, ast.Expr) and isinstance(only.value, ast.Constant), init


def test_dvc_yaml_has_exactly_the_stages_in_paths() -> None:
    assert list(DVC_YAML["stages"]) == list(STAGES)


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_data_params_and_outputs_match_paths(name: str) -> None:
    stage, io = DVC_YAML["stages"][name], STAGES[name]
    assert stage["cmd"] == f"python -m pipeline.stages.{name}"
    data_deps = {dep for dep in entries(stage, "deps") if not dep.startswith("pipeline/")}
    named = {f"${{{key}}}" for key in io.reads_named_by}
    assert data_deps == {str(path) for path in io.reads} | named
    assert stage["params"] == list(io.params)
    outputs = entries(stage, "outs") | entries(stage, "metrics") | entries(stage, "plots")
    assert outputs == {str(path) for path in io.writes}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_code_deps_are_exactly_the_modules_it_imports(name: str) -> None:
    code_deps = {dep for dep in entries(DVC_YAML["stages"][name], "deps")
                 if dep.startswith("pipeline/")}
    found = imported(name)  # one interpreter per stage
    assert code_deps == found["files"]
    assert all((ROOT / dep).is_file() for dep in code_deps)
    assert not found["heavy"] & MUST_NOT_IMPORT.get(name, set())


def test_data_outputs_are_under_data_and_not_in_git() -> None:
    for io in STAGES.values():
        for path in io.writes:
            assert path.parts[0] == "data"
            tracked = run(["git", "ls-files", "--error-unmatch", str(path)], ROOT, check=False)
            assert tracked.returncode != 0, f"{path} is tracked by git"


def test_top_level_plots_point_at_stage_outputs() -> None:
    written = {str(path) for io in STAGES.values() for path in io.writes}
    for definition in DVC_YAML["plots"]:
        (spec,) = definition.values()
        assert set(spec["y"]) <= written
        assert all(Path(ROOT / path).suffix == ".csv" for path in spec["y"])
