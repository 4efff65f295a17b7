"""A human recording session: the game runs one step per tick while a person plays.

One emulator step per tick of ``1/hz`` seconds; the buttons held at the tick (plus
taps latched since the previous tick, see ``window.py``) are that step's action.
Nothing is pooled, so every episode replays exactly (``contra-bc replay-verify``).

Pacing (``pacing.py``) sleeps until each tick's deadline. A tick that wakes more
than one period late skips the deadlines it missed (the game slows down rather
than rushing to catch up); each step stores how late its tick was (``lateness_ms``).

A session folder holds ``episode-0000``, ``episode-0001``, ... Episodes already
there are never touched; ``--resume`` numbers new ones after them. The next
episode continues the game where the last one ended (after a lost life or a
cleared level), or starts again from the start state after a game over.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contra_bc.emulator import get_game
from contra_bc import signals
from contra_bc.episode import EpisodeRunner
from contra_bc.errors import UserError
from contra_bc.formats.recording import is_recording, read_meta
from contra_bc.pacing import Pacer
from contra_bc.window import GameWindow, load_keymap

EPISODE_NAME = re.compile(r"^episode-(\d{4,})$")
LATE_MS = 5.0  # a tick later than this counts as late (the pacing goal is p99 <= 5 ms)
PANEL_REFRESH_S = 0.25
IDLE_POLL_S = 1 / 30  # how often the window is polled while paused or counting down


@dataclass
class SessionConfig:
    game: str
    out: Path
    state: str | None = None
    hz: float = 20.0
    frames_per_step: int = 1
    until: str = "level"
    max_steps: int | None = None
    episodes: int | None = None
    resume: bool = False
    scale: int = 3
    keymap: Path | None = None
    countdown: float = 3.0


def plan_session(out: Path, resume: bool, game: str, hz: float, frames_per_step: int) -> int:
    """The index of the next episode in the session folder ``out``; UserError if it is unusable."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; a recording session is a folder. Choose a new folder name.")
    if is_recording(out):
        raise UserError(f"--out {out} is a single recording, not a session folder. Give a new folder "
                        f"(episodes go into OUT/episode-0000, ...).")
    if not out.is_dir():
        return 0
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    episodes = [p for p in entries if p.is_dir() and EPISODE_NAME.match(p.name)]
    if entries and not resume:
        raise UserError(f"{out} already holds {len(episodes)} episode(s) and recordings are never "
                        f"overwritten. Add --resume to continue this session (new episodes are numbered "
                        f"after the last one), or choose a new --out.")
    strangers = [p.name for p in entries if p not in episodes]
    if strangers:
        raise UserError(f"{out} holds {', '.join(sorted(strangers)[:5])}, which are not episode-NNNN "
                        f"recordings, so it is not a recording session. Choose a new --out.")
    for p in episodes:
        try:
            meta = read_meta(p)
        except UserError:
            continue  # a damaged episode is counted, kept, and left for replay-verify to report
        mine = {"game": game, "hz": float(hz), "frames_per_step": int(frames_per_step)}
        theirs = {k: meta.get(k) for k in mine}
        if theirs != mine:
            raise UserError(f"{p} was recorded with {theirs}, but this run asks for {mine}. A session "
                            f"keeps one game and pace; use those options or a new --out.")
    return max((int(EPISODE_NAME.match(p.name).group(1)) + 1 for p in episodes), default=0)


class BackgroundWriter:
    """Feeds a RecordingWriter from a thread, so encoding and chunk flushes stay off the tick."""

    def __init__(self, writer):
        self.writer = writer
        self.path = writer.path
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._thread.start()

    def _run(self):
        try:  # the tick thread comes first when the CPU is contended (Linux: per-thread nice)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self.writer.add(*item)
                except BaseException as exc:  # re-raised in the recording thread
                    self._error = exc

    def add(self, frame: np.ndarray, row: dict) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame, row))

    def _drain(self):
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def finish(self, outcome: str, **kwargs) -> dict:
        self._drain()
        return self.writer.finish(outcome, **kwargs)

    def discard(self) -> None:
        try:
            self._drain()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


class TickStats:
    """Lateness of one episode's ticks, and the recent pace."""

    def __init__(self, hz: float):
        self.lateness: list[float] = []
        self.missed = 0
        self.recent: deque = deque(maxlen=max(2, int(hz * 2)))

    def tick(self, lateness_ms: float, missed: int) -> None:
        self.lateness.append(lateness_ms)
        self.missed += missed
        self.recent.append(time.perf_counter())

    def paused(self) -> None:
        self.recent.clear()

    @property
    def late(self) -> int:
        return int(sum(1 for x in self.lateness if x > LATE_MS))

    def achieved_hz(self) -> float | None:
        if len(self.recent) < 2 or self.recent[-1] == self.recent[0]:
            return None
        return (len(self.recent) - 1) / (self.recent[-1] - self.recent[0])

    def summary(self) -> dict:
        arr = np.asarray(self.lateness or [0.0])
        return {"ticks": len(self.lateness), "late_ticks": self.late, "missed_ticks": self.missed,
                "lateness_p50_ms": round(float(np.percentile(arr, 50)), 3),
                "lateness_p99_ms": round(float(np.percentile(arr, 99)), 3),
                "lateness_max_ms": round(float(arr.max()), 3)}


