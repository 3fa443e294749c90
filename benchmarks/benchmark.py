"""Benchmark: the project against the seed's own way, measured in one run.

    python -m benchmarks.benchmark [--seeds 3] [--seed-windows 0] [--no-scale]
                                   [--stages-at-scale 6]

Copies the project into a temporary git+DVC repo, runs `dvc repro` there on default
params, then times each measure in its own process (wall time, peak memory) and prints a
Markdown table with the ratio project/seed. `--seed-windows N` decodes only N windows
the seed's slow way and scales its time to all of them (0 = all, the default).
"""

import argparse
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline import paths

log = logging.getLogger("benchmarks")
ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pipeline", "benchmarks", "params.yaml", "dvc.yaml", ".dvcignore",
                 ".gitignore", "docs/examples")  # the example CSV is generate's dep


@dataclass
class Measured:
    """One process: its wall seconds, peak resident memory and standard output."""

    seconds: float
    peak_mb: float
    output: str

    def figures(self) -> dict[str, Any]:
        """Return the JSON line a benchmark task printed."""
        return json.loads(self.output.strip().splitlines()[-1])


def measure(command: list[str], cwd: Path) -> Measured:
    """Run `command` to completion; fail loudly if it fails."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()[-3000:]}")
        return Measured(seconds, usage.ru_maxrss / 1024, out.read())


def task(name: str, repo: Path, number: int = 0) -> Measured:
    """Run one of benchmarks.tasks in its own process."""
    return measure([sys.executable, "-m", "benchmarks.tasks", name, str(repo), str(number)],
                   repo)


def stage(name: str, repo: Path) -> Measured:
    """Run one pipeline stage as DVC would."""
    return measure([sys.executable, "-m", f"pipeline.stages.{name}"], repo)


def dvc(repo: Path, *args: str) -> Measured:
    """Run a DVC command."""
    return measure([sys.executable, "-m", "dvc", *args], repo)


def make_repo(parent: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Copy the project into a new git+DVC repo under `parent`; apply params overrides."""
    repo = parent / "repo"
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", str(ROOT / name), str(repo / name)], check=True)
    set_params(repo, overrides or {})
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                     "commit", "-qm", "benchmark"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=repo, check=True)
    return repo


def set_params(repo: Path, overrides: dict[str, dict[str, Any]]) -> None:
    """Apply `section -> key -> value` overrides to the repo's params.yaml."""
    params = yaml.safe_load((repo / paths.PARAMS_FILE).read_text(encoding="utf-8"))
    for section, values in overrides.items():
        params[section].update(values)
    (repo / paths.PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False),
                                          encoding="utf-8")


@dataclass
class Row:
    """One line of the table: the seed-style figure (if any), the project's, a target."""

    what: str
    seed: float | None
    project: float
    target: str
    seed_mb: float | None = None
    project_mb: float | None = None


def training_rows(repo: Path, seeds: list[int]) -> list[Row]:
    """Fit 80 epochs both ways for each seed; compare median time and mean val_loss."""
    runs = {way: [task(f"{way}-fit", repo, seed) for seed in seeds]
            for way in ("seed", "project")}
    seconds = {way: statistics.median(r.figures()["seconds"] for r in found)
               for way, found in runs.items()}
    loss = {way: statistics.mean(r.figures()["val_loss"] for r in found)
            for way, found in runs.items()}
    free_run = {way: [r.figures()["test_free_run_mse"] for r in found]
                for way, found in runs.items()}
    log.info("test free-running MSE per seed %s: seed-style %s, project %s", seeds,
             *(", ".join(f"{mse:.3g}" for mse in free_run[way]) for way in ("seed", "project")))
    peak = {way: max(r.peak_mb for r in found) for way, found in runs.items()}
    return [Row(f"train: 80 epochs, s (median of {len(seeds)} seeds)", seconds["seed"],
                seconds["project"], "≤ 0.5×", peak["seed"], peak["project"]),
            Row(f"train: final val_loss (mean of {len(seeds)} seeds)", loss["seed"],
                loss["project"], "≤ 1×"),
            Row(f"train: test free-running MSE (median of {len(seeds)} seeds)",
                statistics.median(free_run["seed"]), statistics.median(free_run["project"]),
                "")]


def scale_training_rows(repo: Path) -> list[Row]:
    """Seconds per epoch and peak memory over 10^3..10^5 points, batch 16 and 256."""
    rows = []
    for points in (10**3, 10**4, 10**5):
        for batch_size in (16, 256):
            seed, project = (task(f"{way}-scale", repo, points * 1000 + batch_size)
                             for way in ("seed", "project"))
            rows.append(Row(f"train at scale: s per epoch, {points:.0e} points, batch "
                            f"{batch_size}", seed.figures()["seconds"],
                            project.figures()["seconds"],
                            "≤ 0.5×" if batch_size == 16 else "", seed.peak_mb,
                            project.peak_mb))
    return rows


