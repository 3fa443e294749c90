"""Surviving a killed `train`: Keras' BackupAndRestore in a folder per experiment and digest
of training's inputs (a stale backup never resumes), with the MLflow run to continue.
"""

from pipeline.backend import keras, tf

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import paths
from pipeline.files import dvc_md5
from pipeline.params import Params
from pipeline.tracking import store

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
    """BackupAndRestore (weights and optimizer) at most every `seconds`, flushing MLflow first
    and checkpointing EarlyStopping's state, so a resumed fit goes on as if never stopped."""

    def __init__(self, folder: Path, seconds: float, flush: Callable[[], None] = lambda: None,
                 stopping: keras.callbacks.EarlyStopping | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Two states kept: a kill while one is written leaves the other to restore.
        super().__init__(backup_dir=str(folder / "keras"), save_freq="epoch",
                         double_checkpoint=True)
        self.folder, self.seconds, self.flush, self.clock = folder, seconds, flush, clock
        self.stopping = stopping
        self.last_saved = self.started_at = self.stopping_state = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        initial = self.model.get_weights()
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as err:  # both states damaged: start afresh
            log.warning("the training backup in %s cannot be read (%s); training from the "
                        "first epoch", self.folder, " ".join(str(err).split()))
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            self.model.set_weights(initial)
        if self.stopping is not None:
            self.stopping_state = _StoppingState(self.model, self.stopping, self.folder / "state")
        self.last_saved = self.clock()
        self.started_at = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.started_at is None:  # the first epoch of this fit: where it resumed
            self.started_at = epoch
            if epoch:
                restored = ([] if self.stopping_state is None
                            else self.stopping_state.restore(epoch))
                log.info("resuming training from its backup: epoch %d (%s restored)",
                         epoch + 1, ", ".join(["weights", "optimizer", *restored]))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.clock() - self.last_saved < self.seconds:
            return
        self.flush()
        if self.stopping_state is not None:
            self.stopping_state.save(epoch + 1)
        super().on_epoch_end(epoch, logs)
        self.last_saved = self.clock()


class _StoppingState:
    """EarlyStopping's state, which Keras' backup leaves out, as `tf.train.Checkpoint`s by
    epoch, the last two kept."""

    def __init__(self, model: keras.Model, stopping: keras.callbacks.EarlyStopping,
                 folder: Path) -> None:
        self.stopping = stopping
        # (wait, best epoch, has best weights), best and best weights.
        self.counts = tf.Variable([0, 0, 0], dtype=tf.int64, trainable=False)
        self.best = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.weights = [tf.Variable(tf.zeros_like(weights), trainable=False)
                        for weights in model.get_weights()]
        self.checkpoint = tf.train.Checkpoint(counts=self.counts, best=self.best,
                                              weights=self.weights)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(folder), max_to_keep=2)

    def save(self, epoch: int) -> None:
        """Checkpoint the state as it stands after `epoch` epochs."""
        best_weights = self.stopping.best_weights
        self.counts.assign([self.stopping.wait, self.stopping.best_epoch,
                            best_weights is not None])
        self.best.assign(float(self.stopping.best))
        for variable, weights in zip(self.weights, best_weights or (), strict=False):
            variable.assign(weights)
        self.manager.save(checkpoint_number=epoch)

    def restore(self, epoch: int) -> list[str]:
        """Restore the state after `epoch` epochs; return what was restored."""
        path = f"{self.manager.directory}/ckpt-{epoch}"
        if not tf.io.gfile.exists(f"{path}.index"):
            return []
        try:
            self.checkpoint.read(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError) as err:
            log.warning("the early-stopping backup %s cannot be read (%s); it starts afresh",
                        path, " ".join(str(err).split())[:200])
            return []
        wait, best_epoch, has_weights = (int(count) for count in self.counts.numpy())
        self.stopping.wait, self.stopping.best_epoch = wait, best_epoch
        self.stopping.best = float(self.best.numpy())
        self.stopping.best_weights = ([variable.numpy() for variable in self.weights]
                                      if has_weights else None)
        return ["early stopping"]
