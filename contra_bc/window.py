"""The game window: shows emulator frames and reads a human's buttons.

``GameWindow`` is reusable: the recorder (``record/session.py``) uses it for a
human playing, ``contra-bc play`` for watching the agent and for human takeover
(the ``takeover`` control). It is fed the emulator's own screen (no screen
capture) and scales it by an integer factor with nearest-neighbour pixels.

Input rule: ``poll()`` returns the buttons held right now OR pressed at any time
since the previous poll (a tap shorter than a tick is latched, so it counts as
pressed for that step). Nothing else is pooled: a key released before the
previous poll and not pressed again is not in the action.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contra_bc.errors import UserError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

# Session and takeover controls: read from the keyboard like buttons, never part of an action.
CONTROLS = ("pause", "end_episode", "discard", "stop", "takeover")

# Default keyboard map, NES-emulator style (RetroArch-like): Z/X are B/A, J/K the same on the
# right hand. Buttons a game lacks are ignored (C/X/Y/Z/MODE exist on Genesis only).
DEFAULT_KEYS: dict[str, list[str]] = {
    "UP": ["up"],
    "DOWN": ["down"],
    "LEFT": ["left"],
    "RIGHT": ["right"],
    "B": ["z", "j"],
    "A": ["x", "k"],
    "START": ["return", "enter"],
    "SELECT": ["right shift"],
    "MODE": ["right shift"],
    "C": ["c", "l"],
    "X": ["a"],
    "Y": ["s"],
    "Z": ["d"],
    "pause": ["p"],
    "end_episode": ["n"],
    "discard": ["backspace"],
    "stop": ["escape"],
    "takeover": ["tab"],
}

# Default gamepad map: joystick button indices (Xbox-style pads on Linux: 0 south, 1 east,
# 2 west, 3 north, 6 back, 7 start). The d-pad is hat 0 or the left stick (axes 0/1).
DEFAULT_GAMEPAD: dict[str, list[int]] = {
    "B": [0, 2],
    "A": [1, 3],
    "C": [5],
    "SELECT": [6],
    "MODE": [6],
    "START": [7],
}
DEFAULT_DEADZONE = 0.5

NO_DISPLAY = (
    "The interactive recorder needs a window, and there is no display here ({why}). Run it in a "
    "desktop session, set DISPLAY to a running X server, or give it a virtual one: "
    "`xvfb-run -a contra-bc record --game GAME --out SESSION`. To record without a window, use "
    "scripted input: `contra-bc record --input bot:NAME ...` or `--input actions.csv`."
)


@dataclass
class Keymap:
    """Which keys and gamepad buttons press which game button or control."""

    keys: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_KEYS.items()})
    gamepad: dict[str, list[int]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_GAMEPAD.items()})
    deadzone: float = DEFAULT_DEADZONE
    source: str = "default"

    def for_buttons(self, buttons: list) -> "Keymap":
        """The map restricted to the buttons this game has (plus the controls)."""
        names = {b for b in buttons if b} | set(CONTROLS)
        return Keymap({k: v for k, v in self.keys.items() if k in names},
                      {k: v for k, v in self.gamepad.items() if k in names}, self.deadzone, self.source)

    def describe(self, buttons: list | None = None) -> list[tuple[str, str]]:
        """(name, "key, key") rows for help texts and the terminal panel."""
        m = self.for_buttons(buttons) if buttons else self
        return [(name, ", ".join(keys)) for name, keys in m.keys.items() if keys]


def load_keymap(path: Path | None) -> Keymap:
    """The default map, overridden by a TOML file's ``[keys]`` and ``[gamepad]`` tables.

    Each entry replaces the whole list for that button or control, e.g.
    ``A = ["x", "space"]`` under ``[keys]`` (pygame key names) or ``A = [1]`` under
    ``[gamepad]`` (joystick button indices); ``deadzone = 0.4`` under ``[gamepad]``.
    """
    keymap = Keymap()
    if path is None:
        return keymap
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"Key map {path} does not exist. Write a TOML file with a [keys] table, "
                        f'e.g. `A = ["x"]`, or leave out --keymap for the default map.') from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"Key map {path} is not valid TOML ({exc}). Fix the line it names.") from None
    known = set(DEFAULT_KEYS) | set(CONTROLS)
    unknown_tables = set(spec) - {"keys", "gamepad"}
    if unknown_tables:
        raise UserError(f"Key map {path} has unknown tables {sorted(unknown_tables)}; it may hold [keys] "
                        f"and [gamepad] only.")
    for name, keys in spec.get("keys", {}).items():
        if name not in known:
            raise UserError(f"Key map {path}: [keys] names {name!r}, which is neither a button nor a "
                            f"control. Names: {', '.join(sorted(known))}.")
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise UserError(f'Key map {path}: [keys] {name} must be a list of key names, e.g. ["x", "k"].')
        keymap.keys[name] = [k.lower() for k in keys]
    for name, value in spec.get("gamepad", {}).items():
        if name == "deadzone":
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise UserError(f"Key map {path}: [gamepad] deadzone must be a number between 0 and 1.")
            keymap.deadzone = float(value)
            continue
        if name not in known:
            raise UserError(f"Key map {path}: [gamepad] names {name!r}, which is neither a button nor a "
                            f"control. Names: {', '.join(sorted(known))}.")
        if isinstance(value, int):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, int) and v >= 0 for v in value):
            raise UserError(f"Key map {path}: [gamepad] {name} must be a list of joystick button numbers, e.g. [1].")
        keymap.gamepad[name] = value
    keymap.source = str(path)
    return keymap


@dataclass
class WindowInput:
    """What one poll read: the step's action and any controls pressed since the last poll."""

    action: int  # held | latched, bit i = button i
    held: int
    latched: int
    controls: list[str]


