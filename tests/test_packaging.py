"""The package as pip builds it: a wheel holds every module of pipeline/, subpackages
included (a `pip install .` once lacked pipeline.tracking and pipeline.tuning)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_module_of_the_package(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ into the tree it builds.
    project = tmp_path / "project"
    shutil.copytree(ROOT / "pipeline", project / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    # No build isolation: the dev extra's setuptools builds it, with no download.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path), str(project)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("pipeline/")}
    sources = {path.relative_to(ROOT).as_posix() for path in ROOT.glob("pipeline/**/*.py")}
    assert {"pipeline/tracking/runs.py", "pipeline/tuning/trial.py"} <= sources
    assert sorted(sources - shipped) == []
