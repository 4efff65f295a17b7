"""The two standard perturbations of game-agent evaluation, drawn per episode from its seed.

- **Sticky actions** (Machado et al. 2018; ALE v5 and Gymnasium's ``StickyAction`` use p = 0.25):
  each step, with probability ``sticky``, the emulator executes the previous *executed* action
  instead of the one chosen (so a repeat can repeat again). A press can come a step late, a
  release too, a one-step tap can last two steps.
- **No-op starts** (Mnih et al. 2015): a random 0..``noop_max`` steps with no button held before
  the actor starts, so the game's timers meet the player at another phase.

Who chose an action and what the emulator executed are kept apart: a recording's ``action``
column is what was executed (what replays bit for bit), ``chosen_action`` what the actor chose
(what training learns by default), and the actor is told what was executed, as a takeover tells
it. No-op steps are driven by ``perturbation`` (never trained on). The draws come from their own
generator, seeded by the episode's seed, so an agent, the expert and the random baseline run on
the same seeds meet the same no-op count and the same sticky steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from contra_bc.errors import UserError

PERTURBATION_ACTOR = "perturbation"
NOOP = 0


@dataclass(frozen=True)
class Perturbation:
    """``sticky`` in [0, 1): repeat probability; ``noop_max`` >= 0: most no-op steps before the actor starts."""

    sticky: float = 0.0
    noop_max: int = 0

    def __post_init__(self):
        if not (0.0 <= float(self.sticky) < 1.0):
            raise UserError(f"--sticky is a probability in [0, 1) (0.25 is the standard), not {self.sticky}.")
        if int(self.noop_max) < 0:
            raise UserError(f"--noop-max is a number of steps, >= 0 (30 is the standard), not {self.noop_max}.")

    @property
    def active(self) -> bool:
        return self.sticky > 0 or self.noop_max > 0

    def describe(self) -> str:
        return f"sticky {self.sticky:g}, no-op start 0-{self.noop_max}" if self.active else "none"

    def as_dict(self) -> dict:
        return {"sticky": float(self.sticky), "noop_max": int(self.noop_max)}

    def episode(self, seed: int) -> "PerturbedEpisode":
        return PerturbedEpisode(self, seed)


CLEAN = Perturbation()


class PerturbedEpisode:
    """One episode's perturbations: ``execute(chosen)`` -> the action the emulator runs this step."""

    def __init__(self, spec: Perturbation, seed: int):
        self.spec = spec
        # a generator of its own: the actor's sampling and the bot's choices never shift the draws
        rng = random.Random(f"contra-bc perturbation {int(seed)}")
        self.noop_steps = rng.randint(0, spec.noop_max) if spec.noop_max else 0
        self._rng = rng
        self.step = 0
        self.previous = NOOP
        self.sticky_steps = 0  # steps whose executed action differs from the chosen one

    @property
    def in_noop_start(self) -> bool:
        return self.step < self.noop_steps

    def execute(self, chosen: int) -> int:
        """The executed action of this step (one draw per step, whether or not it changes anything)."""
        if self.in_noop_start:
            executed = NOOP
        else:
            repeat = self.spec.sticky > 0 and self._rng.random() < self.spec.sticky
            executed = self.previous if repeat else int(chosen)
            if executed != chosen:
                self.sticky_steps += 1
        self.step += 1
        self.previous = executed
        return executed

    def summary(self) -> dict:
        return {**self.spec.as_dict(), "noop_steps": self.noop_steps, "sticky_steps": self.sticky_steps}
