"""Run one episode on an emulator, step by step, and turn it into recording rows.

Shared by every source of actions (scripts, bots, the human window, the policy,
movies), so they all write the same rows and agree on when an episode ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contra_bc.emulator import RESET_FRAMES, Emulator, classify, expected_rom_sha1
from contra_bc.errors import UserError
from contra_bc.formats.recording import RecordingWriter, now_ns

# Which outcomes end an episode, by --episode-until.
UNTIL = {
    "life": ("death", "win", "game_over"),
    "level": ("win", "game_over"),
    "game-over": ("game_over",),
    "never": (),
}


def check_until(until: str) -> None:
    """UserError unless ``until`` is an --episode-until value."""
    if until not in UNTIL:
        raise UserError(f"--episode-until must be one of {', '.join(UNTIL)}, not {until!r}.")


class EpisodeRunner:
    """Steps an emulator with a fixed frames_per_step and classifies each step."""

    def __init__(self, emu: Emulator, *, frames_per_step: int = 1, until: str = "level"):
        if until not in UNTIL:
            raise ValueError(f"until must be one of {sorted(UNTIL)}")
        self.emu = emu
        self.frames_per_step = int(frames_per_step)
        self.until = until
        self.start_state = b""
        self.state_name: str | None = None

    def reset(self, state: str | bytes | None = None) -> np.ndarray:
        """Load the start state; returns the first frame the actor sees."""
        self.state_name = state if isinstance(state, str) else (None if state else self.emu.game.default_state)
        self.start_state = self.emu.reset(state)
        self.first_frame_hash = self.emu.frame_hash()
        self.variables = self.emu.variables()
        self._status = classify(self.emu.game, self.variables, None)
        self.steps = 0
        self.counts = {"win": 0, "death": 0, "game_over": 0}
        self.done = False
        self.outcome = "none"
        return self.emu.screen()

    def step(self, action: int, actor: str, lateness_ms: float | None = None, chosen: int | None = None) -> dict:
        """Apply one step's action (what the emulator executes); returns the step's row.

        ``chosen``: what the actor chose, where a perturbation executed something else (contra_bc.perturb)."""
        self.emu.step(action, self.frames_per_step)
        before = self.variables
        self.variables = self.emu.variables()
        status = classify(self.emu.game, self.variables, before)
        event = status if status != self._status and status != "none" else "none"
        self._status = status
        if event != "none":
            self.counts[event] += 1
            if event in UNTIL[self.until]:
                self.done = True
                self.outcome = event
        self.steps += 1
        return {
            "action": int(action),
            "chosen_action": int(action if chosen is None else chosen),
            "actor": actor,
            "frame_hash": self.emu.frame_hash(),
            "ram_hash": self.emu.ram_hash(),
            "event": event,
            "wall_time_ns": now_ns(),
            "lateness_ms": lateness_ms,
            "variables": self.variables,
        }

    def final_outcome(self) -> str:
        """The event that ended the episode, else the most telling one seen."""
        if self.outcome != "none":
            return self.outcome
        for name in ("win", "game_over", "death"):
            if self.counts[name]:
                return name
        return "none"

    def summary(self) -> dict:
        return {"wins": self.counts["win"], "deaths": self.counts["death"],
                "game_overs": self.counts["game_over"], "final_variables": self.variables}

    def open_writer(self, path: Path, *, source: str, source_detail: str, hz: float,
                    extra: dict | None = None) -> RecordingWriter:
        import stable_retro

        game = self.emu.game
        screen = self.emu.screen()
        return RecordingWriter(
            path,
            game=game.name,
            platform=game.platform,
            state_name=self.state_name,
            start_state=self.start_state,
            rom_sha1=expected_rom_sha1(game),
            buttons=list(game.buttons),
            variables=list(game.variables),
            frames_per_step=self.frames_per_step,
            hz=hz,
            reset_frames=RESET_FRAMES,
            source=source,
            source_detail=source_detail,
            screen_shape=screen.shape,
            first_frame_hash=self.first_frame_hash,
            stable_retro_version=str(getattr(stable_retro, "__version__", "unknown")).strip(),
            extra=extra,
        )
