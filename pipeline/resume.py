"""Surviving a killed `train`: Keras' BackupAndRestore, kept where the next run finds it.

The backup lives under the repository root (DVC_ROOT in experiments, so a queued
experiment's temporary copy is not where it is lost), outside DVC's outputs, in a folder
keyed by a digest of everything training depends on (its params, the windows, the
package's code, the store) and by the DVC experiment's name: a changed param, code or
data never resumes a stale backup, and parallel experiments never share one. Beside
Keras' files it holds the MLflow run the training logs to, so a resumed training
continues that run, and the optimizer's and EarlyStopping's state, which Keras' backup
leaves out.
"""

from pipeline.backend import keras

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import paths, store
from pipeline.files import dvc_md5
from pipeline.params import Params

log = logging.getLogger(__name__)

RUN_RECORD = "mlflow_run.json"
PACKAGE = Path(__file__).resolve().parent


def backup_folder(params: Params) -> Path:
    """Return the backup folder of this training: its experiment and its inputs' digest."""
    digest = hashlib.sha256()
    digest.update(json.dumps(params.flat(paths.STAGES["train"].params), sort_keys=True,
                             default=str).encode())
    digest.update(dvc_md5(paths.WINDOWS).encode())
    for source in sorted(PACKAGE.rglob("*.py")):
        digest.update(source.relative_to(PACKAGE).as_posix().encode())
        digest.update(source.read_bytes())
    digest.update(store.tracking_uri().encode())
    experiment = os.environ.get("DVC_EXP_NAME") or "workspace"
    return store.project_root() / paths.BACKUPS_DIR / f"{experiment}-{digest.hexdigest()[:16]}"


def recorded_run(folder: Path) -> tuple[str, int] | None:
    """Return the MLflow run a killed training left in `folder` and how often it resumed."""
    try:
        record = json.loads((folder / RUN_RECORD).read_text())
        return str(record["run_id"]), int(record["resumes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_run(folder: Path, run_id: str, resumes: int) -> None:
    """Note in `folder` the MLflow run this training logs to."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f".{RUN_RECORD}.{os.getpid()}"
    staged.write_text(json.dumps({"run_id": run_id, "resumes": resumes}))
    staged.replace(folder / RUN_RECORD)


def remove(folder: Path) -> None:
    """Delete a backup once its training has finished and everything is saved."""
    shutil.rmtree(folder, ignore_errors=True)


class TrainingBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, saving at the end of an epoch at most every `seconds`
    (0: every epoch), with EarlyStopping's state.

    Each backup first waits for MLflow's queued metrics (so the run holds every epoch the
    backup has), then writes what Keras' backup leaves out (the optimizer's variables and
    EarlyStopping's state) for that epoch, then Keras' weights and epoch. On restore, fit
    starts at the backed-up epoch, Adam goes on with its moments and step count, and
    EarlyStopping gets back its best val_loss, its best weights and how long it has
    waited, as if never stopped.
    """

    def __init__(self, folder: Path, seconds: float, flush: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Two states kept: a kill while one is written leaves the other to restore.
        super().__init__(backup_dir=str(folder / "keras"), save_freq="epoch",
                         double_checkpoint=True)
        self.folder, self.seconds, self.flush, self.clock = folder, seconds, flush, clock
        # The EarlyStopping whose state is backed up too; pipeline.training.fit sets it.
        self.stopping: keras.callbacks.EarlyStopping | None = None
        self.last_saved = self.started_at = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        initial = self.model.get_weights()
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as err:  # both states damaged: start afresh
            log.warning("the training backup in %s cannot be read (%s); training from the "
                        "first epoch", self.folder, " ".join(str(err).split()))
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            self.model.set_weights(initial)
        self.last_saved = self.clock()
        self.started_at = None
        self.saved: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.started_at is None:  # the first epoch of this fit: where it resumed
            self.started_at = epoch
            if epoch:
                restored = self._restore_state(epoch)
                log.info("resuming training from its backup: epoch %d (%s restored)",
                         epoch + 1, ", ".join(["weights", *restored]))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.clock() - self.last_saved < self.seconds:
            return
        self.flush()
        self._save_state(epoch + 1)
        super().on_epoch_end(epoch, logs)
        self.saved = [*self.saved[-1:], epoch + 1]  # Keras keeps this state and the one before
        for old in self.folder.glob("state-*"):
            if int(old.name.split("-")[1].split(".")[0]) not in self.saved:
                old.unlink(missing_ok=True)
        self.last_saved = self.clock()

    def _state_files(self, epoch: int) -> tuple[Path, Path]:
        return self.folder / f"state-{epoch}.json", self.folder / f"state-{epoch}.npz"

    def _save_state(self, epoch: int) -> None:
        """Write what Keras' backup leaves out, as it stands after `epoch` epochs: the
        optimizer's variables (Adam's moments and step count) and EarlyStopping's state."""
        self.folder.mkdir(parents=True, exist_ok=True)
        scalars, arrays = self._state_files(epoch)
        held = {f"optimizer_{i}": np.asarray(variable.numpy())
                for i, variable in enumerate(self.model.optimizer.variables)}
        stopping = {}
        if self.stopping is not None:
            stopping = {"wait": self.stopping.wait, "best": float(self.stopping.best),
                        "best_epoch": self.stopping.best_epoch}
            held |= {f"best_{i}": weights
                     for i, weights in enumerate(self.stopping.best_weights or [])}
        np.savez(arrays, **held)
        scalars.write_text(json.dumps({"early_stopping": stopping}))

    def _restore_state(self, epoch: int) -> list[str]:
        """Give the optimizer and EarlyStopping back their state after `epoch` epochs;
        return what was restored."""
        scalars, arrays = self._state_files(epoch)
        if not (scalars.exists() and arrays.exists()):
            return []
        restored, stopping = [], json.loads(scalars.read_text())["early_stopping"]
        with np.load(arrays) as held:
            variables = self.model.optimizer.variables
            if sum(key.startswith("optimizer_") for key in held) == len(variables):
                for i, variable in enumerate(variables):
                    variable.assign(held[f"optimizer_{i}"])
                restored.append("optimizer")
            best = [held[f"best_{i}"] for i in range(sum(k.startswith("best_") for k in held))]
        if self.stopping is not None and stopping:
            self.stopping.wait, self.stopping.best = stopping["wait"], stopping["best"]
            self.stopping.best_epoch = stopping["best_epoch"]
            self.stopping.best_weights = best or None
            restored.append("early stopping")
        return restored
