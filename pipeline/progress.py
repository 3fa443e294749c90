"""Signs of life in `dvc repro`'s log: rate-limited progress lines for training and evaluation."""

from pipeline.backend import keras

import logging
import math
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# At most one line per this many seconds, besides the first and the last epoch.
INTERVAL_SECONDS = 10.0


def duration(seconds: float) -> str:
    """Return seconds as a short human duration: 42 s, 3.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class EpochProgress(keras.callbacks.Callback):
    """Log `epoch k/N: loss, val_loss, elapsed, left` for the first and last epoch, else
    every `interval` s."""

    def __init__(self, epochs: int, interval: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.epochs, self.interval, self.clock = epochs, interval, clock
        self.started = self.logged_at = 0.0
        self.logged_epoch, self.last_epoch, self.last_logs = -1, -1, {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started, self.logged_at = self.clock(), -math.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.last_epoch, self.last_logs = epoch, dict(logs or {})
        now = self.clock()
        if epoch in {0, self.epochs - 1} or now - self.logged_at >= self.interval:
            self._line(epoch, now)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.last_epoch > self.logged_epoch:  # stopped early between two lines
            self._line(self.last_epoch, self.clock(), stopped=True)

    def _line(self, epoch: int, now: float, stopped: bool = False) -> None:
        done, elapsed = epoch + 1, now - self.started
        left = "stopped early" if stopped else (
            f"about {duration(elapsed / done * (self.epochs - done))} left")
        values = ", ".join(f"{name} {self.last_logs[name]:.4g}" for name in ("loss", "val_loss")
                           if name in self.last_logs)
        log.info("epoch %d/%d: %s; %s elapsed, %s", done, self.epochs, values,
                 duration(elapsed), left)
        self.logged_epoch, self.logged_at = epoch, now


class WorkProgress:
    """Log `what done/total, elapsed, left` at most every `interval` seconds."""

    def __init__(self, total: int, what: str, interval: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.what, self.interval, self.clock = total, what, interval, clock
        self.done = 0
        self.started = self.logged_at = clock()

    def advance(self, count: int) -> None:
        """Add `count` units of work done, and say so if a line is due."""
        self.done += count
        now = self.clock()
        if now - self.logged_at >= self.interval:
            elapsed = now - self.started
            left = elapsed / self.done * (self.total - self.done)
            log.info("%s %d/%d (%.0f%%), %s elapsed, about %s left", self.what, self.done,
                     self.total, 100 * self.done / self.total, duration(elapsed), duration(left))
            self.logged_at = now
