"""The one pacing loop: ticks at ``hz`` for every paced recorder (record's window, play's window,
scripted ``record --realtime``).

Each tick sleeps until its deadline and reports how late it woke up. A tick that wakes more than
one period late skips the deadlines it missed and counts them: the game slows down rather than
rushing through the missed steps to catch up (docs/formats.md, `lateness_ms` and `missed_ticks`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Tick:
    lateness_ms: float  # how late the wake-up was against the tick's deadline, >= 0
    missed: int  # deadlines skipped because the wake-up came more than one period late


class Pacer:
    """Sleeps until each tick's deadline. ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(self, hz: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        self.period = 1.0 / hz
        self._clock = clock
        self._sleep = sleep
        self.deadline = clock()

    def start(self, delay_periods: int = 0) -> None:
        """Deadlines restart from now (at the start, after a pause): the next tick is due in
        ``delay_periods`` periods (0: at once; 1: the caller has just acted on a tick of its own)."""
        self.deadline = self._clock() + delay_periods * self.period

    def wait(self) -> Tick:
        """Sleep to the next deadline; the tick's lateness and the deadlines it skipped."""
        delay = self.deadline - self._clock()
        if delay > 0:
            self._sleep(delay)
        late = self._clock() - self.deadline
        missed = int(late // self.period) if late > 0 else 0
        self.deadline += (missed + 1) * self.period
        return Tick(max(0.0, late * 1000.0), missed)
