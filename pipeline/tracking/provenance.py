"""Where a run came from: git commit, packages, DVC experiment, tuning study."""

import os
import subprocess
from importlib.metadata import version

PACKAGES = ("tensorflow", "keras", "mlflow", "dvc")
# A tuning study (pipeline.tune) names itself and its trial to the stages it runs through
# these variables; the runs carry them as tags, so the MLflow UI groups runs by study.
STUDY_ENV, TRIAL_ENV = "PIPELINE_STUDY", "PIPELINE_TRIAL"
STUDY_TAGS = {STUDY_ENV: "pipeline.study", TRIAL_ENV: "pipeline.trial"}
# ... and the file whose appearance asks `train` to stop (a pruned trial).
STOP_ENV = "PIPELINE_STOP_FILE"
EXPERIMENT_TAG = "dvc.experiment"  # the DVC experiment a run belongs to


def _git(*args: str) -> str | None:
    """Return git's output for `args` in the working directory, or None outside git."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def dvc_experiment() -> str | None:
    """Return the name of the DVC experiment running this stage, if any."""
    return os.environ.get("DVC_EXP_NAME") or None


def run_tags() -> dict[str, str]:
    """Return the tags that say where a run came from."""
    commit = _git("rev-parse", "HEAD")
    # dvc.lock changes as stages finish; it says nothing about the code or params used.
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock")
    tags = {"git.commit": commit or "unknown",
            "git.dirty": "unknown" if changes is None else str(bool(changes)).lower(),
            **{f"{package}.version": version(package) for package in PACKAGES}}
    if commit:
        tags["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
    if dvc_experiment():
        tags[EXPERIMENT_TAG] = dvc_experiment()
    tags.update({tag: os.environ[name] for name, tag in STUDY_TAGS.items()
                 if os.environ.get(name)})
    return tags
