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

import time

from contra_bc.emulator import classify
from contra_bc.perturb import NOOP, PERTURBATION_ACTOR

CORRECTOR_ACTOR = "corrector"


def take_step(runner, actor, takeover, emu, screen, lateness_ms=None, perturbed=None) -> dict:
    """One step: the actor decides, a takeover may override it, a perturbation (contra_bc.perturb) may
    execute something else; the runner applies what is executed and the row keeps what was chosen.

    Whenever the executed action is not the actor's own choice, the actor is told what was executed,
    so a policy conditions on what really happened. During a no-op start the actor only watches (a policy
    sees the frame and conditions on the no-op; a bot has not started)."""
    if perturbed is not None and perturbed.in_noop_start:
        actor.watch(emu, screen)
        chosen, driver = NOOP, PERTURBATION_ACTOR
    else:
        chosen = own = actor.act(emu, screen)
        driver = actor.name
        if takeover is not None:
            override = takeover.decide(emu, chosen, runner.frames_per_step)
            if override is not None:
                chosen, driver = int(override), takeover.actor
        executed = chosen if perturbed is None else perturbed.execute(chosen)
        if executed != own:
            actor.observe_override(executed)
        return runner.step(executed, driver, lateness_ms, chosen=chosen)
    return runner.step(perturbed.execute(chosen), driver, lateness_ms, chosen=chosen)


class BotActor:
    """A scripted player (a bot, an action file) driving steps, each decision timed.

    ``name`` is the row's actor: "script", or what the bot says of its own step (a bot that injects
    mistakes names those steps "perturbation"). A bot that plans ahead hears of an executed action
    that was not its choice through ``observe_executed`` (so it plans again from where it is)."""

    def __init__(self, bot):
        self.bot = bot
        self.chosen = 0  # the bot's last choice
        self.latencies_ms: list[float] = []

    @property
    def name(self) -> str:
        return getattr(self.bot, "actor", "script")

    def reset(self, emu) -> None:
        self.bot.reset(emu)

    def act(self, emu, screen) -> int:
        t0 = time.perf_counter()
        self.chosen = int(self.bot.act(emu))
        self.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        return self.chosen

    def watch(self, emu, screen) -> None:
        """A step the bot does not drive (a no-op start): it has not started yet."""

    def observe_override(self, action: int) -> None:
        tell = getattr(self.bot, "observe_executed", None)
        if tell is not None:
            tell(int(action), self.chosen)


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