def _import_pygame():
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "contra-bc")  # find it with `xdotool search --classname contra-bc`
    try:
        import pygame
    except ImportError:
        raise UserError("The interactive window needs pygame-ce: `pip install pygame-ce`.") from None
    return pygame


class GameWindow:
    """A window showing emulator frames at an integer scale, reading keyboard and gamepads."""

    def __init__(self, buttons: list, *, scale: int = 3, title: str = "contra-bc",
                 keymap: Keymap | None = None, frame_shape: tuple | None = None):
        if scale < 1:
            raise UserError(f"--scale must be a whole number >= 1, not {scale}.")
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError(NO_DISPLAY.format(why="DISPLAY is not set"))
        pygame = _import_pygame()
        self._pg = pygame
        self.driver = self._open_display(pygame)
        pygame.font.init()
        pygame.joystick.init()
        self.buttons = list(buttons)
        self.keymap = (keymap or Keymap()).for_buttons(self.buttons)
        self._key_bits, self._key_controls = self._resolve_keys()
        self._pad_bits = {}
        self._pad_controls = {}
        bit = {b: i for i, b in enumerate(self.buttons) if b}
        for name, indices in self.keymap.gamepad.items():
            for idx in indices:
                if name in CONTROLS:
                    self._pad_controls[idx] = name
                else:
                    self._pad_bits[idx] = self._pad_bits.get(idx, 0) | (1 << bit[name])
        self._dpad = {d: (1 << bit[d]) if d in bit else 0 for d in ("UP", "DOWN", "LEFT", "RIGHT")}
        self.scale = int(scale)
        self.title = title
        self._down: set[int] = set()
        self._latched = 0
        self._controls: list[str] = []
        self._joysticks: dict[int, object] = {}
        self._fonts: dict[int, object] = {}
        self._screen = None
        self._size = None
        self._frame_size = None
        if frame_shape is not None:  # otherwise the window opens at the first show(), sized to its frame
            self._open(frame_shape)
        pygame.key.set_repeat()  # no auto-repeat: one KEYDOWN per press

    # -- setup ----------------------------------------------------------------
    @staticmethod
    def _open_display(pygame, attempts: int = 4) -> str:
        """Initialise SDL's video and return its driver name.

        An X server that just lost its last client resets itself and refuses connections
        for a moment (Xvfb does this between test runs); SDL then silently falls back to
        its offscreen driver. A few short retries ride over that; a display that is really
        missing still ends in the one-paragraph error.
        """
        for attempt in range(attempts):
            try:
                pygame.display.init()
            except pygame.error as exc:
                why = f"SDL could not open it: {exc}"
            else:
                driver = pygame.display.get_driver()
                if driver not in ("offscreen", "dummy"):
                    return driver
                pygame.display.quit()
                why = f"SDL fell back to its {driver!r} driver"
            if attempt + 1 < attempts:
                time.sleep(0.25 * (attempt + 1))
        raise UserError(NO_DISPLAY.format(why=why))

    def _resolve_keys(self):
        pygame = self._pg
        bit = {b: i for i, b in enumerate(self.buttons) if b}
        key_bits: dict[int, int] = {}
        key_controls: dict[int, str] = {}
        owner: dict[int, str] = {}
        for name, names in self.keymap.keys.items():
            for key_name in names:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        code = pygame.key.key_code(key_name)
                except ValueError:
                    raise UserError(f"Key map ({self.keymap.source}): {key_name!r} for {name} is not a key "
                                    f"name pygame knows. Use names like 'z', 'return', 'right shift', "
                                    f"'up', 'space', 'backspace', 'f1'.") from None
                if code in owner and (name in CONTROLS or owner[code] in CONTROLS) and owner[code] != name:
                    raise UserError(f"Key map ({self.keymap.source}): key {key_name!r} is bound to both "
                                    f"{owner[code]} and {name}. Give one of them another key.")
                owner[code] = name
                if name in CONTROLS:
                    key_controls[code] = name
                else:
                    key_bits[code] = key_bits.get(code, 0) | (1 << bit[name])
        return key_bits, key_controls

    def _open(self, frame_shape):
        h, w = int(frame_shape[0]), int(frame_shape[1])
        size = (w * self.scale, h * self.scale)
        if size != self._size:
            self._screen = self._pg.display.set_mode(size)
            self._pg.display.set_caption(self.title)
            self._size = size
            self._frame_size = (w, h)
            self._native = self._pg.Surface((w, h), 0, self._screen)  # unscaled, in the display's pixel format

    @property
    def window_id(self) -> int | None:
        """The native window id (X11), for tools such as xdotool."""
        return self._pg.display.get_wm_info().get("window")

    # -- output ---------------------------------------------------------------
    def _font(self, size: int):
        if size not in self._fonts:
            self._fonts[size] = self._pg.font.Font(None, size)
        return self._fonts[size]

    def _text(self, text: str, size: int, centre: tuple, colour=(255, 255, 255)):
        font = self._font(size)
        shadow = font.render(text, True, (0, 0, 0))
        label = font.render(text, True, colour)
        rect = label.get_rect(center=centre)
        self._screen.blit(shadow, rect.move(2, 2))
        self._screen.blit(label, rect)

    def show(self, frame: np.ndarray, overlay: str | None = None, detail: str | None = None,
             recording: bool = False) -> None:
        """Draw one emulator frame (H×W×3 uint8), with an optional big overlay line."""
        pygame = self._pg
        h, w = frame.shape[:2]
        if (w, h) != self._frame_size:
            self._open(frame.shape)
        frame = np.ascontiguousarray(frame)
        self._native.blit(pygame.image.frombuffer(frame.data, (w, h), "RGB"), (0, 0))
        pygame.transform.scale(self._native, self._size, self._screen)  # scale() is nearest-neighbour
        W, H = self._size
        if overlay:
            shade = pygame.Surface(self._size, pygame.SRCALPHA)
            shade.fill((0, 0, 0, 110))
            self._screen.blit(shade, (0, 0))
            self._text(overlay, max(24, H // 5), (W // 2, H // 2 - H // 16))
        if detail:
            self._text(detail, max(14, H // 28), (W // 2, H // 2 + H // 10), (255, 230, 120))
        if recording:
            r = max(3, self.scale * 2)  # a small red dot in the corner: recording
            pygame.draw.circle(self._screen, (0, 0, 0), (W - 2 * r, 2 * r), r + 2)
            pygame.draw.circle(self._screen, (230, 30, 30), (W - 2 * r, 2 * r), r)
        pygame.display.flip()

    def set_title(self, text: str) -> None:
        self.title = text
        self._pg.display.set_caption(text)

    # -- input ----------------------------------------------------------------
    def _pad_state(self) -> int:
        held = 0
        for joy in self._joysticks.values():
            for idx, bits in self._pad_bits.items():
                if idx < joy.get_numbuttons() and joy.get_button(idx):
                    held |= bits
            held |= self._dpad_bits(*self._stick(joy))
        return held

    def _stick(self, joy) -> tuple[int, int]:
        x = y = 0
        if joy.get_numhats():
            x, y = joy.get_hat(0)
            y = -y  # hat up is +1, screen up is -1 like the stick
        if joy.get_numaxes() >= 2 and not (x or y):
            ax, ay = joy.get_axis(0), joy.get_axis(1)
            x = -1 if ax < -self.keymap.deadzone else 1 if ax > self.keymap.deadzone else 0
            y = -1 if ay < -self.keymap.deadzone else 1 if ay > self.keymap.deadzone else 0
        return x, y

    def _dpad_bits(self, x: int, y: int) -> int:
        d = self._dpad
        return (d["LEFT"] if x < 0 else d["RIGHT"] if x > 0 else 0) | (d["UP"] if y < 0 else d["DOWN"] if y > 0 else 0)

    def poll(self) -> WindowInput:
        """Read the window's events: held + latched buttons and controls since the last poll."""
        pygame = self._pg
        latched = self._latched
        controls = self._controls
        for event in pygame.event.get():
            if event.type == pygame.KEYDOWN:
                self._down.add(event.key)
                latched |= self._key_bits.get(event.key, 0)
                if event.key in self._key_controls:
                    controls.append(self._key_controls[event.key])
            elif event.type == pygame.KEYUP:
                self._down.discard(event.key)
            elif event.type == pygame.QUIT:
                controls.append("stop")
            elif event.type == pygame.WINDOWFOCUSLOST:
                self._down.clear()
            elif event.type == pygame.JOYDEVICEADDED:
                joy = pygame.joystick.Joystick(event.device_index)
                self._joysticks[joy.get_instance_id()] = joy
            elif event.type == pygame.JOYDEVICEREMOVED:
                self._joysticks.pop(event.instance_id, None)
            elif event.type == pygame.JOYBUTTONDOWN:
                latched |= self._pad_bits.get(event.button, 0)
                if event.button in self._pad_controls:
                    controls.append(self._pad_controls[event.button])
            elif event.type == pygame.JOYHATMOTION and event.hat == 0:
                latched |= self._dpad_bits(event.value[0], -event.value[1])
            elif event.type == pygame.JOYAXISMOTION and event.axis in (0, 1):
                v, dz = event.value, self.keymap.deadzone
                step = -1 if v < -dz else 1 if v > dz else 0
                latched |= self._dpad_bits(step, 0) if event.axis == 0 else self._dpad_bits(0, step)
        held = 0
        for key in self._down:
            held |= self._key_bits.get(key, 0)
        held |= self._pad_state()
        self._latched, self._controls = 0, []
        return WindowInput(action=held | latched, held=held, latched=latched, controls=controls)

    def clear(self) -> None:
        """Forget taps and controls pressed so far (e.g. at the end of a countdown)."""
        self.poll()

    @property
    def gamepads(self) -> list[str]:
        return [j.get_name() for j in self._joysticks.values()]

    def close(self) -> None:
        self._pg.display.quit()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
