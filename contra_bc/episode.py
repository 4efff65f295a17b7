"""Run one episode on an emulator, step by step, and turn it into recording rows.

Shared by every source of actions (scripts, bots, the human window, the policy,
movies), so they all write the same rows and agree on when an episode ends.
``run_episode`` is the one loop of `play` (headless and in the window) and scripted
`record`: an actor, optional drivers (a takeover, a perturbation), an optional writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from contra_bc.emulator import RESET_FRAMES, Emulator, classify, expected_rom_sha1, progress_of
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


@dataclass
class EpisodeEnd:
    """How `run_episode` ended: why, whether the episode is complete, what it did and how far it got."""

    end_reason: str = "max_steps"
    complete: bool = True
    actions: list = field(default_factory=list)         # executed, in step order: the episode's identity
    max_progress: int = 0
    death_progress: list = field(default_factory=list)  # progress reached at each death


def run_episode(runner: EpisodeRunner, actor, screen: np.ndarray, *, max_steps: int, takeover=None, perturbed=None,
                writer=None, pacer=None, controls: Callable[[], str | None] | None = None,
                on_step: Callable[[dict, np.ndarray], None] | None = None) -> EpisodeEnd:
    """Steps until the game's rules end the episode, ``max_steps``, a stop, or the actor's input runs out.

    Each pass: wait for the pacer's tick (paced loops: the windows, `record --realtime`); stop on
    Ctrl-C/SIGTERM (the episode is then incomplete); ask ``controls()`` (the window's keys: "stop" ends it
    incomplete, "end" complete, "skip" lets the tick pass without a step, as while paused); take one step
    (`takeover.take_step`: the actor decides, a takeover or a perturbation may change what runs); write it;
    ``on_step(row, screen after it)``. The writer is left open: the caller finishes it with its summary."""
    from contra_bc.signals import StopSignals
    from contra_bc.takeover import take_step

    game = runner.emu.game
    end = EpisodeEnd(max_progress=progress_of(game, runner.variables))
    with StopSignals() as stop:
        if pacer is not None:
            pacer.start(delay_periods=1)
        while runner.steps < max_steps:
            late = pacer.wait().lateness_ms if pacer is not None else None
            if stop.requested:
                end.end_reason, end.complete = "interrupted", False
                break
            control = controls() if controls is not None else None
            if control == "stop":
                end.end_reason, end.complete = "stopped", False
                break
            if control == "end":
                end.end_reason = "ended_by_user"
                break
            if control == "skip":
                continue
            try:
                row = take_step(runner, actor, takeover, runner.emu, screen, late, perturbed)
            except StopIteration:  # an action file or movie has no more steps
                end.end_reason = "input_exhausted"
                break
            end.actions.append(row["action"])
            if writer is not None:
                writer.add(screen, row)
            screen = runner.emu.screen()
            end.max_progress = max(end.max_progress, progress_of(game, runner.variables))
            if row["event"] == "death":  # where in the level the player died
                end.death_progress.append(end.max_progress)
            if on_step is not None:
                on_step(row, screen)
            if runner.done:
                end.end_reason = runner.outcome
                break
    return end
