"""Benchmark: the project against the seed's own way, measured in one run.

    python -m pipeline.benchmark [--seeds 3] [--seed-windows 0] [--no-scale]

Copies the project into a temporary git+DVC repo, runs `dvc repro` there on default
params, then times each target in its own process (wall time and peak memory) and prints
a Markdown table with the ratio project/seed. `--seed-windows N` decodes only N windows
the seed's slow way and scales its time to all of them (0 = all, the default).
"""

import argparse
import json
import logging
import os
import re
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

log = logging.getLogger("pipeline.benchmark")
ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pipeline", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore")


@dataclass
class Measured:
    """One process: its wall seconds, peak resident memory, standard output and error."""

    seconds: float
    peak_mb: float
    output: str
    errors: str = ""

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
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()[-3000:]}")
        return Measured(seconds, usage.ru_maxrss / 1024, out.read(), err.read())


def task(name: str, repo: Path, number: int = 0) -> Measured:
    """Run one of pipeline.benchmark_tasks in its own process."""
    return measure([sys.executable, "-m", "pipeline.benchmark_tasks", name, str(repo),
                    str(number)], repo)


def stage(name: str, repo: Path) -> Measured:
    """Run one pipeline stage as DVC would."""
    return measure([sys.executable, "-m", f"pipeline.{name}"], repo)


def dvc(repo: Path, *args: str) -> Measured:
    """Run a DVC command."""
    return measure([sys.executable, "-m", "dvc", *args], repo)


