"""Stand-in for contra_bc.emulator.Emulator over a raw stable-retro env (until it lands)."""
from __future__ import annotations

import os

import numpy as np

INTEGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "games", "integrations")


class RawEnvEmulator:
    """ram(), get_state(), set_state(), step(action, frames), screen() over a stable-retro env."""

    def __init__(self, env):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.em = self.env.em

    @classmethod
    def open(cls, game: str = "Outpost-Nes", state: str = "Level1") -> "RawEnvEmulator":
        import stable_retro as retro
        retro.data.Integrations.add_custom_path(INTEGRATIONS)
        env = retro.make(game, state=state, inttype=retro.data.Integrations.ALL,
                         use_restricted_actions=retro.Actions.ALL, render_mode=None)
        env.reset()
        return cls(env)

    def ram(self) -> np.ndarray:
        return self.env.get_ram()

    def get_state(self) -> bytes:
        return self.em.get_state()

    def set_state(self, state: bytes) -> None:
        self.em.set_state(state)

    def step(self, action: int, frames: int = 1) -> None:
        mask = np.array([(action >> i) & 1 for i in range(9)], dtype=np.uint8)
        self.em.set_button_mask(mask, 0)
        for _ in range(frames):
            self.em.step()

    def screen(self) -> np.ndarray:
        return self.em.get_screen()


def as_emulator(emu):
    """Accept our Emulator-like object or a raw stable-retro env."""
    if hasattr(emu, "ram") and hasattr(emu, "step") and not hasattr(emu, "em") \
            and not hasattr(getattr(emu, "unwrapped", None), "em"):
        return emu
    if isinstance(emu, RawEnvEmulator):
        return emu
    return RawEnvEmulator(emu)
