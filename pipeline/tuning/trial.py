"""One trial: a DVC experiment whose live val_loss (from its MLflow run) is reported to
Optuna here (optuna issue 2987); when pruned, a stop file asks `train` to end cleanly.
"""

import logging
import math
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import optuna
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.errors import PipelineError
from pipeline.params import Value
from pipeline.tracking import provenance, run_data, store
from pipeline.tracking.registry import PRUNED_TAG, RANKING_METRIC, REPORTED_METRIC
from pipeline.tuning import experiment
from pipeline.tuning.space import SearchSpace

log = logging.getLogger(__name__)

FAILURE_ATTR = "failure"  # a failed trial's reason, as a user attribute
# How often the live curve is read. Each read is a request to the tracking server, which
# costs a server with logins (basic-auth checks the password hash every time) about 0.3 s
# of CPU (measured on 2 cores): every 2 s halves that load against every second.
POLL_SECONDS = 2.0
# What a trial leaves out, unless the space sets it: the study ranks trials on metrics.
TRIAL_VALUES: dict[str, Value] = {"train.prediction_images": 0}


class TrialError(PipelineError):
    """A trial that ran but cannot be scored; the message says why."""


class LiveCurve:
    """The val_loss curve of a trial's MLflow run, read as it grows."""

    def __init__(self, experiment_id: str, study: str, number: int) -> None:
        self.client, self.experiment_id = MlflowClient(), experiment_id
        self.filter = (f"tags.`{provenance.STUDY_TAGS[provenance.STUDY_ENV]}` = '{study}' and "
                       f"tags.`{provenance.STUDY_TAGS[provenance.TRIAL_ENV]}` = '{number}'")
        self.run_id: str | None = None
        self.seen = -1  # the last epoch reported

    def fit_seconds(self) -> float | None:
        """Return how long `train` built and fitted the model, as its run records it."""
        if self.run_id is None:
            return None
        return self.client.get_run(self.run_id).data.metrics.get(run_data.FIT_SECONDS)

    def new_epochs(self) -> list[tuple[int, float]]:
        """Return (epoch, val_loss) of the epochs logged since the last call."""
        if self.run_id is None:
            found = self.client.search_runs([self.experiment_id], self.filter, max_results=1)
            if not found:
                return []
            self.run_id = found[0].info.run_id
        history = self.client.get_metric_history(self.run_id, "val_loss")
        fresh = sorted((metric.step, metric.value) for metric in history
                       if metric.step > self.seen)
        if fresh:
            self.seen = fresh[-1][0]
        return fresh


def watch(process: subprocess.Popen, trial: optuna.Trial, curve: LiveCurve,
          stop_file: Path) -> bool:
    """Report the curve while the experiment runs; ask `train` to stop once pruned. Return
    whether pruned."""
    last = math.nan
    while process.poll() is None:
        time.sleep(POLL_SECONDS)
        for epoch, last in curve.new_epochs():
            trial.report(last, epoch)
        if trial.should_prune():
            stop_file.parent.mkdir(parents=True, exist_ok=True)
            stop_file.touch()
            log.info("trial %d is pruned after epoch %d (val_loss %.3g): stopping it",
                     trial.number, curve.seen + 1, last)
            return True
    return False


def objective(trial: optuna.Trial, space: SearchSpace, study: str,
              experiment_id: str) -> float:
    """Run the trial's experiment, pruned if hopeless; return its validation free-running MSE."""
    name = f"{study}-{trial.number}"
    # The trial's name is one of its inputs: DVC's run-cache never hands a trial another
    # trial's model (two trials of the same values, one of them pruned).
    suggested = space.suggest(trial)
    values = {**TRIAL_VALUES, **suggested, "tracking.trial": name}
    trial.set_user_attr("experiment", name)
    log.info("trial %d (experiment %s) starts: %s", trial.number, name,
             ", ".join(f"{key}={value}" for key, value in suggested.items()))
    started, curve = time.monotonic(), LiveCurve(experiment_id, study, trial.number)
    stop_file = store.project_root() / paths.STOP_REQUESTS_DIR / name
    env = {provenance.STUDY_ENV: study, provenance.TRIAL_ENV: str(trial.number),
           provenance.STOP_ENV: str(stop_file)}
    try:
        with experiment.running(name, values, paths.TUNE_LOGS_DIR / f"{name}.log",
                                env) as process:
            pruned = watch(process, trial, curve, stop_file)
        found = experiment.metrics(name, (RANKING_METRIC, REPORTED_METRIC))
    except PipelineError as err:
        trial.set_user_attr(FAILURE_ATTR, str(err))
        log.warning("trial %d failed after %.0f s: %s", trial.number,
                    time.monotonic() - started, err)
        raise TrialError(str(err)) from err
    finally:
        stop_file.unlink(missing_ok=True)
    trial.set_user_attr(REPORTED_METRIC, found[REPORTED_METRIC])
    trial.set_user_attr("seconds", round(time.monotonic() - started, 1))
    trial.set_user_attr(run_data.FIT_SECONDS, curve.fit_seconds())
    if pruned:
        prune(trial, curve, found[RANKING_METRIC])
    if not math.isfinite(found[RANKING_METRIC]):
        trial.set_user_attr(FAILURE_ATTR, "diverged")
        raise TrialError(f"validation free-running MSE is {found[RANKING_METRIC]} (training "
                         f"diverged: lower train.learning_rate?)")
    return found[RANKING_METRIC]


def prune(trial: optuna.Trial, curve: LiveCurve, validation: float) -> NoReturn:
    """Tag a stopped trial's run as pruned, note the epochs it trained; end it PRUNED."""
    epochs = len(curve.client.get_metric_history(curve.run_id, "loss"))
    curve.client.set_tag(curve.run_id, PRUNED_TAG, "true")
    trial.set_user_attr("epochs", epochs)
    trial.set_user_attr(RANKING_METRIC, validation)
    log.info("trial %d pruned: trained %d epochs, %.0f s", trial.number, epochs,
             trial.user_attrs["seconds"])
    raise optuna.TrialPruned(f"pruned after {epochs} epochs")