def make_repo(parent: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Copy the project into a new git+DVC repo under `parent`; apply params overrides."""
    repo = parent / "repo"
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
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
    peak = {way: max(r.peak_mb for r in found) for way, found in runs.items()}
    return [Row(f"train: 80 epochs, s (median of {len(seeds)} seeds)", seconds["seed"],
                seconds["project"], "≤ 0.2×", peak["seed"], peak["project"]),
            Row(f"train: final val_loss (mean of {len(seeds)} seeds)", loss["seed"],
                loss["project"], "≤ 1×")]


def decode_rows(repo: Path, seed_windows: int) -> list[Row]:
    """Decode the validation + test windows both ways; then the whole evaluate stage."""
    seed_run, project_run = task("seed-decode", repo, seed_windows), task("project-decode", repo)
    seed, project = seed_run.figures(), project_run.figures()
    seed_total = seed["import_seconds"] + seed["per_window"] * seed["windows"]
    scaled = "" if seed["sampled"] == seed["windows"] else f", seed scaled from {seed['sampled']}"
    evaluate = tracked_stage_rows("evaluate", repo, "≤ 0.05×", seed_total)
    for row in evaluate:
        row.what += f" (vs seed loop over {seed['windows']} windows, imports included{scaled})"
    return [Row("decode: ms per window, after warm-up", seed["per_window"] * 1e3,
                project["per_window"] * 1e3, "≤ 0.001×", seed_run.peak_mb,
                project_run.peak_mb), *evaluate]


def stop_agent(repo: Path) -> None:
    """Stop the repo's tracking agent and wait until it is gone: the next stage starts cold."""
    answer = measure([sys.executable, "-m", "pipeline.agent", "stop"], repo).output.split()
    if answer[:2] == ["stopped", "agent"]:
        while _running(int(answer[2])):
            time.sleep(0.1)


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def middle(runs: list[Measured]) -> Measured:
    """Return the run of median wall time (of an odd number of runs)."""
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def repro_rows(repo: Path, repeats: int = 3) -> list[Row]:
    """The seed notebook as a script against `dvc repro` after a model edit; a no-op repro.

    Each measure is the median of `repeats`, taken in turns so that a change in the
    machine's load reaches all three. Every edit sets a new `model.units`: a value run
    before would be restored from DVC's run cache instead of trained.
    """
    scripts, colds, warms = [], [], []
    for units in range(11, 11 + 2 * repeats, 2):
        scripts.append(task("seed-script", repo))
        set_params(repo, {"model": {"units": units}})
        stop_agent(repo)
        colds.append(dvc(repo, "repro"))
        set_params(repo, {"model": {"units": units + 1}})
        warms.append(dvc(repo, "repro"))
    script, cold, warm = middle(scripts), middle(colds), middle(warms)
    noop = dvc(repo, "repro")
    what = f"model.units edit: dvc repro vs seed notebook script, s (median of {repeats})"
    return [Row(f"{what}, tracking agent running", script.seconds, warm.seconds, "≤ 0.5×",
                script.peak_mb, warm.peak_mb),
            Row(f"{what}, tracking agent started by it", script.seconds, cold.seconds,
                "≤ 0.5×", script.peak_mb, cold.peak_mb),
            Row("no-op dvc repro, s", None, noop.seconds, "≤ 3 s", None, noop.peak_mb)]


def tracked_stage_rows(name: str, repo: Path, target: str,
                       seed: float | None = None) -> list[Row]:
    """Time a tracking stage with its agent running, then with the stage starting it."""
    stage(name, repo)  # leaves the agent running
    warm = stage(name, repo)
    stop_agent(repo)
    cold = stage(name, repo)
    return [Row(f"{name} stage, s, tracking agent running", seed, warm.seconds, target,
                None, warm.peak_mb),
            Row(f"{name} stage, s, tracking agent started by it", seed, cold.seconds, target,
                None, cold.peak_mb)]


def light_stage_rows(repo: Path) -> list[Row]:
    """Wall time of the stages that must not import TensorFlow."""
    rows = []
    for name in ("generate", "window"):
        run = stage(name, repo)
        rows.append(Row(f"{name} stage, s", None, run.seconds, "≤ 1.5 s", None, run.peak_mb))
    rows += tracked_stage_rows("plot", repo, "≤ 1.5 s")
    # A figure edit is not the tracking agent's code: the agent the last plot started stays.
    figures = repo / "pipeline" / "figures.py"
    original = figures.read_text(encoding="utf-8")
    figures.write_text(original + "# edited by the benchmark\n", encoding="utf-8")
    try:
        edited = stage("plot", repo)
    finally:
        figures.write_text(original, encoding="utf-8")
    return [*rows, Row("plot stage, s, after an edit of pipeline/figures.py", None,
                       edited.seconds, "≤ 1.5 s", None, edited.peak_mb)]


def waited_for_tracking(train: Measured) -> float:
    """Return the seconds the train stage says it waited for MLflow."""
    found = re.search(r"waited ([0-9.]+) s for tracking", train.errors)
    if found is None:
        raise RuntimeError(f"train did not report its tracking wait:\n{train.errors[-2000:]}")
    return float(found.group(1))


def tracking_rows(repo: Path, repeats: int = 3) -> list[Row]:
    """What MLflow adds to train, with the agent started by train and with it running."""
    added, waited_cold, waited_warm = [], [], []
    for _ in range(repeats):
        stop_agent(repo)
        untracked = task("train-untracked", repo)
        cold = stage("train", repo)
        warm = stage("train", repo)
        added.append(cold.seconds - untracked.seconds)
        waited_cold.append(waited_for_tracking(cold))
        waited_warm.append(waited_for_tracking(warm))
    median = statistics.median
    return [Row(f"MLflow in train: stage wall minus the same work untracked, agent started "
                f"by it, s (median of {repeats})", None, median(added), "≤ 1 s"),
            Row("MLflow in train: train waited for tracking, agent started by it, s",
                None, median(waited_cold), "≤ 1 s"),
            Row("MLflow in train: train waited for tracking, agent running, s", None,
                median(waited_warm), "≤ 1 s")]


def scale_rows(parent: Path) -> list[Row]:
    """Window on 10^5 and 10^6 points; generate + window peak memory on 10^7."""
    rows, seconds = [], {}
    for points in (10**5, 10**6, 10**7):
        repo = make_repo(parent / f"scale-{points}",
                         {"generate": {"points": points, "test_points": 100}})
        generated, windowed = stage("generate", repo), stage("window", repo)
        seconds[points] = windowed.seconds
        rows.append(Row(f"scale: window on {points:.0e} points, s", None, windowed.seconds,
                        "≤ 1 s at 1e6", None, windowed.peak_mb))
        rows.append(Row(f"scale: generate on {points:.0e} points, s", None, generated.seconds,
                        "≤ 4 GB at 1e7", None, generated.peak_mb))
    rows.append(Row("scale: window 1e6 / 1e5 time", None, seconds[10**6] / seconds[10**5],
                    "≤ 12×"))
    return rows


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
    """Set up a temporary repo, run every measurement, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds to compare")
    parser.add_argument("--seed-windows", type=int, default=0,
                        help="windows to decode the seed's way (0 = all)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 1e5..1e7 runs")
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
        for section, run in (("training", lambda: training_rows(repo, seeds)),
                             ("decoding", lambda: decode_rows(repo, args.seed_windows)),
                             ("light stages", lambda: light_stage_rows(repo)),
                             ("tracking", lambda: tracking_rows(repo)),
                             ("dvc repro", lambda: repro_rows(repo))):
            log.info("measuring %s", section)
            rows += run()
        if not args.no_scale:
            log.info("measuring scale")
            rows += scale_rows(Path(scratch))
    sys.stdout.write(table(rows) + "\n")


if __name__ == "__main__":
    main()
