"""`contra-bc render`: recordings as a video people can watch, with what the actor pressed.

One output frame per step, at the recording's own speed (``hz`` steps per second, times
``speed``). Each recording is a tile: its label on top, the game frame scaled by an integer
factor (nearest neighbour), and below it a panel drawn with Pillow:

    +-----------------------------------------------+  actor strip (the actor's colour)
    |   [^]         SEL START     (B) (A) | agent (from corrector)
    | [<]   [>]                           | step 123  6.15 s
    |   [v]                               | DEATH            (for 1 s after the event)
    |                                     | the active instruction, wrapped, at most 3 lines
    +-----------------------------------------------+

Held buttons are filled with ``LIT``, released ones with ``UNLIT``; ``button_boxes`` gives each
button's box in output-frame coordinates, and the middle half of every box holds only that fill
(labels are drawn outside the boxes), so a test can read the buttons back from the pixels.
Text is drawn without anti-aliasing: a NES or Genesis frame plus the panel stays under 256
colours, so a GIF keeps every pixel exactly.

2-4 recordings play side by side aligned by step (step k of each in the same frame); one that
has ended shows its last frame dimmed, marked "ended". The file is written under a temp name
beside ``out`` and renamed into place at the end; an existing ``out`` is never replaced.

Formats, by the suffix of ``out``: .mp4 (H.264, yuv420p, faststart: plays in browsers),
.webm (VP9) and .gif (Pillow, a palette per frame). GIF players round delays to 10 ms and many
treat delays under 20 ms as 100 ms, so above 50 fps every n-th step is kept (said in the result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from contra_bc.errors import UserError
from contra_bc.formats import annotations as annotations_format
from contra_bc.formats import atomic
from contra_bc.formats.recording import Recording, find_recordings, read_recording

SUFFIXES = (".mp4", ".webm", ".gif")
MAX_RECORDINGS = 4
GIF_MAX_FPS = 50.0
GIF_MAX_BYTES = 2 * 1024**3  # Pillow holds every GIF frame (1 byte a pixel) until it writes the file

# Colours (RGB). LIT and UNLIT are part of the contract: tests read buttons back by them.
LIT = (255, 214, 0)
UNLIT = (58, 58, 70)
BACKGROUND = (16, 16, 20)
PANEL = (30, 30, 38)
TEXT = (235, 235, 235)
DIM_TEXT = (150, 150, 160)
LABEL = (255, 230, 120)
OUTLINE = (96, 96, 110)
ACTOR_COLOURS = {
    "human": (80, 170, 255),
    "agent": (255, 140, 40),
    "script": (170, 170, 180),
    "corrector": (230, 80, 230),
    "perturbation": (255, 110, 190),
}
EVENT_COLOURS = {"win": (90, 230, 110), "death": (255, 70, 70), "game_over": (255, 70, 70)}

# Geometry in output pixels (independent of the scale of the game frame).
HEADER_H = 20      # the label strip above each tile
PANEL_H = 112      # the overlay panel below each tile
GAP = 4            # between tiles
MIN_TILE_W = 352   # narrow games get a wider tile so the panel's text fits
CONTROLLER_W = 190
ACTOR_STRIP_H = 4
SHOW_EVENT_S = 1.0     # an event stays on screen this long after its step
SHOW_TAKEOVER_S = 1.0  # so does "(from <previous actor>)" after the actor changes
ENDED_DIM = 0.35       # brightness of an ended recording's last frame

DPAD = ("UP", "DOWN", "LEFT", "RIGHT")
NES_BUTTONS = {"B", "A", "SELECT", "START", *DPAD}

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


# ---------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Tile:
    """One recording's place in the output frame (all boxes in output-frame coordinates)."""

    x: int
    width: int
    header: Box | None
    game: Box
    panel: Box | None


@dataclass(frozen=True)
class Layout:
    tiles: tuple[Tile, ...]
    width: int
    height: int
    scale: int


