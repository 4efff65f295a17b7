"""Simple bots that work without knowing a game's internals."""

from __future__ import annotations

import numpy as np


class RandomMomentum:
    """Random button combinations, each held for a random number of steps."""

    def __init__(self, seed: int, game, hold=(1, 12)):
        self.rng = np.random.default_rng(seed)
        self.buttons = list(game.buttons)
        self.usable = [i for i, b in enumerate(self.buttons) if b and b not in ("START", "SELECT", "MODE")]
        self.hold = hold
        self.action, self.left = 0, 0

    def reset(self, emu) -> None:
        self.action, self.left = 0, 0

    def act(self, emu) -> int:
        if self.left <= 0:
            chosen = self.rng.random(len(self.usable)) < 0.3
            self.action = sum(1 << i for i, c in zip(self.usable, chosen) if c)
            self.left = int(self.rng.integers(self.hold[0], self.hold[1] + 1))
        self.left -= 1
        return self.action


class AirstrikerHeuristic:
    """Sweeps the ship left and right across the screen, tapping fire."""

    def __init__(self, seed: int, game, period=(20, 40)):
        self.rng = np.random.default_rng(seed)
        self.index = {b: i for i, b in enumerate(game.buttons) if b}
        self.period = period
        self.step, self.direction, self.left = 0, "RIGHT", 0

    def reset(self, emu) -> None:
        self.step, self.direction, self.left = 0, "RIGHT", 0

    def act(self, emu) -> int:
        if self.left <= 0:
            self.direction = "LEFT" if self.direction == "RIGHT" else "RIGHT"
            self.left = int(self.rng.integers(*self.period))
        self.left -= 1
        self.step += 1
        action = 1 << self.index[self.direction]
        if self.step % 2 == 0:
            action |= 1 << self.index["B"]
        if self.rng.random() < 0.1:
            action |= 1 << self.index["UP" if self.rng.random() < 0.5 else "DOWN"]
        return action
