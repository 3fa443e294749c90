"""Benchmark: the committed defaults on real public series, against the naive forecasts.

    python -m benchmarks.own_series [--examples sunspots co2] [-S key=value ...]
    python -m benchmarks.own_series --study 15 [--no-pruning]

For each example CSV in docs/examples it copies the project into a temporary git+DVC
repo and runs `dvc exp run` with only the CSV settings changed (plus any `-S` you add),
exactly as a user following README would, then prints a Markdown table of the
free-running skill on validation and test against the mean and the seasonal naive
forecast (the input window, a season earlier), and the stages' wall time.

With `--study MINUTES` it commits the CSV settings to params.yaml and runs
`python -m pipeline.tune --timeout MINUTES --jobs 2` on the example's search space
(docs/examples/tune-<example>.yaml; `--no-pruning` sets its pruner to none) instead, and
reports the trials, the share of their time that trained models, and the skills of the
trial chosen on validation.
"""

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.benchmark import ROOT, dvc, make_repo, measure
from pipeline import paths

log = logging.getLogger("benchmarks")

# The CSV settings of each example: what a user passes with `-S generate.csv.<key>=...`.
EXAMPLES = {
    "sunspots": {"path": "docs/examples/sunspots.csv", "x": "year", "input": "sunspots",
                 "target": "sunspots_in_11_years", "missing": "drop", "test_rows": 60},
    "co2": {"path": "docs/examples/co2.csv", "x": "week", "input": "co2",
            "target": "co2_in_52_weeks", "missing": "drop", "test_rows": 208},
}


def csv_settings(example: str) -> list[str]:
    """Return the `-S` arguments that point the pipeline at an example CSV."""
    settings = ["generate.source=csv"] + [f"generate.csv.{key}={value}"
                                          for key, value in EXAMPLES[example].items()]
    return [argument for setting in settings for argument in ("-S", setting)]


def run_example(example: str, extra: list[str]) -> dict[str, object]:
    """Run one example's experiment in a fresh repo; return its skills and seconds."""
    with tempfile.TemporaryDirectory() as parent:
        repo = make_repo(Path(parent))
        started = time.perf_counter()
        dvc(repo, "exp", "run", "-n", example, *csv_settings(example),
            *[argument for setting in extra for argument in ("-S", setting)])
        seconds = time.perf_counter() - started
        metrics = json.loads((repo / paths.METRICS).read_text(encoding="utf-8"))
    return {"example": example, "seconds": round(seconds, 1),
            **{f"{split}.{key}": metrics[split].get(key)
               for split in ("validation", "test")
               for key in ("skill_vs_mean", "skill_vs_input", "free_run_mse")}}


def run_study(example: str, minutes: float, pruning: bool) -> dict[str, object]:
    """Run a study on one example in a fresh repo; return what it found."""
    import optuna  # noqa: PLC0415 - only the study mode needs them
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as parent:
        repo = make_repo(Path(parent), {"generate": {"source": "csv", "csv": {
            **yaml.safe_load((ROOT / "params.yaml").read_text())["generate"]["csv"],
            **EXAMPLES[example]}}})
        space_file = repo / "docs" / "examples" / f"tune-{example}.yaml"
        space = yaml.safe_load(space_file.read_text(encoding="utf-8"))
        if not pruning:
            space["pruner"] = {"name": "none"}
        space_file.write_text(yaml.safe_dump(space), encoding="utf-8")
        for command in (["git", "add", "-A"], ["git", "-c", "user.name=bench", "-c",
                                               "user.email=bench@localhost", "commit", "-qm",
                                               "own series"]):
            subprocess.run(command, cwd=repo, check=True)
        started = time.perf_counter()
        measure([sys.executable, "-m", "pipeline.tune", "--space", str(space_file),
                 "--timeout", str(minutes), "--jobs", "2", "--trials", "1000"], repo)
        seconds = time.perf_counter() - started
        study = optuna.load_study(study_name=space["study"],
                                  storage=f"sqlite:///{repo / paths.STUDY_DB}")
        client = MlflowClient(f"sqlite:///{repo / paths.TRACKING_DB}")
        return study_row(example, study, client, seconds, pruning)


def study_row(example: str, study: Any, client: Any, seconds: float,
              pruning: bool) -> dict[str, object]:
    """Return a study's figures: trials by state, training share, the best's skills."""
    trials = study.trials
    states = [trial.state.name.lower() for trial in trials]
    worker = sum(trial.user_attrs.get("seconds", 0) for trial in trials)
    fitting = sum(trial.user_attrs.get("fit_seconds") or 0 for trial in trials)
    best = study.best_trial
    (tracked,) = client.search_runs(
        [client.get_experiment_by_name("sin-cos-seq2seq").experiment_id],
        f"tags.`pipeline.study` = '{study.study_name}' and "
        f"tags.`pipeline.trial` = '{best.number}'")
    metrics = tracked.data.metrics
    return {"example": example, "pruning": pruning, "minutes": round(seconds / 60, 1),
            "trials": ", ".join(f"{states.count(state)} {state}" for state in sorted(set(states))),
            "training share": round(fitting / worker, 3) if worker else None,
            "best": best.number, "best params": json.dumps(best.params),
            **{f"{split}.{key}": metrics.get(f"{split}.{key}")
               for split in ("validation", "test") for key in ("skill_vs_mean", "skill_vs_input")}}


def table(rows: list[dict[str, object]]) -> str:
    """Return the rows as a Markdown table."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[column]:.3g}" if isinstance(row[column], float)
                                       else str(row[column]) for column in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    """Run the chosen examples one after another and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.own_series")
    parser.add_argument("--examples", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    parser.add_argument("-S", dest="extra", action="append", default=[],
                        help="another params.yaml value, as `dvc exp run -S` takes it")
    parser.add_argument("--study", type=float, metavar="MINUTES",
                        help="run a tuning study of this many minutes instead")
    parser.add_argument("--no-pruning", action="store_true", help="the study prunes nothing")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = []
    for example in arguments.examples:
        rows.append(run_study(example, arguments.study, not arguments.no_pruning)
                    if arguments.study else run_example(example, arguments.extra))
        log.info("%s", json.dumps(rows[-1]))
    print(table(rows))


if __name__ == "__main__":
    main()