def layout(screens: list[tuple[int, int]], scale: int = 2, overlay: bool = True) -> Layout:
    """Where each tile goes, for game screens of (height, width) side by side.

    Width and height are rounded up to even numbers (H.264 and VP9 in yuv420p need them)."""
    header_h = HEADER_H if overlay else 0
    panel_h = PANEL_H if overlay else 0
    game_h = max(h for h, _ in screens) * scale
    tiles, x = [], 0
    for h, w in screens:
        tile_w = max(w * scale, MIN_TILE_W) if overlay else w * scale
        gx = x + (tile_w - w * scale) // 2
        tiles.append(Tile(
            x=x, width=tile_w,
            header=(x, 0, x + tile_w, header_h) if overlay else None,
            game=(gx, header_h, gx + w * scale, header_h + h * scale),
            panel=(x, header_h + game_h, x + tile_w, header_h + game_h + panel_h) if overlay else None))
        x += tile_w + GAP
    width, height = x - GAP, header_h + game_h + panel_h
    return Layout(tiles=tuple(tiles), width=width + width % 2, height=height + height % 2, scale=scale)


def button_boxes(buttons: list, panel: Box) -> dict[str, Box]:
    """Each named button's box, in output-frame coordinates, for a tile's panel box.

    NES buttons are drawn as a controller (d-pad arms, SELECT, START, B, A). Other sets get a
    d-pad when they have all four directions, and every other button as a labelled box."""
    names = [b for b in buttons if b]
    px, py = panel[0], panel[1] + ACTOR_STRIP_H
    cx, cy = 34, 52  # d-pad centre, relative to (px, py)
    arm, half = 16, 8
    boxes: dict[str, Box] = {}
    rest = names
    if all(d in names for d in DPAD):
        boxes.update(UP=(cx - half, cy - half - arm, cx + half, cy - half),
                     DOWN=(cx - half, cy + half, cx + half, cy + half + arm),
                     LEFT=(cx - half - arm, cy - half, cx - half, cy + half),
                     RIGHT=(cx + half, cy - half, cx + half + arm, cy + half))
        rest = [n for n in names if n not in DPAD]
    if set(names) == NES_BUTTONS:
        boxes.update(SELECT=(70, cy + 2, 94, cy + 12), START=(102, cy + 2, 126, cy + 12),
                     B=(136, cy - 12, 158, cy + 10), A=(164, cy - 12, 186, cy + 10))
    elif rest:
        left = 66 if boxes else 8
        rows = 1 if len(rest) <= 3 else 2 if len(rest) <= 8 else 3
        cols = math.ceil(len(rest) / rows)
        box_w = max(6, min(32, (CONTROLLER_W - 2 - left - (cols - 1) * 6) // cols))
        pitch = 27
        top = cy - (rows * pitch - 15) // 2 + 5
        for i, name in enumerate(rest):
            r, c = divmod(i, cols)
            x0, y0 = left + c * (box_w + 6), top + r * pitch
            boxes[name] = (x0, y0, x0 + box_w, y0 + 12)
    return {n: (x0 + px, y0 + py, x1 + px, y1 + py) for n, (x0, y0, x1, y1) in boxes.items()}


# ---------------------------------------------------------------- what each step shows
@dataclass
class StepInfo:
    """What the panel shows for one recording at one step."""

    step: int
    time_s: float
    held: set
    actor: str
    previous_actor: str | None  # set for SHOW_TAKEOVER_S after the actor changed
    event: str | None           # set for SHOW_EVENT_S after an event
    instruction: str | None
    ended_after: int | None     # past the end: how many steps the recording has


class Track:
    """One recording as the renderer reads it: per-step panel contents and its frames."""

    def __init__(self, recording: Recording, label: str):
        self.recording = recording
        self.label = label
        self.n_steps = recording.n_steps
        self.hz = float(recording.meta["hz"])
        self.buttons = list(recording.buttons)
        self.actions = recording.actions
        self.actors = [str(a) for a in recording.column("actor")]
        events = [str(e) for e in recording.column("event")]
        self.instructions = self._instructions()
        # The latest event, and the step where the actor last changed, as of each step.
        self._event_at: list[tuple[int, str] | None] = []
        self._change_at: list[tuple[int, str] | None] = []
        last_event = last_change = None
        for k in range(self.n_steps):
            if events[k] and events[k] != "none":
                last_event = (k, events[k])
            if k and self.actors[k] != self.actors[k - 1]:
                last_change = (k, self.actors[k - 1])
            self._event_at.append(last_event)
            self._change_at.append(last_change)

    def _instructions(self) -> list[str | None] | None:
        path = annotations_format.annotations_path(self.recording.path)
        if not path.is_file():
            return None
        doc = annotations_format.read_annotations(path)
        return annotations_format.text_per_step(doc, self.n_steps)

    def info(self, step: int) -> StepInfo:
        """The panel's contents at ``step`` (past the end: the last step, marked ended)."""
        ended = step >= self.n_steps
        k = min(step, self.n_steps - 1)
        action = 0 if ended else int(self.actions[k])
        held = {b for i, b in enumerate(self.buttons) if b and action >> i & 1}
        event = change = None
        if not ended:
            if self._event_at[k] and (k - self._event_at[k][0]) < SHOW_EVENT_S * self.hz:
                event = self._event_at[k][1]
            if self._change_at[k] and (k - self._change_at[k][0]) < SHOW_TAKEOVER_S * self.hz:
                change = self._change_at[k][1]
        return StepInfo(step=step, time_s=step / self.hz, held=held, actor=self.actors[k] if k >= 0 else "none",
                        previous_actor=change, event=event,
                        instruction=None if ended or self.instructions is None else self.instructions[k],
                        ended_after=self.n_steps if ended else None)

    def frames(self, start: int) -> Iterator[np.ndarray | None]:
        """Frame of each step from ``start`` on, forever: past the end (or past the video of an
        incomplete recording), the last frame there is; None when there is none at all."""
        last = None
        first = min(start, max(self.n_steps - 1, 0))
        for frame in self.recording.frames(first, self.n_steps):
            if first < start:  # started past the end: only the last frame matters
                last = frame
                continue
            last = frame
            yield frame
        while True:
            yield last


# ---------------------------------------------------------------- drawing
_FONTS: dict[int, object] = {}


def _font(size: int):
    from PIL import ImageFont

    if size not in _FONTS:
        try:
            _FONTS[size] = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: one bitmap size
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def _fit(text: str, font, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, font, width: float, max_lines: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + " …", font, width)
    return [_fit(line, font, width) for line in lines]


def _draw_header(draw, tile: Tile, label: str) -> None:
    x0, y0, x1, _ = tile.header
    font = _font(13)
    draw.text((x0 + 6, y0 + 3), _fit(label, font, x1 - x0 - 12), fill=LABEL, font=font)


def _draw_panel(draw, tile: Tile, info: StepInfo, boxes: dict[str, Box]) -> None:
    x0, y0, x1, y1 = tile.panel
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=PANEL)
    ended = info.ended_after is not None
    colour = DIM_TEXT if ended else ACTOR_COLOURS.get(info.actor, TEXT)
    draw.rectangle((x0, y0, x1 - 1, y0 + ACTOR_STRIP_H - 1), fill=colour)
    nes = set(boxes) == NES_BUTTONS
    small = _font(10 if nes else 8)
    if all(d in boxes for d in DPAD):  # the d-pad's hub
        left, top = boxes["LEFT"][2], boxes["UP"][3]
        draw.rectangle((left, top, left + 15, top + 15), fill=UNLIT)
    for name, (bx0, by0, bx1, by1) in boxes.items():
        fill = LIT if name in info.held else UNLIT
        if nes and name in ("A", "B"):
            draw.ellipse((bx0, by0, bx1 - 1, by1 - 1), fill=fill)
        else:
            draw.rectangle((bx0, by0, bx1 - 1, by1 - 1), fill=fill)
        if name in DPAD:
            continue
        text = "SEL" if name == "SELECT" else name
        text = _fit(text, small, bx1 - bx0 + (8 if nes else 2))
        tw = small.getlength(text)
        ty = by1 + 2 if nes else by0 - 12  # NES: under the button, as printed on the pad
        draw.text(((bx0 + bx1 - tw) / 2, ty), text, fill=DIM_TEXT, font=small)

    font = _font(12)
    tx, width = x0 + CONTROLLER_W + 6, x1 - x0 - CONTROLLER_W - 12
    line_y = y0 + ACTOR_STRIP_H + 4
    if ended:
        draw.text((tx, line_y), "ended", fill=DIM_TEXT, font=font)
        draw.text((tx, line_y + 16), _fit(f"after {info.ended_after} steps", font, width), fill=DIM_TEXT, font=font)
        return
    who = info.actor if info.previous_actor is None else f"{info.actor} (from {info.previous_actor})"
    draw.text((tx, line_y), _fit(who, font, width), fill=colour, font=font)
    draw.text((tx, line_y + 16), _fit(f"step {info.step}  {info.time_s:.2f} s", font, width), fill=TEXT, font=font)
    if info.event:
        draw.text((tx, line_y + 32), _fit(info.event.replace("_", " ").upper(), font, width),
                  fill=EVENT_COLOURS.get(info.event, LABEL), font=font)
    if info.instruction:
        for i, line in enumerate(_wrap(info.instruction, font, width, 3)):
            draw.text((tx, line_y + 50 + 15 * i), line, fill=TEXT, font=font)


def _draw_ended(draw, tile: Tile) -> None:
    x0, y0, x1, y1 = tile.game
    font = _font(16)
    text = "ended"
    tw = font.getlength(text)
    draw.rectangle(((x0 + x1 - tw) / 2 - 6, (y0 + y1) / 2 - 12, (x0 + x1 + tw) / 2 + 6, (y0 + y1) / 2 + 12),
                   fill=BACKGROUND)
    draw.text(((x0 + x1 - tw) / 2, (y0 + y1) / 2 - 10), text, fill=TEXT, font=font)


def compose(tracks: list[Track], geometry: Layout, start: int, stop: int, every: int = 1,
            overlay: bool = True) -> Iterator[np.ndarray]:
    """The output frames of steps start, start+every, ... < stop (H×W×3 uint8)."""
    from PIL import Image, ImageDraw

    sources = [t.frames(start) for t in tracks]
    boxes = [button_boxes(t.buttons, tile.panel) if overlay else {} for t, tile in zip(tracks, geometry.tiles)]
    s = geometry.scale
    for step in range(start, stop):
        frames = [next(src) for src in sources]
        if (step - start) % every:
            continue
        canvas = np.empty((geometry.height, geometry.width, 3), np.uint8)
        canvas[:] = BACKGROUND
        for track, tile, frame in zip(tracks, geometry.tiles, frames):
            x0, y0, x1, y1 = tile.game
            if frame is None:
                canvas[y0:y1, x0:x1] = UNLIT
                continue
            big = frame.repeat(s, 0).repeat(s, 1) if s > 1 else frame
            if step >= track.n_steps:
                big = (big * ENDED_DIM).astype(np.uint8)
            canvas[y0:y0 + big.shape[0], x0:x0 + big.shape[1]] = big
        if overlay:
            image = Image.fromarray(canvas)
            draw = ImageDraw.Draw(image)
            draw.fontmode = "1"  # no anti-aliasing: few colours, so a GIF stays exact
            for track, tile, tile_boxes in zip(tracks, geometry.tiles, boxes):
                _draw_header(draw, tile, track.label)
                _draw_panel(draw, tile, track.info(step), tile_boxes)
                if step >= track.n_steps:
                    _draw_ended(draw, tile)
            canvas = np.asarray(image)
        yield canvas


# ---------------------------------------------------------------- writers
class _AvWriter:
    """H.264 in MP4 or VP9 in WebM through PyAV, yuv420p."""

    def __init__(self, path: Path, kind: str, fps: float, width: int, height: int):
        import av

        self._av = av
        rate = Fraction(fps).limit_denominator(1000)
        if kind == ".mp4":
            self._container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=rate)
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            self._container = av.open(str(path), "w", format="webm")
            stream = self._container.add_stream("libvpx-vp9", rate=rate)
            stream.options = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        self._stream = stream
        self._time_base = Fraction(1) / rate
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts, vf.time_base = self.frames, self._time_base
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # the file is deleted anyway; the first error is the one to report
            pass


