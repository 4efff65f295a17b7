"""The interactive recorder in a real window under Xvfb, driven by real key events.

The recorder writes ``step N`` (steps taken so far) into its window title right
after each tick's poll. A key event sent while the title reads N, and read back
as N after it was sent, reached the X server before the poll of step N, so it
takes effect from step N exactly: the test knows the expected action of every step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GAME = "Airstriker-Genesis-v0"
# Airstriker's (Genesis) button order, as the recording stores it.
BIT = {"B": 1 << 0, "A": 1 << 1, "RIGHT": 1 << 7}

needs_x = pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
                             reason="needs the Xvfb and xdotool binaries (apt-get install xvfb xdotool)")


def _env(display: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    env["SDL_AUDIODRIVER"] = "dummy"
    if display:
        env["DISPLAY"] = display
    return env


def _xdotool(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=_env(display), capture_output=True, text=True,
                          timeout=30).stdout.strip()


def _cli(*args, display=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "contra_bc", *map(str, args)], env=_env(display),
                          capture_output=True, text=True, timeout=timeout)


_RUNNING: list = []


@pytest.fixture(autouse=True)
def _stop_leftover_recorders():
    """A failed test must not leave its recorder window running."""
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


class Recorder:
    """A `contra-bc record` window process and the xdotool calls that drive it."""

    def __init__(self, display: str, args: list, log: Path):
        self.display = display
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "contra_bc", "record", *map(str, args)],
                                     env=_env(display), stdout=self.log, stderr=subprocess.STDOUT)
        _RUNNING.append(self.proc)
        self.wid = None
        deadline = time.monotonic() + 90
        while not self.wid:
            assert self.proc.poll() is None, f"recorder exited early:\n{Path(log).read_text()}"
            assert time.monotonic() < deadline, "the recorder window never appeared"
            self.wid = _xdotool(display, "search", "--onlyvisible", "--pid", str(self.proc.pid)).split("\n")[0]
            time.sleep(0.1)
        _xdotool(display, "windowfocus", "--sync", self.wid)

    def title(self) -> tuple[str, int] | None:
        self.last_title = _xdotool(self.display, "getwindowname", self.wid)
        if not self.last_title:  # no such window: the id found first was not (or no longer) the game's
            found = _xdotool(self.display, "search", "--onlyvisible", "--pid", str(self.proc.pid)).split("\n")
            self.wid = found[-1] or self.wid
            self.last_title = _xdotool(self.display, "getwindowname", self.wid)
        m = re.search(r"(episode-\d+) \| step (\d+) \| playing", self.last_title)
        return (m.group(1), int(m.group(2))) if m else None

    def wait_step(self, episode: str, step: int) -> int:
        """Wait until the title shows ``episode`` at ``step`` or later; returns the step shown."""
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, "recorder exited early"
            assert time.monotonic() < deadline, (f"never reached {episode} step {step} "
                                                 f"(window {self.wid} title {getattr(self, 'last_title', None)!r})")
            t = self.title()
            if t and t[0] == episode and t[1] >= step:
                return t[1]
            time.sleep(0.01)

    def wait_restart(self, episode: str, step: int) -> None:
        """Wait until the title shows ``episode`` below ``step`` again (a discarded episode restarted)."""
        deadline = time.monotonic() + 60
        while not ((t := self.title()) and t[0] == episode and t[1] < step):
            assert self.proc.poll() is None and time.monotonic() < deadline, "the episode never restarted"
            time.sleep(0.01)

    def send(self, episode: str, *keys: str) -> int:
        """Send xdotool key actions just after a tick; returns the step they take effect at."""
        seen = self.wait_step(episode, 0)
        before = self.wait_step(episode, seen + 1)  # a tick has just happened: most of a period is left
        _xdotool(self.display, *keys)
        after = self.title()
        assert after == (episode, before), (f"a tick passed while the keys were sent ({before} -> "
                                            f"{self.last_title!r}); the machine is too loaded for an exact check")
        return before

    def finish(self, timeout=60) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.log.close()
        return rc


def _actions(path: Path) -> list[int]:
    import pyarrow.parquet as pq

    return pq.read_table(path / "steps.parquet").column("action").to_pylist()


@needs_x
def test_held_keys_are_the_actions_of_exactly_those_steps(display, tmp_path):
    session = tmp_path / "session"
    rec = Recorder(display, ["--game", GAME, "--out", session, "--hz", 4, "--countdown", 0,
                             "--episode-until", "never"], tmp_path / "record.log")
    ep0 = "episode-0000"
    x_down = rec.send(ep0, "keydown", "x")  # A
    rec.wait_step(ep0, x_down + 3)
    right_down = rec.send(ep0, "keydown", "Right")
    rec.wait_step(ep0, right_down + 2)
    x_up = rec.send(ep0, "keyup", "x")
    rec.wait_step(ep0, x_up + 2)
    right_up = rec.send(ep0, "keyup", "Right")
    rec.wait_step(ep0, right_up + 2)
    tap = rec.send(ep0, "keydown", "z", "keyup", "z")  # B, pressed and released inside one tick
    rec.wait_step(ep0, tap + 2)
    end0 = rec.send(ep0, "key", "n")  # end the episode and keep it

    ep1 = "episode-0001"
    rec.wait_step(ep1, 2)
    discarded_at = rec.send(ep1, "key", "BackSpace")  # discard: episode-0001 is recorded again
    rec.wait_restart(ep1, discarded_at)
    redo_down = rec.send(ep1, "keydown", "x")
    rec.wait_step(ep1, redo_down + 2)
    redo_up = rec.send(ep1, "keyup", "x")
    rec.wait_step(ep1, redo_up + 1)
    stop = rec.send(ep1, "key", "Escape")  # keep and stop the session
    assert rec.finish() == 0, (tmp_path / "record.log").read_text()

    expected = [0] * end0
    for button, first, end in (("A", x_down, x_up), ("RIGHT", right_down, right_up)):
        for k in range(first, end):
            expected[k] |= BIT[button]
    expected[tap] |= BIT["B"]
    assert _actions(session / ep0) == expected
    # The discarded attempt is gone; episode-0001 holds the second attempt only.
    assert sorted(p.name for p in session.iterdir()) == [ep0, ep1]
    assert _actions(session / ep1) == [0] * redo_down + [BIT["A"]] * (redo_up - redo_down) + [0] * (stop - redo_up)

    meta0 = json.loads((session / ep0 / "meta.json").read_text())
    meta1 = json.loads((session / ep1 / "meta.json").read_text())
    assert (meta0["source"], meta0["end_reason"], meta0["complete"], meta0["hz"]) == ("human", "user_end", True, 4.0)
    assert (meta1["end_reason"], meta1["continues_from"]) == ("user_stop", ep0)
    import pyarrow.parquet as pq

    steps = pq.read_table(session / ep0 / "steps.parquet").to_pydict()
    assert set(steps["actor"]) == {"human"} and all(x is not None and x >= 0 for x in steps["lateness_ms"])

    verify = _cli("replay-verify", session, "--workers", 1, "--report-dir", tmp_path / "report")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Recorded episodes are never overwritten: without --resume the run refuses, with it a new index is used.
    before = {p.name: (p / "meta.json").read_bytes() for p in session.iterdir()}
    again = _cli("record", "--game", GAME, "--out", session, display=display)
    assert again.returncode == 2 and "--resume" in again.stderr
    rec = Recorder(display, ["--game", GAME, "--out", session, "--resume", "--hz", 4, "--countdown", 0, "--max-steps", 3,
                             "--episodes", 1], tmp_path / "resume.log")
    assert rec.finish() == 0, (tmp_path / "resume.log").read_text()
    assert {p.name: (p / "meta.json").read_bytes() for p in session.iterdir() if p.name in before} == before
    assert len(_actions(session / "episode-0002")) == 3


OUTPOST_ROM = ROOT / "contra_bc" / "games" / "integrations" / "Outpost-Nes" / "rom.nes"


@needs_x
@pytest.mark.skipif(not OUTPOST_ROM.exists(), reason="Outpost-Nes cartridge not built")
def test_default_nes_keys(display, tmp_path):
    """The default map on the NES: Enter = START, arrows = d-pad, Z = B; the run replays exactly."""
    START, RIGHT, B = 1 << 3, 1 << 7, 1 << 0  # NES order: B, -, SELECT, START, UP, DOWN, LEFT, RIGHT, A
    session = tmp_path / "nes"
    rec = Recorder(display, ["--game", "Outpost-Nes", "--out", session, "--hz", 4, "--countdown", 0,
                             "--episode-until", "never"], tmp_path / "nes.log")
    ep = "episode-0000"
    start = rec.send(ep, "key", "Return")
    right_down = rec.send(ep, "keydown", "Right")
    rec.wait_step(ep, right_down + 1)
    b_down = rec.send(ep, "keydown", "z")
    b_up = rec.send(ep, "keyup", "z")
    right_up = rec.send(ep, "keyup", "Right")
    paused_at = rec.send(ep, "key", "p")  # pause: no steps until p again
    time.sleep(1.0)
    assert rec.title() is None and f"step {paused_at} | paused" in rec.last_title
    _xdotool(display, "key", "p")
    rec.wait_step(ep, paused_at + 1)
    stop = rec.send(ep, "key", "Escape")
    assert rec.finish() == 0, (tmp_path / "nes.log").read_text()
    import pyarrow.parquet as pq

    lateness = pq.read_table(session / ep / "steps.parquet").column("lateness_ms").to_pylist()
    assert lateness[paused_at] < 100, "after a resume the ticks restart from the resume, not the old deadlines"
    expected = [0] * stop
    expected[start] |= START
    for k in range(right_down, right_up):
        expected[k] |= RIGHT
    for k in range(b_down, b_up):
        expected[k] |= B
    assert _actions(session / ep) == expected
    verify = _cli("replay-verify", session, "--workers", 1, "--report-dir", tmp_path / "report")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_no_display_is_a_clear_error(tmp_path):
    result = _cli("record", "--game", GAME, "--out", tmp_path / "s", display=None)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "no display" in message and "xvfb-run -a contra-bc record" in message and "--input" in message
    assert "Traceback" not in result.stderr and not (tmp_path / "s").exists()


def test_bad_keymap_is_a_clear_error(tmp_path):
    keymap = tmp_path / "keys.toml"
    keymap.write_text('[keys]\nJUMP = ["space"]\n')
    result = _cli("record", "--game", GAME, "--out", tmp_path / "s", "--keymap", keymap, display=None)
    assert result.returncode == 2 and "JUMP" in result.stderr and "Traceback" not in result.stderr


GAMEPAD_SCRIPT = r"""
import ctypes, glob, json, os, sys
from pathlib import Path
from contra_bc.window import GameWindow, load_keymap

