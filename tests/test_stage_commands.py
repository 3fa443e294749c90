"""Stages run as commands: a user's mistake is one line and a non-zero exit, no traceback."""

import sys
from pathlib import Path
from typing import Any

from conftest import run, with_overrides, write_params


def test_bad_param_stops_the_stage_with_one_line(tmp_path: Path,
                                                 tiny_params: dict[str, Any]) -> None:
    write_params(tmp_path, with_overrides(tiny_params, {"window": {"steps": 40}}))
    done = run([sys.executable, "-m", "pipeline.stages.generate"], tmp_path, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert "window.steps = 40 is invalid: must be less than generate.points (40)" in line
    assert not (tmp_path / "data").exists()


def test_missing_input_names_the_file_and_the_fix(tmp_path: Path,
                                                  tiny_params: dict[str, Any]) -> None:
    write_params(tmp_path, tiny_params)
    done = run([sys.executable, "-m", "pipeline.stages.window"], tmp_path, check=False)
    assert done.returncode == 2
    assert "data/series/train.csv: missing; run `dvc repro` to create it" in done.stderr


def test_generate_then_window_write_their_outputs(tmp_path: Path,
                                                  tiny_params: dict[str, Any]) -> None:
    write_params(tmp_path, tiny_params)
    run([sys.executable, "-m", "pipeline.stages.generate"], tmp_path)
    done = run([sys.executable, "-m", "pipeline.stages.window"], tmp_path)
    assert "train: 25 windows, validation: 7 windows, test: 32 windows" in done.stderr
    assert sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file()) == [
        "test.csv", "train.csv", "windows.npz"]