def decode_rows(repo: Path, seed_windows: int) -> list[Row]:
    """Decode every evaluated window both ways; then the whole evaluate stage."""
    seed_run, project_run = task("seed-decode", repo, seed_windows), task("project-decode", repo)
    seed, project = seed_run.figures(), project_run.figures()
    seed_total = seed["import_seconds"] + seed["per_window"] * seed["windows"]
    scaled = "" if seed["sampled"] == seed["windows"] else f", seed scaled from {seed['sampled']}"
    evaluate = stage("evaluate", repo)
    return [Row("decode: ms per window, once traced", seed["per_window"] * 1e3,
                project["per_window"] * 1e3, "≤ 0.001×", seed_run.peak_mb,
                project_run.peak_mb),
            Row(f"evaluate stage, s (vs seed loop over {seed['windows']} windows, TensorFlow "
                f"import included{scaled})", seed_total, evaluate.seconds, "≤ 0.1×", None,
                evaluate.peak_mb)]


def light_stage_rows(repo: Path) -> list[Row]:
    """Wall time of the stages that import no TensorFlow, and window on 10^6 points."""
    rows = [Row(f"{name} stage, s", None, run.seconds, "", None, run.peak_mb)
            for name in ("generate", "window", "plot") for run in [stage(name, repo)]]
    with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
        big = make_repo(Path(scratch), {"generate": {"points": 10**6, "test_points": 100}})
        stage("generate", big)
        windowed = stage("window", big)
    return [*rows, Row("window stage on 1e6 points, s", None, windowed.seconds, "≤ 1 s", None,
                       windowed.peak_mb)]


def middle(runs: list[Measured]) -> Measured:
    """Return the run of median wall time (of an odd number of runs)."""
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def repro_rows(repo: Path, repeats: int = 3) -> list[Row]:
    """The seed notebook as a script against `dvc repro` after a model edit; a no-op repro.

    Each is the median of `repeats`, taken in turns so that a change in the machine's load
    reaches both. Every edit sets a new `model.units`: a value run before would be
    restored from DVC's run cache instead of trained.
    """
    scripts, repros = [], []
    for units in range(11, 11 + repeats):
        scripts.append(task("seed-script", repo))
        set_params(repo, {"model": {"units": units}})
        repros.append(dvc(repo, "repro"))
    script, edited = middle(scripts), middle(repros)
    noop = dvc(repo, "repro")
    return [Row(f"model.units edit: dvc repro vs seed notebook script, s (median of "
                f"{repeats})", script.seconds, edited.seconds, "≤ 1.5×", script.peak_mb,
                edited.peak_mb),
            Row("no-op dvc repro, s", None, noop.seconds, "≤ 3 s", None, noop.peak_mb)]


def breakdown(repo: Path) -> list[str]:
    """Show where each tracking stage's wall time goes: imports, MLflow, the rest.

    Imports: importing the stage module in a fresh process. MLflow: cProfile's time inside
    MLflow's functions (its Keras callback and lazy imports included) during a profiled
    run of the stage, whose own wall time is shown beside it: profiling slows Python code,
    so read MLflow's share against the profiled wall, not the plain one.
    """
    lines = ["| stage | wall, s | imports, s | profiled wall, s | MLflow in it, s |",
             "|---|---|---|---|---|"]
    code = ("import time; t = time.perf_counter(); import pipeline.stages.{0}; "
            "print(time.perf_counter() - t)")
    for name in ("train", "evaluate", "plot"):
        wall = stage(name, repo).seconds
        imports = float(measure([sys.executable, "-c", code.format(name)], repo).output)
        profile = repo / f"{name}.prof"
        profiled = measure([sys.executable, "-m", "cProfile", "-o", str(profile), "-m",
                            f"pipeline.stages.{name}"], repo).seconds
        lines.append(f"| {name} | {wall:.2f} | {imports:.2f} | {profiled:.2f} | "
                     f"{mlflow_seconds(profile):.2f} |")
    return lines


# Project functions MLflow calls back: their calls into MLflow are inside an MLflow call.
CALLED_BY_MLFLOW = {"_save_model_into_new_folder"}


def mlflow_seconds(profile: Path) -> float:
    """Return the seconds spent inside MLflow's functions, entered from outside MLflow.

    Each call into MLflow counts once, by the cumulative time cProfile gives it for that
    caller; module bodies (imports, measured apart) are left out.
    """
    def in_mlflow(filename: str) -> bool:
        return "/site-packages/mlflow/" in filename

    total = 0.0
    # stats: {(file, line, function): (calls, primitive, own, cumulative, callers)}, and
    # callers: {(file, line, function): (calls, primitive, own, cumulative)}.
    for (filename, _, function), (*_, callers) in pstats.Stats(str(profile)).stats.items():
        if in_mlflow(filename) and function != "<module>":
            total += sum(timing[3] for caller, timing in callers.items()
                         if not in_mlflow(caller[0]) and "importlib" not in caller[0]
                         and caller[2] not in CALLED_BY_MLFLOW)
    return total