class HumanSession:
    """Runs the episodes of one session in a GameWindow, with a live terminal panel."""

    def __init__(self, cfg: SessionConfig, window: GameWindow, runner: EpisodeRunner, first_index: int):
        self.cfg = cfg
        self.window = window
        self.runner = runner
        self.emu = runner.emu
        self.index = first_index
        self.kept: list[dict] = []
        self.discarded = 0
        self.state = "starting"
        self.last = "-"
        self.episode = "-"
        self.stats = TickStats(cfg.hz)
        self.started = time.perf_counter()
        self.play_seconds = 0.0
        self._live = None
        self._refreshed = 0.0

    # -- the terminal panel ----------------------------------------------------
    def panel(self):
        from rich.panel import Panel
        from rich.table import Table

        cfg, s = self.cfg, self.stats
        achieved = s.achieved_hz()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("state", self.state)
        grid.add_row("episode", f"{self.episode}  (kept {len(self.kept)}, discarded {self.discarded})")
        grid.add_row("pace", f"target {cfg.hz:g} Hz, achieved {achieved:.2f} Hz" if achieved else
                     f"target {cfg.hz:g} Hz")
        p99 = np.percentile(s.lateness, 99) if s.lateness else 0.0
        grid.add_row("ticks", f"{len(s.lateness)} this episode, {s.late} late (> {LATE_MS:g} ms), "
                              f"{s.missed} missed, p99 lateness {p99:.2f} ms")
        grid.add_row("time", f"episode {_clock(len(s.lateness) / cfg.hz)}, session "
                             f"{_clock(time.perf_counter() - self.started)}")
        variables = getattr(self.runner, "variables", {}) or {}
        grid.add_row("game", "  ".join(f"{k}={v}" for k, v in variables.items()) or "-")
        grid.add_row("last", self.last)
        keys = {name: keys for name, keys in self.window.keymap.describe()}
        grid.add_row("keys", "  ".join(f"{keys[c]}: {c.replace('_', ' ')}" for c in
                                       ("pause", "end_episode", "discard", "stop") if c in keys))
        return Panel(grid, title=f"contra-bc record: {cfg.game} -> {cfg.out}", expand=False)

    def refresh(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self._live is not None and (force or now - self._refreshed >= PANEL_REFRESH_S):
            self._live.update(self.panel(), refresh=True)
            self._refreshed = now

    def log(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, highlight=False)

    def title(self, state: str) -> None:
        self.window.set_title(f"contra-bc record | {self.episode} | step {self.runner.steps} | {state}")

    # -- waiting states ----------------------------------------------------------
    def countdown(self, frame) -> str | None:
        """Show a countdown; returns a control that cut it short (stop/discard/end_episode)."""
        end = time.perf_counter() + self.cfg.countdown
        while (left := end - time.perf_counter()) > 0:
            controls = self.window.poll().controls
            for c in ("stop", "discard", "end_episode"):
                if c in controls:
                    return c
            if "pause" in controls:
                return self.pause(frame)
            self.state = f"countdown {math.ceil(left)}"
            self.title(self.state)
            self.window.show(frame, overlay=str(math.ceil(left)), detail=f"{self.episode}: get ready")
            self.refresh()
            time.sleep(min(left, IDLE_POLL_S))
        self.window.clear()  # taps during the countdown are not part of step 0
        return None

    def pause(self, frame) -> str | None:
        """Paused until the pause key again (then a countdown); returns another control if pressed."""
        self.state = "paused"
        self.stats.paused()
        keys = dict(self.window.keymap.describe())
        hint = "  ".join(f"{keys[c]}: {label}" for c, label in
                         (("pause", "resume"), ("end_episode", "end & keep"), ("discard", "discard"),
                          ("stop", "stop")) if c in keys)
        self.title("paused")
        self.refresh(force=True)
        while True:
            controls = self.window.poll().controls
            for c in ("stop", "discard", "end_episode"):
                if c in controls:
                    return c
            if "pause" in controls:
                return self.countdown(frame) if self.cfg.countdown > 0 else None
            self.window.show(frame, overlay="PAUSED", detail=hint)
            self.refresh()
            time.sleep(IDLE_POLL_S)

    # -- one episode ---------------------------------------------------------------
    def play(self, frame, writer: BackgroundWriter) -> str:
        """Step the game once per tick until the episode ends; returns the end reason."""
        cfg, runner, window = self.cfg, self.runner, self.window
        self.stats = TickStats(cfg.hz)
        window.show(frame)
        control = self.countdown(frame) if cfg.countdown > 0 else None
        if control:
            return control
        pacer = Pacer(cfg.hz)
        self.state = "playing"
        self.title("playing")
        self.refresh(force=True)
        pacer.start()
        while True:
            tick = pacer.wait()
            polled = window.poll()
            control = next((c for c in ("stop", "discard", "end_episode", "pause") if c in polled.controls), None)
            if control == "pause":
                control = self.pause(frame)
                if control is None:
                    self.state = "playing"
                    self.title("playing")
                    pacer.start()
                    continue
            if control:
                return control
            window.set_title(f"contra-bc record | {self.episode} | step {runner.steps + 1} | playing")
            row = runner.step(polled.action, "human", tick.lateness_ms)
            writer.add(frame, row)
            frame = self.emu.screen()
            window.show(frame, recording=True)
            self.stats.tick(tick.lateness_ms, tick.missed)
            self.refresh()
            if runner.done:
                return runner.outcome
            if cfg.max_steps and runner.steps >= cfg.max_steps:
                return "max_steps"

    def run(self) -> list[dict]:
        """Record episodes until --episodes are kept or the player stops; returns their metas."""
        from rich.live import Live

        from contra_bc.ui import err

        cfg, runner = self.cfg, self.runner
        game = self.emu.game
        start: str | bytes = cfg.state or game.default_state
        continues_from = None
        signals.install()  # SIGTERM stops the session as Ctrl-C does: the episode in hand is kept
        with Live(self.panel(), console=err, auto_refresh=False, transient=False) as live:
            self._live = live
            while cfg.episodes is None or len(self.kept) < cfg.episodes:
                self.episode = f"episode-{self.index:04d}"
                frame = runner.reset(start)
                detail = f"window {self.window.driver} {cfg.scale}x, keymap {self.window.keymap.source}"
                writer = BackgroundWriter(runner.open_writer(
                    Path(cfg.out) / self.episode, source="human", source_detail=detail, hz=cfg.hz,
                    extra={"episode_until": cfg.until, "session": Path(cfg.out).name, "episode": self.index,
                           "continues_from": continues_from}))
                try:
                    reason = self.play(frame, writer)
                except KeyboardInterrupt:
                    self.state = "interrupted"
                    if runner.steps == 0:
                        writer.discard()
                        raise
                    meta = writer.finish(runner.final_outcome(), complete=False, end_reason="interrupted",
                                         summary={**runner.summary(), "timing": self.stats.summary()})
                    self.log(f"{self.episode}: interrupted after {meta['steps']} steps, kept as incomplete")
                    raise
                if reason == "discard" or (reason in ("stop", "end_episode") and runner.steps == 0):
                    writer.discard()
                    if reason == "discard":
                        self.discarded += 1
                        self.last = f"{self.episode} discarded, recording it again"
                        self.log(self.last)
                        continue  # same index, same start
                    break
                end_reason = {"stop": "user_stop", "end_episode": "user_end"}.get(reason, reason)
                meta = writer.finish(runner.final_outcome(), complete=True, end_reason=end_reason,
                                     summary={**runner.summary(), "timing": self.stats.summary()})
                meta["path"] = str(writer.path)
                self.kept.append(meta)
                timing = meta["timing"]
                self.last = (f"{self.episode}: {meta['steps']} steps, outcome {meta['outcome']} "
                             f"({end_reason}), p99 lateness {timing['lateness_p99_ms']:.2f} ms, "
                             f"{timing['missed_ticks']} missed")
                self.log(self.last)
                self.index += 1
                if reason == "stop":
                    break
                if meta["outcome"] == "game_over":
                    start, continues_from = cfg.state or game.default_state, None
                else:
                    start, continues_from = self.emu.get_state(), self.episode
            self.state = "done"
            self.refresh(force=True)
        return self.kept


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def record_session(cfg: SessionConfig) -> dict:
    """Open the window and the emulator, record a session; returns what was kept."""
    from contra_bc.parallel import shared_emulator

    if not 0 < cfg.hz <= 240:
        raise UserError(f"--hz must be between 0 and 240 steps per second, not {cfg.hz:g}.")
    game = get_game(cfg.game)
    keymap = load_keymap(cfg.keymap)
    first = plan_session(cfg.out, cfg.resume, game.name, cfg.hz, cfg.frames_per_step)
    # The window first: no display is the likeliest problem, and it should fail before the emulator starts.
    window = GameWindow(list(game.buttons), scale=cfg.scale, title=f"contra-bc record | {game.name}",
                        keymap=keymap)
    try:
        emu = shared_emulator(game)
        runner = EpisodeRunner(emu, frames_per_step=cfg.frames_per_step, until=cfg.until)
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        session = HumanSession(cfg, window, runner, first)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)  # the tick thread gets the GIL back within 0.5 ms, not 5 ms
        try:
            kept = session.run()
        finally:
            sys.setswitchinterval(switch)
        return {"out": str(cfg.out), "kept": kept, "discarded": session.discarded, "first_index": first,
                "gamepads": window.gamepads}
    finally:
        window.close()


def table_rows(kept: list[dict]) -> list[dict]:
    """The summary table of a session: one row per episode kept."""
    return [{"episode": Path(m["path"]).name, "steps": m["steps"], "outcome": m["outcome"],
             "end": m["end_reason"], "p99 lateness ms": m["timing"]["lateness_p99_ms"],
             "missed ticks": m["timing"]["missed_ticks"]} for m in kept]