class _GifWriter:
    """Pillow GIF: a palette per frame, delays in whole centiseconds that add up to the real time."""

    def __init__(self, path: Path, fps: float):
        self._file = open(path, "wb")  # now: an unwritable folder fails before any work is done
        self.fps = fps
        self._images = []
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        from PIL import Image

        # median cut keeps every colour exactly when a frame has no more than 256
        self._images.append(Image.fromarray(frame).quantize(colors=256, method=Image.Quantize.MEDIANCUT))
        self.frames += 1

    def close(self) -> None:
        ends = [round(100 * (i + 1) / self.fps) for i in range(self.frames)]  # centiseconds
        durations = [10 * (b - a) for a, b in zip([0] + ends[:-1], ends)]
        first, *rest = self._images
        with self._file:
            first.save(self._file, format="GIF", save_all=True, append_images=rest, duration=durations, loop=0)
        self._images = []

    def abort(self) -> None:
        self._images = []
        self._file.close()


# ---------------------------------------------------------------- positions
def parse_position(value: int | str | None, hz: float, what: str) -> int | None:
    """A step index from an int, "STEPS", "SECONDSs" (e.g. "12.5s") or "MM:SS" (seconds at ``hz``)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        if value is not None and value < 0:
            raise UserError(f"{what} must be a step (0 or more) or a time like 12.5s or 1:30, not {value}.")
        return value
    text = str(value).strip()
    try:
        if text.lower().endswith("s"):
            seconds = float(text[:-1])
        elif ":" in text:
            seconds = annotations_format.parse_clock(text)
        else:
            step = int(text)
            if step < 0:
                raise ValueError(text)
            return step
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(text)
    except ValueError:
        raise UserError(f"{what} {text!r} is neither a step (e.g. 120) nor a time (e.g. 6s, 6.5s or 1:30).") from None
    return int(seconds * hz + 1e-9)


# ---------------------------------------------------------------- render
def _labels(paths: list[Path], labels: list[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(paths):
            raise UserError(f"{len(labels)} label(s) for {len(paths)} recording(s): give one --label per recording, "
                            f"in the same order, or none (each is then labelled with its folder name).")
        return [str(label) for label in labels]
    names = [p.name for p in paths]
    # the same folder name twice (two sessions' episode-0000): add the parent to tell them apart
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def _check_out(out: Path) -> str:
    kind = out.suffix.lower()
    if kind not in SUFFIXES:
        raise UserError(f"{out}: render writes .mp4 (H.264, plays in browsers), .webm (VP9) or .gif (an "
                        f"animated GIF, best for a few seconds); the suffix {out.suffix or '(none)'!r} is none of "
                        f"these. Name the output e.g. {out.with_suffix('.mp4').name}.")
    if not atomic.new_output(out):
        raise UserError(f"{out} already exists; contra-bc never overwrites a file. Choose another --out or "
                        f"remove it yourself.")
    for place in out.parents:
        if place.exists():
            if not place.is_dir():
                raise UserError(f"--out {out} lies under {place}, which is a file.")
            break
    if kind == ".webm":
        import av

        if "libvpx-vp9" not in av.codecs_available:
            raise UserError("This PyAV build has no VP9 encoder (libvpx-vp9), so it cannot write .webm. Write .mp4 "
                            "instead (H.264 plays in every browser), or install a PyAV wheel built with libvpx.")
    return kind


def _finish(tmp: Path, out: Path) -> None:
    """Move the finished file into place without ever replacing one that appeared meanwhile."""
    try:
        atomic.commit_new(tmp, out)
    except FileExistsError:
        raise UserError(f"{out} appeared while rendering; contra-bc never overwrites a file. "
                        f"Choose another --out.") from None


def render(paths: list[Path], out: Path, speed: float = 1.0, scale: int | None = None,
           start: int | str | None = None, stop: int | str | None = None, labels: list[str] | None = None,
           overlay: bool = True, on_frame: Callable[[int, int], None] | None = None) -> dict:
    """Render 1-4 recordings (side by side, aligned by step) to ``out`` (.mp4, .webm or .gif).

    ``start``/``stop``: the half-open range of steps [start, stop), as steps or times (see
    ``parse_position``); by default every step of the longest recording. ``speed`` multiplies
    the recordings' real speed; ``scale`` (default 2) the game frames. ``on_frame(done, total)``
    is called after each frame written. Returns what was written (see the keys below)."""
    from contra_bc.signals import StopSignals

    out = Path(out)
    kind = _check_out(out)
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise UserError(f"--speed must be a number greater than 0 (1 is real time, 2 twice as fast), not {speed}.")
    scale = 2 if scale is None else scale
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 16:
        raise UserError(f"--scale must be a whole number from 1 to 16 (nearest-neighbour zoom), not {scale}.")
    if not paths:
        raise UserError("No recording given: pass 1 to 4 recording directories, e.g. "
                        "`contra-bc render runs/a runs/b --out ab.mp4`.")
    found = find_recordings([Path(p) for p in paths])
    if not 1 <= len(found) <= MAX_RECORDINGS:
        shown = ", ".join(str(p) for p in found[:6]) + (" ..." if len(found) > 6 else "")
        raise UserError(f"render shows 1 to {MAX_RECORDINGS} recordings side by side, but {len(found)} were found "
                        f"({shown or 'none'}). Pass the ones to compare one by one.")
    names = _labels(found, labels)
    tracks = [Track(read_recording(p), name) for p, name in zip(found, names)]
    empty = [str(t.recording.path) for t in tracks if t.n_steps == 0]
    if len(empty) == len(tracks):
        raise UserError(f"{', '.join(empty)} hold(s) no step yet, so there is nothing to render.")
    rates = sorted({t.hz for t in tracks})
    if len(rates) > 1:
        raise UserError(f"The recordings run at different rates ({', '.join(f'{r:g} Hz' for r in rates)}); side "
                        f"by side, step k of each shares one frame, so they need the same hz. Render them apart.")
    hz = rates[0]
    longest = max(t.n_steps for t in tracks)
    first = parse_position(start, hz, "--from")
    first = 0 if first is None else first
    last = parse_position(stop, hz, "--to")
    last = longest if last is None else min(last, longest)
    if first >= last:
        raise UserError(f"The range of steps [{first}, {last}) is empty: the recordings have {longest} steps "
                        f"(0 to {longest - 1}); --from must come before --to.")

    fps = hz * speed
    every = math.ceil(fps / GIF_MAX_FPS - 1e-9) if kind == ".gif" and fps > GIF_MAX_FPS else 1
    out_fps = fps / every
    total = math.ceil((last - first) / every)
    screens = [(int(t.recording.meta["screen"]["height"]), int(t.recording.meta["screen"]["width"]))
               for t in tracks]
    geometry = layout(screens, scale, overlay)
    if kind == ".gif" and total * geometry.width * geometry.height > GIF_MAX_BYTES:
        raise UserError(f"A GIF of {total} frames of {geometry.width}x{geometry.height} would need more than "
                        f"{GIF_MAX_BYTES // 1024**3} GiB of memory while it is written. Write .mp4 or .webm, "
                        f"or cut a shorter stretch with --from/--to, or use --scale 1.")

    import av

    tmp = atomic.temp_path(out)
    writer = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = _GifWriter(tmp, out_fps) if kind == ".gif" else _AvWriter(tmp, kind, out_fps, geometry.width,
                                                                              geometry.height)
        with StopSignals() as stop_signal:
            for frame in compose(tracks, geometry, first, last, every, overlay):
                stop_signal.check()
                writer.add(frame)
                if on_frame is not None:
                    on_frame(writer.frames, total)
            writer.close()
        _finish(tmp, out)
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, av.error.FFmpegError)):
            raise UserError(f"Cannot write {out} ({exc}). Check that its folder is writable and has free space; "
                            f"nothing was left behind.") from exc
        raise

    result = {
        "out": str(out),
        "format": kind[1:],
        "frames": writer.frames,
        "fps": round(out_fps, 6),
        "duration_s": round(writer.frames / out_fps, 6),
        "speed": speed,
        "scale": scale,
        "width": geometry.width,
        "height": geometry.height,
        "steps": [first, last],
        "every": every,
        "frames_dropped": (last - first) - writer.frames,
        "recordings": [{"path": str(t.recording.path), "label": t.label, "steps": t.n_steps,
                        "complete": t.recording.complete, "annotated": t.instructions is not None,
                        "ended_at": t.n_steps if t.n_steps < last else None} for t in tracks],
    }
    if every > 1:
        result["note"] = (f"GIF plays at most {GIF_MAX_FPS:g} fps: kept 1 step in {every} "
                          f"({out_fps:g} fps instead of {fps:g}); .mp4 or .webm keep every step.")
    return result