SEED_SPACING_PI = 6 / 99  # the seed's x step, in units of π


def scale_overrides(points: int) -> dict[str, dict[str, Any]]:
    """Params for a long sin→cos series at the seed's spacing, its test series 10 % of it,
    one epoch at batch 256."""
    test_points = points // 10
    return {"generate": {"points": points, "x_stop_pi": -3 + SEED_SPACING_PI * (points - 1),
                         "test_points": test_points, "test_x_start_pi": 3.1,
                         "test_x_stop_pi": 3.1 + SEED_SPACING_PI * (test_points - 1)},
            "train": {"epochs": 1, "batch_size": 256}, "evaluate": {"batch_size": 8192}}


def folder_mb(folder: Path, skip: str | None = None) -> float:
    """Return the size of the files under `folder` in MB, leaving out paths holding `skip`."""
    return sum(path.stat().st_size for path in folder.rglob("*")
               if path.is_file() and not (skip and skip in path.parts)) / 1e6


def scale_stage_table(lengths: list[int]) -> str:
    """Run every stage, each as `dvc repro` runs it, on series of each length: wall time,
    peak memory; then the size of what people read and of the run's artifacts."""
    lines = ["| training points | stage | wall, s | peak MB |", "|---|---|---|---|"]
    sizes = ["| training points | data/metrics + data/plots, MB | run artifacts without "
             "models, MB |", "|---|---|---|"]
    for points in lengths:
        with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
            repo = make_repo(Path(scratch), scale_overrides(points))
            for name in paths.STAGES:
                run = stage(name, repo)
                log.info("%d points: %s %.1f s, %.0f MB", points, name, run.seconds,
                         run.peak_mb)
                lines.append(f"| {points:.0e} | {name} | {run.seconds:.3g} | {run.peak_mb:.0f} |")
            read = folder_mb(repo / paths.METRICS_DIR) + folder_mb(repo / paths.PLOTS_DIR)
            artifacts = folder_mb(repo / paths.ARTIFACTS_DIR, skip="models")
            sizes.append(f"| {points:.0e} | {read:.2f} | {artifacts:.2f} |")
    return "\n".join([*lines, "", *sizes])


def table(rows: list[Row]) -> str:
    """Return the rows as a Markdown table."""
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    lines = ["| measure | seed-style | project | project/seed | target "
             "| seed peak MB | project peak MB |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row.project / row.seed:.3g}×" if row.seed else ""
        lines.append(f"| {row.what} | {number(row.seed)} | {number(row.project)} | {ratio} "
                     f"| {row.target} | {number(row.seed_mb)} | {number(row.project_mb)} |")
    return "\n".join(lines)


def main() -> None:
    """Set up a temporary repo, run every measurement, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds to compare")
    parser.add_argument("--seed-windows", type=int, default=0,
                        help="windows to decode the seed's way (0 = all)")
    parser.add_argument("--no-scale", action="store_true", help="skip training at scale")
    parser.add_argument("--stages-at-scale", type=int, default=6, metavar="N",
                        help="run every stage on series of 10^4 .. 10^N points (7 takes "
                             "several minutes more; 0 skips)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    # dvc.yaml's `python` must be this interpreter, even without an activated venv.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with tempfile.TemporaryDirectory(prefix="benchmark-") as scratch:
        repo = make_repo(Path(scratch))
        log.info("full dvc repro took %.1f s", dvc(repo, "repro").seconds)
        seeds, rows = list(range(42, 42 + args.seeds)), []
        sections = [("training", lambda: training_rows(repo, seeds)),
                    ("decoding", lambda: decode_rows(repo, args.seed_windows)),
                    ("light stages", lambda: light_stage_rows(repo)),
                    ("dvc repro", lambda: repro_rows(repo))]
        if not args.no_scale:
            sections.append(("training at scale", lambda: scale_training_rows(repo)))
        for section, run in sections:
            log.info("measuring %s", section)
            rows += run()
        log.info("measuring the per-stage breakdown")
        stages = breakdown(repo)
    lengths = [10**power for power in range(4, args.stages_at_scale + 1)]
    scaled = scale_stage_table(lengths) if lengths else ""
    sys.stdout.write(table(rows) + "\n\n" + "\n".join(stages) + "\n\n" + scaled + "\n")


if __name__ == "__main__":
    main()