nes = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]
window = GameWindow(nes, scale=1, keymap=load_keymap(Path(sys.argv[1])))
import pygame
lib_dir = Path(pygame.__file__).resolve().parent.parent / "pygame_ce.libs"
sdl = ctypes.CDLL(str(next(lib_dir.glob("libSDL2-*"))))  # the SDL pygame already loaded
sdl.SDL_JoystickOpen.restype = ctypes.c_void_p
sdl.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
sdl.SDL_JoystickSetVirtualHat.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
sdl.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
index = sdl.SDL_JoystickAttachVirtual(1, 2, 8, 1)  # SDL_JOYSTICK_TYPE_GAMECONTROLLER, 2 axes, 8 buttons, 1 hat
pad = sdl.SDL_JoystickOpen(index)
out = {"gamepads": None, "actions": {}}
window.poll()
out["gamepads"] = window.gamepads
def step(name):
    out["actions"][name] = window.poll().action
sdl.SDL_JoystickSetVirtualButton(pad, 4, 1); pygame.event.pump(); step("button 4 (A by the keymap)")
sdl.SDL_JoystickSetVirtualHat(pad, 0, 0x02); pygame.event.pump(); step("+ hat right")
sdl.SDL_JoystickSetVirtualButton(pad, 4, 0); pygame.event.pump(); step("A released")
sdl.SDL_JoystickSetVirtualButton(pad, 0, 1); pygame.event.pump()
sdl.SDL_JoystickSetVirtualButton(pad, 0, 0); pygame.event.pump(); step("tap button 0 (B)")
sdl.SDL_JoystickSetVirtualHat(pad, 0, 0x00); sdl.SDL_JoystickSetVirtualAxis(pad, 0, -32768); pygame.event.pump()
step("stick left")
sdl.SDL_JoystickSetVirtualAxis(pad, 0, -8000); pygame.event.pump(); step("stick inside the deadzone")
sdl.SDL_JoystickSetVirtualButton(pad, 7, 1); pygame.event.pump(); step("button 7 (START)")
print(json.dumps(out))
"""


@needs_x
def test_gamepad_through_an_sdl_virtual_joystick(display, tmp_path):
    keymap = tmp_path / "pad.toml"
    keymap.write_text("[gamepad]\nA = [4]\ndeadzone = 0.4\n")
    script = tmp_path / "pad.py"
    script.write_text(GAMEPAD_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(keymap)], env=_env(display), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    B, START, LEFT, RIGHT, A = 1 << 0, 1 << 3, 1 << 6, 1 << 7, 1 << 8
    assert len(out["gamepads"]) == 1
    assert out["actions"] == {
        "button 4 (A by the keymap)": A,
        "+ hat right": A | RIGHT,
        "A released": RIGHT,
        "tap button 0 (B)": B | RIGHT,
        "stick left": LEFT,
        "stick inside the deadzone": 0,
        "button 7 (START)": START,
    }
