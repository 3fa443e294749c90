"""A killed training resumes: Keras' BackupAndRestore, throttled, with EarlyStopping's state,
in a folder no other training can mistake for its own."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import default_params, with_overrides
from test_model import STEPS, UNITS, stretch, train_params

from pipeline import paths, resume
from pipeline.model import build_training_model
from pipeline.params import parse_params
from pipeline.training import early_stopping, fit


class KilledError(Exception):
    """Stands in for SIGKILL inside one process (as in Keras' BackupAndRestore example)."""


class Watch(keras.callbacks.Callback):
    """Raise KilledError before epoch `kill_at`; advance `clock` by `seconds` each epoch; note
    the weights and EarlyStopping's state after each epoch, and where a fit starts."""

    def __init__(self, backup: resume.TrainingBackup, kill_at: int | None,
                 clock: list[float], seconds: float) -> None:
        super().__init__()
        self.backup, self.kill_at, self.clock, self.seconds = backup, kill_at, clock, seconds
        self.after: dict[int, tuple] = {}
        self.start: tuple | None = None
        self.first_epoch: int | None = None

    def state(self) -> tuple:
        """Return the weights and EarlyStopping's (wait, best, best_epoch, best_weights),
        and the optimizer's variables (Adam's step count and moments)."""
        stopping = self.backup.stopping
        return (self.model.get_weights(), stopping.wait, stopping.best, stopping.best_epoch,
                stopping.best_weights,
                [np.asarray(v.numpy()) for v in self.model.optimizer.variables])

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.kill_at:
            raise KilledError
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.start is None:  # every on_epoch_begin has run: the restored state
            self.start = self.state()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.clock[0] += self.seconds
        self.after[epoch] = self.state()


def train(folder: Path, kill_at: int | None = None, backup_seconds: float = 0.0,
          epoch_seconds: float = 0.0) -> Watch:
    """Fit a seeded model, backed up in `folder`; return what it watched."""
    clock = [0.0]
    params = train_params(epochs=60, early_stopping_patience=20)
    stopping = early_stopping(params)
    backup = resume.TrainingBackup(folder, backup_seconds, stopping=stopping,
                                   clock=lambda: clock[0])
    watch = Watch(backup, kill_at, clock, epoch_seconds)
    keras.utils.set_random_seed(1)
    # A learning rate far too high: val_loss soon stops improving and EarlyStopping waits.
    model = build_training_model(STEPS, UNITS, 1.0)
    callbacks = [stopping, watch, backup]
    training = fit(model, stretch(12, 0), stretch(4, 1), params, callbacks
                   ) if kill_at is None else None
    if kill_at is not None:
        with pytest.raises(KilledError):
            fit(model, stretch(12, 0), stretch(4, 1), params, callbacks)
    assert training is None or training.epoch[0] == watch.first_epoch
    return watch


def assert_same(first: object, second: object) -> None:
    """Assert two (nested) states are equal, arrays exactly."""
    if isinstance(first, list | tuple):
        assert len(first) == len(second)
        for a, b in zip(first, second, strict=True):
            assert_same(a, b)
    elif isinstance(first, np.ndarray):
        np.testing.assert_array_equal(first, second)
    else:
        assert first == second


def test_a_killed_fit_resumes_after_its_last_epoch_with_early_stopping_as_it_was(
        tmp_path: Path) -> None:
    uninterrupted = train(tmp_path / "uninterrupted")
    # Killed after an epoch where EarlyStopping has a state worth keeping: it is waiting.
    kill_at = 1 + min(epoch for epoch, state in uninterrupted.after.items()
                      if epoch >= 5 and state[1] > 0)
    killed = train(tmp_path, kill_at=kill_at)
    _, wait, _, _, best_weights, optimizer = killed.after[kill_at - 1]
    assert optimizer[0] > 0  # Adam's step count: it has a state worth keeping too
    assert wait > 0 and best_weights is not None
    resumed = train(tmp_path)
    assert resumed.first_epoch == kill_at  # the completed epochs are not trained again
    assert_same(resumed.start, killed.after[kill_at - 1])
    # EarlyStopping ends the resumed training where it ends the uninterrupted one, and
    # the two end with the same weights, exactly: each epoch drew the same windows.
    assert max(resumed.after) == max(uninterrupted.after) < 59
    assert_same(resumed.after[max(resumed.after)], uninterrupted.after[max(resumed.after)])
    # The states of the last two backups are kept, as Keras keeps its own.
    last = max(resumed.after) + 1
    assert tf.train.CheckpointManager(tf.train.Checkpoint(), str(tmp_path / "state"),
                                      max_to_keep=2).checkpoints == [
        str(tmp_path / "state" / f"ckpt-{epoch}") for epoch in (last - 1, last)]


def test_a_backup_damaged_by_the_kill_falls_back_to_the_one_before(tmp_path: Path) -> None:
    train(tmp_path, kill_at=6)
    weights = tmp_path / "keras" / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])  # killed while it was written
    assert train(tmp_path, kill_at=7).first_epoch == 5


