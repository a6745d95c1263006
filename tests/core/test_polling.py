"""The shared poll-with-backoff-inside-a-budget helper."""

import pytest

from sunpy_archives.core.polling import Backoff, PollTimeout, poll


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


def test_intervals_grow_to_cap():
    assert list(Backoff(0.5, 2.0, 3.0).intervals(5)) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_poll_returns_value_when_done_and_sleeps_growing_intervals():
    clock = FakeClock()
    answers = iter([(False, 1), (False, 2), (False, 3), (True, "done")])
    value = poll(lambda: next(answers), budget=100, backoff=Backoff(0.25, 2.0, 10), sleep=clock.sleep,
                 clock=clock)
    assert value == "done"
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_poll_first_check_is_immediate():
    clock = FakeClock()
    assert poll(lambda: (True, 7), budget=1, sleep=clock.sleep, clock=clock) == 7
    assert clock.sleeps == []


def test_budget_raises_with_last_value():
    clock = FakeClock()
    with pytest.raises(PollTimeout) as info:
        poll(lambda: (False, "queued"), budget=5, backoff=Backoff(1, 2, 2), sleep=clock.sleep, clock=clock)
    assert info.value.last == "queued"
    assert sum(clock.sleeps) == pytest.approx(5)
    assert info.value.elapsed >= 5


def test_hint_shortens_but_never_below_first():
    clock = FakeClock()
    answers = iter([(False, 0.1), (False, 3.0), (True, None)])
    poll(lambda: next(answers), budget=100, backoff=Backoff(0.5, 10, 100), hint=lambda v: v,
         sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [0.5, 3.0]


def test_on_wait_sees_each_value():
    clock = FakeClock()
    seen = []
    answers = iter([(False, "a"), (False, "b"), (True, "c")])
    poll(lambda: next(answers), budget=10, on_wait=lambda v, s: seen.append(v), sleep=clock.sleep,
         clock=clock)
    assert seen == ["a", "b"]


def test_check_exceptions_propagate():
    def check():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        poll(check, budget=1)
