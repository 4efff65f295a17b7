"""The one pacing loop (contra_bc/pacing.py) on a fake clock: no assertion depends on how fast
this machine is, so a loaded machine cannot fail it."""

from __future__ import annotations

import pytest

from contra_bc.pacing import Pacer

HZ = 16  # a period of 1/16 s is exact in binary, so the deadlines below compare exactly


class FakeClock:
    """A clock that moves only when the pacer sleeps or the test stalls it."""

    def __init__(self, now: float = 100.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def stall(self, seconds: float) -> None:
        self.now += seconds


def pacer(clock: FakeClock) -> Pacer:
    return Pacer(HZ, clock=clock, sleep=clock.sleep)


def test_on_time_ticks_fire_at_start_plus_k_periods():
    clock = FakeClock()
    p = pacer(clock)
    p.start()
    ticks = [p.wait() for _ in range(4)]
    assert [(t.lateness_ms, t.missed) for t in ticks] == [(0.0, 0)] * 4
    assert clock.sleeps == [1 / HZ] * 3  # the first tick is due at once
    assert clock.now == 100.0 + 3 / HZ


def test_start_with_a_delay_waits_one_period_first():
    clock = FakeClock()
    p = pacer(clock)
    p.start(delay_periods=1)
    assert p.wait().lateness_ms == 0.0
    assert clock.sleeps == [1 / HZ]


def test_a_tick_late_by_less_than_a_period_keeps_the_next_deadline():
    clock = FakeClock()
    p = pacer(clock)
    p.start()
    p.wait()
    clock.stall(1.5 / HZ)  # the step took one and a half periods: half a period past the deadline
    late = p.wait()
    assert late.missed == 0 and late.lateness_ms == pytest.approx(500 / HZ)
    p.wait()
    assert clock.sleeps == [0.5 / HZ]  # the next tick keeps its deadline, so it comes sooner: no drift


def test_a_tick_late_by_more_than_a_period_skips_the_missed_deadlines():
    clock = FakeClock()
    p = pacer(clock)
    p.start()
    p.wait()
    clock.stall(3.25 / HZ)  # wakes 2.25 periods after its deadline (one period is the normal wait)
    late = p.wait()
    assert late.missed == 2 and late.lateness_ms == pytest.approx(2250 / HZ)
    # docs/formats.md: missed_ticks counts floor(lateness_ms * hz / 1000)
    assert late.missed == int(late.lateness_ms * HZ // 1000)
    after = p.wait()
    # no burst of catch-up steps: the next tick waits for the next deadline still ahead
    assert (after.lateness_ms, after.missed) == (0.0, 0)
    assert clock.sleeps[-1] == pytest.approx(0.75 / HZ)


def test_restarting_after_a_pause_forgets_the_old_deadlines():
    clock = FakeClock()
    p = pacer(clock)
    p.start()
    p.wait()
    clock.stall(60.0)  # paused for a minute
    p.start()
    resumed = p.wait()
    assert (resumed.lateness_ms, resumed.missed) == (0.0, 0)
