"""Command: search params.yaml with an Optuna study whose trials are DVC experiments.

    python -m pipeline.tune                       # trials until the study holds 30
    python -m pipeline.tune --trials 10 --jobs 2  # two trials at a time
    python -m pipeline.tune --timeout 15          # ... or for 15 minutes

tune.yaml holds the space and the pruner.
"""

import argparse
import logging
import subprocess
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import optuna

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.errors import PipelineError
from pipeline.params import Params, load_params
from pipeline.tracking import run_data, store
from pipeline.tracking.registry import REPORTED_METRIC
from pipeline.tuning.space import load_space
from pipeline.tuning.trial import TrialError, objective

log = logging.getLogger(__name__)

# A trial whose worker stops beating for this long (a killed machine) is marked FAIL by
# the next worker, so `--trials` counts only live or finished trials.
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120


def parse_arguments() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.tune",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30,
                        help="run trials until the study holds this many (default 30)")
    parser.add_argument("--jobs", type=int, default=1, help="trials at once on this machine")
    parser.add_argument("--timeout", type=float, default=None, metavar="MINUTES",
                        help="start no trial after this many minutes (running ones finish)")
    parser.add_argument("--storage", default=None,
                        help=f"Optuna storage URL (default sqlite:///{paths.STUDY_DB})")
    parser.add_argument("--study", default=None, help="study name (default: tune.yaml's)")
    parser.add_argument("--space", type=Path, default=paths.TUNE_FILE,
                        help=f"search space file (default {paths.TUNE_FILE})")
    arguments = parser.parse_args()
    for option in ("trials", "jobs"):
        if getattr(arguments, option) < 1:
            parser.error(f"--{option} must be at least 1")
    if arguments.timeout is not None and not arguments.timeout > 0:
        parser.error("--timeout must be a number of minutes above 0")
    return arguments


def storage(url: str | None) -> optuna.storages.RDBStorage:
    """Return the study's RDB storage, with heartbeats so a dead worker's trials fail."""
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url or f"sqlite:///{paths.STUDY_DB.resolve()}",
                                          heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS)


# Trials that count towards --trials: running, completed or pruned. Failed ones do not, so
# a study that failed (a file not committed, say) runs its trials once that is fixed.
COUNTED = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE,
           optuna.trial.TrialState.PRUNED)


def held_trials(rdb: optuna.storages.BaseStorage, study: str) -> int:
    """Return how many trials the study holds that count towards --trials (none if new)."""
    try:
        return len(optuna.load_study(study_name=study, storage=rdb).get_trials(
            deepcopy=False, states=COUNTED))
    except KeyError:  # a new study
        return 0


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """Optuna's TPE seeded `seed + N` for trial N: replays exactly, yet parallel workers
    differ. One TPESampler per trial: TPE keeps no state but the storage."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        # `--jobs` runs trials in threads, each its own trial number: no key is shared.
        self._by_trial: dict[int, optuna.samplers.TPESampler] = {}

    def _tpe(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.TPESampler:
        if trial.number not in self._by_trial:
            self._by_trial[trial.number] = optuna.samplers.TPESampler(
                seed=self.seed + trial.number)
        return self._by_trial[trial.number]

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        return self._tpe(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        return self._tpe(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: Any) -> Any:
        return self._tpe(trial).sample_independent(study, trial, param_name,
                                                   param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._tpe(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: optuna.trial.TrialState, values: Any) -> None:
        self._tpe(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)


def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Log a finished trial's scores against the best so far."""
    if trial.state != optuna.trial.TrialState.COMPLETE:
        return
    best = study.best_trial
    log.info("trial %d: validation MSE %.3g, test MSE %.3g, %s s; best so far: trial %d "
             "(validation %.3g)", trial.number, trial.value,
             trial.user_attrs[REPORTED_METRIC], trial.user_attrs["seconds"], best.number,
             best.value)