def test_an_unreadable_backup_means_training_from_the_first_epoch(tmp_path: Path) -> None:
    train(tmp_path, kill_at=6)
    for damaged in (tmp_path / "keras").glob("*.h5*"):
        damaged.write_bytes(b"not hdf5")
    fresh, started = train(tmp_path, kill_at=1), train(tmp_path / "other", kill_at=1)
    assert fresh.first_epoch == 0
    assert_same(fresh.start[0], started.start[0])  # the initial weights, not half-loaded ones


def test_backups_are_made_at_most_every_backup_seconds(tmp_path: Path) -> None:
    # Epochs of 3 s, backups at most every 10 s: after epochs 4 and 8 (at 12 s and 24 s).
    train(tmp_path, kill_at=11, backup_seconds=10, epoch_seconds=3)
    assert train(tmp_path, kill_at=9).first_epoch == 8


def test_no_backup_to_resume_starts_at_epoch_one(tmp_path: Path) -> None:
    assert train(tmp_path / "fresh", kill_at=2).first_epoch == 0


def folder_for(monkeypatch: pytest.MonkeyPatch, root: Path, windows: bytes,
               experiment: str | None = None, **train: object) -> Path:
    """Return the backup folder of a training on `windows` with `train` overrides."""
    (root / paths.WINDOWS).parent.mkdir(parents=True, exist_ok=True)
    (root / paths.WINDOWS).write_bytes(windows)
    if experiment:
        monkeypatch.setenv("DVC_EXP_NAME", experiment)
    else:
        monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return resume.backup_folder(parse_params(with_overrides(default_params(), {"train": train})))


def test_the_backup_folder_belongs_to_one_experiment_and_its_exact_inputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "copy"  # DVC runs a queued experiment in a copy of the repository
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = folder_for(monkeypatch, work, b"windows")
    assert folder.parent == tmp_path / paths.BACKUPS_DIR
    assert folder.name.startswith("workspace-")
    assert folder_for(monkeypatch, work, b"windows") == folder
    assert folder_for(monkeypatch, work, b"windows", seed=43) != folder
    assert folder_for(monkeypatch, work, b"other windows") != folder
    named = folder_for(monkeypatch, work, b"windows", experiment="dpi50")
    assert named.name.startswith("dpi50-") and named != folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert folder_for(monkeypatch, work, b"windows") != folder


def test_the_run_record_reads_back_and_a_damaged_one_is_none(tmp_path: Path) -> None:
    assert resume.recorded_run(tmp_path) is None
    resume.record_run(tmp_path, "abc", 2)
    assert resume.recorded_run(tmp_path) == ("abc", 2)
    (tmp_path / resume.RUN_RECORD).write_text("{not json")
    assert resume.recorded_run(tmp_path) is None
