"""Who drives each step of `play`: the agent, or someone who took over from it.

The policy sees every frame either way (its KV cache stays in step); when someone else drives,
their action replaces the sampled one, the policy is told what was really done, and the row's
actor names the driver, so build-dataset trains on their steps and masks the agent's. Two kinds
take over through the same path:

- ``HumanTakeover``: the play window's Tab key hands control to the person and back.
- ``CorrectorTakeover``: a scripted corrector (``play --corrector bot:NAME``) watches the agent.
  Each step it plays the agent's course ahead on a save state: the agent's action held for
  ``lookahead`` steps. If the player dies on that course, the corrector takes over, drives for at
  least ``hold`` steps, and hands back on the first step after that where the agent's course is
  safe again. The look-ahead restores the emulator's exact state, so the recording still replays
  bit for bit.
"""

from __future__ import annotations

from contra_bc.emulator import classify

CORRECTOR_ACTOR = "corrector"


def take_step(runner, actor, takeover, emu, screen, lateness_ms=None) -> dict:
    """One step of play: the agent decides, a takeover may override, the runner applies it."""
    action = actor.act(emu, screen)
    driver = actor.name
    if takeover is not None:
        override = takeover.decide(emu, action, runner.frames_per_step)
        if override is not None:
            action, driver = int(override), takeover.actor
            actor.observe_override(action)
    return runner.step(action, driver, lateness_ms)


class HumanTakeover:
    """The person at the play window: ``toggle()`` on Tab; ``keys`` is what they hold this step."""

    actor = "human"

    def __init__(self):
        self.active = False
        self.keys = 0
        self.steps = 0

    def toggle(self) -> None:
        self.active = not self.active

    def decide(self, emu, agent_action: int, frames_per_step: int) -> int | None:
        if not self.active:
            return None
        self.steps += 1
        return self.keys


class CorrectorTakeover:
    """A bot that takes over when the agent's course dies within ``lookahead`` steps (see module doc)."""

    actor = CORRECTOR_ACTOR

    def __init__(self, bot, lookahead: int = 20, hold: int = 20):
        if lookahead < 1 or hold < 1:
            raise ValueError("lookahead and hold are >= 1 step")
        self.bot, self.lookahead, self.hold = bot, int(lookahead), int(hold)
        self.active = False
        self.driven = 0          # steps of the current takeover
        self.steps = 0           # corrector steps this episode
        self.takeovers = 0

    def reset(self, emu) -> None:
        self.bot.reset(emu)
        self.active, self.driven, self.steps, self.takeovers = False, 0, 0, 0

    def course_dies(self, emu, action: int, frames_per_step: int) -> bool:
        """Does holding ``action`` for the look-ahead kill the player? The emulator is left as it was."""
        game = emu.game
        before = emu.variables()
        if classify(game, before, None) in ("death", "game_over"):
            return False  # dying already: nothing left to correct until the respawn
        state = emu.get_state()
        try:
            for _ in range(self.lookahead):
                emu.step(action, frames_per_step)
                now = emu.variables()
                if classify(game, now, before) in ("death", "game_over"):
                    return True
                before = now
            return False
        finally:
            emu.set_state(state)

    def decide(self, emu, agent_action: int, frames_per_step: int) -> int | None:
        if not self.active or self.driven >= self.hold:  # one look-ahead per step, only when it can matter
            if not self.course_dies(emu, agent_action, frames_per_step):
                self.active = False  # the agent drives (or gets control back: the danger is past)
                return None
            if not self.active:
                self.active, self.driven = True, 0
                self.takeovers += 1
        self.driven += 1
        self.steps += 1
        return int(self.bot.act(emu))