def summary(study: optuna.Study) -> None:
    """Log the best trial and how to use it."""
    states = [trial.state.name for trial in study.trials]
    counts = ", ".join(f"{states.count(state)} {state.lower()}" for state in sorted(set(states)))
    log.info("study %s: %d trials (%s)%s", study.study_name, len(states), counts,
             training_share(study.trials))
    try:
        best = study.best_trial
    except ValueError:
        raise PipelineError(f"no trial of study {study.study_name} completed; each failed "
                            f"trial's reason is above and in its log under "
                            f"{paths.TUNE_LOGS_DIR}") from None
    log.info("best: trial %d, experiment %s: validation free-running MSE %.3g, test %.3g; "
             "%s", best.number, best.user_attrs["experiment"], best.value,
             best.user_attrs[REPORTED_METRIC],
             ", ".join(f"{key}={value}" for key, value in best.params.items()))
    log.info("best so far, by trial: %s", ", ".join(
        f"{number}: {value:.3g}" for number, value in improvements(study.trials)))
    log.info("apply it with `dvc exp apply %s`; its model: `python -m pipeline.champion`",
             best.user_attrs["experiment"])


def training_share(trials: list[optuna.trial.FrozenTrial]) -> str:
    """Return, for the log, the share of the trials' time that went to training."""
    timed = [trial for trial in trials if trial.user_attrs.get(run_data.FIT_SECONDS) is not None]
    total = sum(trial.user_attrs["seconds"] for trial in timed)
    if not total:
        return ""
    fitting = sum(trial.user_attrs[run_data.FIT_SECONDS] for trial in timed)
    return f"; {100 * fitting / total:.0f}% of their {total:.0f} s trained the models"


def improvements(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[int, float]]:
    """Return (number, value) of each completed trial that beat every earlier one."""
    found: list[tuple[int, float]] = []
    for trial in sorted(trials, key=lambda trial: trial.number):
        if trial.state == optuna.trial.TrialState.COMPLETE and (
                not found or trial.value < found[-1][1]):
            found.append((trial.number, trial.value))
    return found


def require_committed(params: Params) -> None:
    """Refuse a study on a CSV not committed: trials run from the last commit."""
    if params.generate.source != "csv":
        return
    path = params.generate.csv.path
    for candidate in (f"{path}.dvc", path):
        found = subprocess.run(["git", "cat-file", "-e", f"HEAD:{candidate}"],
                               capture_output=True, check=False)
        if found.returncode == 0:
            return
    raise PipelineError(f"{path} is not committed, so no trial would find it: commit it "
                        f"first (`dvc add {path} && git add {path}.dvc && git commit -m "
                        f"data`); trials run on the last commit")


def main() -> None:
    """Create or join the study and run trials until it holds --trials of them."""
    arguments = parse_arguments()
    params = load_params()
    space = load_space(arguments.space, params)
    require_committed(params)
    name = arguments.study or space.study
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # this module logs each trial
    experiment_id = store.experiment_id(params.tracking.experiment)
    rdb = storage(arguments.storage)
    held = held_trials(rdb, name)
    study = optuna.create_study(storage=rdb, study_name=name, direction="minimize",
                                sampler=TrialSeededTPE(space.seed),
                                pruner=space.pruner.build(), load_if_exists=True)
    to_run = arguments.trials - held
    log.info("study %s: %d trials so far, running %d (%d at a time)%s", name, held,
             max(to_run, 0), arguments.jobs,
             f" for at most {arguments.timeout:g} minutes" if arguments.timeout else "")
    if to_run > 0:
        # Enqueued trials (Optuna's enqueue_trial) are run first, with their params.
        study.optimize(partial(objective, space=space, study=name,
                               experiment_id=experiment_id),
                       n_trials=to_run, n_jobs=arguments.jobs, catch=(TrialError,),
                       timeout=arguments.timeout * 60 if arguments.timeout else None,
                       callbacks=[optuna.study.MaxTrialsCallback(arguments.trials, COUNTED),
                                  report])
    summary(study)


if __name__ == "__main__":
    run_stage(main)
