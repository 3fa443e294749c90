"""Epoch lines while training runs: the first, the last, and at most one per interval."""

import logging

import pytest

from pipeline.progress import EpochProgress, WorkProgress, duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def train(progress: EpochProgress, clock: Clock, epochs: int, seconds_each: float) -> None:
    """Drive the callback as `fit` does, each epoch taking `seconds_each`."""
    progress.on_train_begin()
    for epoch in range(epochs):
        clock.now += seconds_each
        progress.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1)})
    progress.on_train_end()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "pipeline.progress"]


def test_a_long_training_logs_the_first_the_last_and_one_line_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO):
        train(EpochProgress(100, interval=10.0, clock=clock), clock, 100, seconds_each=3.0)
    logged = lines(caplog)
    assert logged[0] == ("epoch 1/100: loss 1, val_loss 2; 3 s elapsed, about 5.0 min left")
    assert logged[-1].startswith("epoch 100/100: loss 0.01, val_loss 0.02; 5.0 min elapsed, "
                                 "about 0 s left")
    # 300 s of training, a line at most every 10 s: the first, then every fourth epoch.
    assert 25 <= len(logged) <= 32
    assert logged[1].startswith("epoch 5/100:")


def test_a_short_training_logs_its_first_and_last_epoch_only(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO):
        train(EpochProgress(80, clock=clock), clock, 80, seconds_each=0.02)
    assert [line.split(":")[0] for line in lines(caplog)] == ["epoch 1/80", "epoch 80/80"]


def test_early_stopping_logs_the_epoch_it_stopped_at(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO):
        train(EpochProgress(400, clock=clock), clock, 37, seconds_each=0.1)
    last = lines(caplog)[-1]
    assert last.startswith("epoch 37/400: loss 0.02703, val_loss 0.05405; 4 s elapsed")
    assert last.endswith("stopped early")


@pytest.mark.parametrize(("seconds", "text"), [(42, "42 s"), (210, "3.5 min"),
                                               (7560, "2.1 h")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_work_progress_speaks_only_once_the_work_has_taken_an_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO):
        quick = WorkProgress(1000, "decoded windows", clock=clock)
        for _ in range(10):
            clock.now += 0.5
            quick.advance(100)
        assert not lines(caplog)  # 5 s of work: nothing to say
        slow = WorkProgress(1000, "decoded windows", clock=clock)
        for _ in range(10):
            clock.now += 4.0
            slow.advance(100)
    logged = lines(caplog)
    assert logged[0] == "decoded windows 300/1000 (30%), 12 s elapsed, about 28 s left"
    assert len(logged) == 3  # at 12, 24 and 36 s
