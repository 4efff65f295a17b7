"""Emulator movies on disk: BizHawk/stable-retro ``.bk2`` and FCEUX ``.fm2``.

A movie is a frame-exact input log. Reading one gives a :class:`Movie`: the
player-1 buttons of every frame as a bitmask in the emulator's button order
(``buttons_for(platform)``, passed in by the caller, so this module needs no
emulator), where it starts (power-on, or a stable-retro state from the movie's
Core.bin) and which ROM it was made on. The writers go the other way, through
``atomic``.

Which game a movie belongs to (by ROM hash), how its frames map to recording
steps and the export of a recording live in ``contra_bc/movies.py``.
See docs/formats.md for the exact fields read and written.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from contra_bc.errors import UserError
from contra_bc.formats import atomic

MOVIE_SUFFIXES = (".bk2", ".fm2")

# BizHawk platform ids <-> stable-retro platform names.
BK2_PLATFORMS = {"NES": "Nes", "GEN": "Genesis", "SNES": "Snes", "A26": "Atari2600"}

# What we write: BizHawk's column names and mnemonics (stable-retro reads the same letters).
BK2_COLUMNS = {
    "Nes": [("Up", "U"), ("Down", "D"), ("Left", "L"), ("Right", "R"), ("Start", "S"),
            ("Select", "s"), ("B", "B"), ("A", "A")],
    "Genesis": [("Up", "U"), ("Down", "D"), ("Left", "L"), ("Right", "R"), ("A", "A"), ("B", "B"),
                ("C", "C"), ("Start", "S"), ("X", "X"), ("Y", "Y"), ("Z", "Z"), ("Mode", "M")],
}
BK2_CONSOLE_COLUMNS = ("Reset", "Power")
# FCEUX gamepad field, left to right.
FM2_PAD = (("RIGHT", "R"), ("LEFT", "L"), ("DOWN", "D"), ("UP", "U"), ("START", "T"),
           ("SELECT", "S"), ("B", "B"), ("A", "A"))
FM2_SOFT_RESET, FM2_POWER = 1, 2


@dataclass
class Movie:
    """A parsed movie: player-1 input per frame and where it starts."""

    path: Path
    kind: str  # "bk2" | "fm2"
    platform: str  # stable-retro platform name
    buttons: list  # stable-retro button order; frames are bitmasks over it
    frames: np.ndarray  # int64, one bitmask per movie frame (frame 0 = reset frame)
    commands: np.ndarray  # int64 per frame: bit 0 soft reset, bit 1 power
    start_state: bytes | None  # None: power-on
    game_name: str | None = None
    rom_sha1: str | None = None
    rom_md5: str | None = None  # hex
    rom_filename: str | None = None
    header: dict = field(default_factory=dict)

    @property
    def start(self) -> str:
        return "power-on" if self.start_state is None else "state"


def is_movie(spec: str) -> bool:
    return Path(str(spec)).suffix.lower() in MOVIE_SUFFIXES


def read_movie(path: Path, buttons_for: Callable[[str], list]) -> Movie:
    """Parse a ``.bk2`` or ``.fm2``; a UserError naming the problem otherwise.

    ``buttons_for(platform)`` is the emulator's button order for a platform (a UserError if unknown)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Movie {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".bk2":
        return read_bk2(path, buttons_for)
    if suffix == ".fm2":
        return read_fm2(path, buttons_for)
    raise UserError(f"{path}: movies are .bk2 (BizHawk, stable-retro) or .fm2 (FCEUX).")


def _header_lines(text: str) -> dict:
    header: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        if key in ("comment", "subtitle"):
            header.setdefault(key, []).append(value)
        else:
            header[key] = value.strip()
    return header


# ---------------------------------------------------------------- .bk2
def read_bk2(path: Path, buttons_for: Callable[[str], list]) -> Movie:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for needed in ("Header.txt", "Input Log.txt"):
                if needed not in names:
                    raise UserError(f"{path} has no {needed!r}; a .bk2 is a zip holding Header.txt and "
                                    f"'Input Log.txt' (and Core.bin for a savestate start). Is it a BizHawk "
                                    f"or stable-retro movie?")
            header_text = zf.read("Header.txt").decode("utf-8", "replace")
            log_text = zf.read("Input Log.txt").decode("utf-8", "replace")
            core = zf.read("Core.bin") if "Core.bin" in names else None
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise UserError(f"{path} is not a readable zip ({exc}); a .bk2 movie is a zip archive. The file "
                        f"is truncated or damaged: download or export it again.") from None
    header = _header_lines(header_text)
    for key in ("Platform", "GameName"):
        if key not in header:
            raise UserError(f"{path}: Header.txt has no {key} line; it is not a BizHawk/stable-retro movie "
                            f"header (lines of `key value`, e.g. `Platform NES`).")
    platform = BK2_PLATFORMS.get(header["Platform"], header["Platform"])
    try:
        buttons = buttons_for(platform)
    except UserError:
        raise UserError(f"{path}: Platform {header['Platform']!r} is not one stable-retro emulates "
                        f"(known: {', '.join(BK2_PLATFORMS)}).") from None
    start_state = _bk2_start(path, header, core)
    frames, commands = _parse_bk2_log(path, log_text, buttons)
    sha1 = header.get("SHA1", "").strip().lower()
    return Movie(path=path, kind="bk2", platform=platform, buttons=buttons, frames=frames, commands=commands,
                 start_state=start_state, game_name=header["GameName"],
                 rom_sha1=sha1 if sha1 not in ("", "?") else None, header=header)


def _bk2_start(path: Path, header: dict, core: bytes | None) -> bytes | None:
    """Core.bin is a stable-retro state in stable-retro's (and our) movies; BizHawk states are not."""
    if header.get("ContraBcStartState") == "power-on":
        return None  # our export: Core.bin only holds power-on, for stable-retro's player
    ours = header.get("MovieVersion") == "Retro" or header.get("ContraBcStartState") == "stable-retro"
    if header.get("StartsFromSaveRam", "").lower() == "true":
        raise UserError(f"{path} starts from battery save RAM, which stable-retro cannot load; only "
                        f"power-on movies and stable-retro movies (with a stable-retro Core.bin) can be imported.")
    if core is not None and ours:
        if not core:
            raise UserError(f"{path}: Core.bin is empty; the movie's start state is missing.")
        return core
    if core is not None or header.get("StartsFromSavestate", "").lower() == "true":
        raise UserError(f"{path} starts from a BizHawk savestate (Core.bin written by BizHawk's "
                        f"{header.get('Core', '?')} core), which our emulator (stable-retro) cannot load. "
                        f"Only power-on BizHawk movies and stable-retro movies can be imported; re-record it "
                        f"from power-on, or record it with stable-retro.")
    return None


def _bk2_columns(path: Path, key_line: str, buttons: list):
    """Groups of (player, button index | console name) per '|' field of an input line."""
    index = {b.upper(): i for i, b in enumerate(buttons) if b}
    if key_line.startswith("LogKey:"):
        groups = [[c for c in g.split("|") if c] for g in key_line[len("LogKey:"):].split("#")]
        groups = [g for g in groups if g]
        console_first = False
    else:  # stable-retro writes the bare column names, one field per player, after a command field
        names = [c for c in key_line.split("|") if c]
        groups, current = [], None
        for name in names:
            player = name.split(" ", 1)[0]
            if player != current:
                groups.append([])
                current = player
            groups[-1].append(name)
        console_first = True
    layout = []
    for g in groups:
        cols = []
        for name in g:
            if name in BK2_CONSOLE_COLUMNS:
                cols.append(("console", name))
                continue
            player, _, button = name.partition(" ")
            if not (player.startswith("P") and player[1:].isdigit() and button):
                raise UserError(f"{path}: LogKey column {name!r} is neither a console column "
                                f"({'/'.join(BK2_CONSOLE_COLUMNS)}) nor a player button like 'P1 Up'.")
            key = button.upper()
            if key not in index:
                raise UserError(f"{path}: LogKey column {name!r} names a button this platform's pad does not "
                                f"have (buttons: {', '.join(b for b in buttons if b)}). Movies with other "
                                f"controllers (zapper, analog, multitap) cannot be imported.")
            cols.append((int(player[1:]), index[key]))
        layout.append(cols)
    return console_first, layout


def _parse_bk2_log(path: Path, text: str, buttons: list):
    lines = text.splitlines()
    if not lines or lines[0].strip() != "[Input]":
        raise UserError(f"{path}: 'Input Log.txt' must start with [Input].")
    key_lines = [ln for ln in lines[1:] if ln.startswith("LogKey:")]
    if key_lines:
        key_line = key_lines[0]
    elif len(lines) > 1 and lines[1].startswith("P"):
        key_line = lines[1]
    else:
        raise UserError(f"{path}: 'Input Log.txt' has no LogKey line naming the button columns "
                        f"(e.g. `LogKey:#Reset|Power|#P1 Up|P1 Down|...`), so its columns cannot be read.")
    console_first, layout = _bk2_columns(path, key_line.rstrip("\r"), buttons)
    frames, commands = [], []
    closed = False
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if line.strip() == "[/Input]":
            closed = True
            break
        if not line.startswith("|"):
            continue
        fields = line.split("|")[1:-1]
        if not line.endswith("|"):
            raise UserError(f"{path}: Input Log line {number} ({line[:60]!r}) does not end with '|'.")
        command_field = None
        if console_first:
            if not fields:
                raise UserError(f"{path}: Input Log line {number} has no fields.")
            command_field, fields = fields[0], fields[1:]
        if len(fields) != len(layout):
            raise UserError(f"{path}: Input Log line {number} has {len(fields)} button fields but the LogKey "
                            f"names {len(layout)}; the line is damaged or the LogKey does not fit.")
        action = command = 0
        if command_field and any(ch not in ". " for ch in command_field):
            command |= FM2_SOFT_RESET
        for field_text, cols in zip(fields, layout):
            if len(field_text) != len(cols):
                raise UserError(f"{path}: Input Log line {number} field {field_text!r} is {len(field_text)} "
                                f"characters wide but the LogKey names {len(cols)} columns for it.")
            for ch, (who, what) in zip(field_text, cols):
                if ch in ". ":
                    continue
                if who == "console":
                    command |= FM2_POWER if what == "Power" else FM2_SOFT_RESET
                elif who == 1:
                    action |= 1 << what
                else:
                    raise UserError(f"{path}: player {who} presses buttons on line {number}; recordings hold "
                                    f"player 1 only, so two-player movies cannot be imported.")
        frames.append(action)
        commands.append(command)
    if not closed:
        raise UserError(f"{path}: 'Input Log.txt' ends without [/Input]; the movie is truncated.")
    if not frames:
        raise UserError(f"{path} holds no input frames.")
    return np.array(frames, np.int64), np.array(commands, np.int64)


def write_bk2(path: Path, *, game_name: str, platform: str, rom_sha1: str, buttons: list,
              frames: np.ndarray, start_state: bytes, power_on: bool, comments: list[str] = ()) -> None:
    """A .bk2 that stable-retro's ``Movie`` and BizHawk both read (see docs/formats.md).

    Core.bin is always written, because stable-retro's player refuses a movie without one;
    a power-on movie gets the power-on state there and no ``StartsFromSavestate``, so
    BizHawk boots the ROM instead.
    """
    if platform not in BK2_COLUMNS:
        raise UserError(f"Exporting {platform} movies is not supported (only {', '.join(BK2_COLUMNS)}).")
    columns = BK2_COLUMNS[platform]
    index = {b.upper(): i for i, b in enumerate(buttons) if b}
    bits = [index[name.upper()] for name, _ in columns]
    bk2_platform = {v: k for k, v in BK2_PLATFORMS.items()}[platform]
    header = [
        "MovieVersion BizHawk v2.0.0",
        "Author contra-bc",
        "emuVersion contra-bc (stable-retro)",
        f"Platform {bk2_platform}",
        f"GameName {game_name}",
        f"SHA1 {rom_sha1.upper()}",
        f"Core {'NesHawk' if platform == 'Nes' else 'Genplus-gx'}",
        "rerecordCount 0",
    ]
    if power_on:
        header += ["ContraBcStartState power-on"]
    else:
        header += ["StartsFromSavestate True", "ContraBcStartState stable-retro"]
    player = "|".join(f"P1 {name}" for name, _ in columns) + "|"
    out = io.StringIO()
    out.write("[Input]\n")
    out.write(player + "\n")  # stable-retro reads the player count from this line
    out.write("LogKey:#" + "|".join(BK2_CONSOLE_COLUMNS) + "|#" + player + "\n")  # BizHawk reads this one
    for action in frames:
        a = int(action)
        out.write("|..|" + "".join(ch if (a >> b) & 1 else "." for (_, ch), b in zip(columns, bits)) + "|\n")
    out.write("[/Input]\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Header.txt", "\n".join(header) + "\n")
        zf.writestr("Input Log.txt", out.getvalue())
        zf.writestr("Core.bin", start_state)
        if comments:
            zf.writestr("Comments.txt", "".join(f"comment {c}\n" for c in comments))
    atomic.write_bytes(Path(path), buffer.getvalue())


# ---------------------------------------------------------------- .fm2
def read_fm2(path: Path, buttons_for: Callable[[str], list]) -> Movie:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    first_input = text.find("\n|")
    head = text if first_input < 0 else text[:first_input]
    header = _header_lines(head)
    if header.get("version") != "3":
        raise UserError(f"{path}: an .fm2 starts with the line `version 3` (FCEUX's text movie format); "
                        f"this one has version {header.get('version')!r}. Is it an .fm2 movie?")
    if header.get("binary", "0") not in ("0", "false"):
        raise UserError(f"{path} stores its input in FCEUX's binary form; save it as text in FCEUX "
                        f"(File > Movie > Save As, uncheck binary) and import that.")
    if header.get("savestate"):
        raise UserError(f"{path} starts from an FCEUX savestate (header key `savestate`); our emulator "
                        f"cannot reproduce FCEUX savestates. Only movies that start from power-on can be imported.")
    for key, ok in (("FDS", "0"), ("fourscore", "0"), ("palFlag", "0"), ("port2", "0")):
        if header.get(key, "0") != ok:
            raise UserError(f"{path}: header `{key} {header[key]}` is not supported (only NTSC, no FDS, no "
                            f"four score, no expansion port device: `{key} {ok}`).")
    ports = [header.get("port0", "1"), header.get("port1", "0")]
    for i, value in enumerate(ports):
        if value not in ("0", "1"):
            raise UserError(f"{path}: header `port{i} {value}` is not a gamepad (1) or nothing (0); "
                            f"zapper movies cannot be imported.")
    checksum = header.get("romChecksum", "")
    if not checksum.startswith("base64:"):
        raise UserError(f"{path}: header `romChecksum` must be `base64:` + the ROM's MD5; got {checksum!r}.")
    try:
        md5 = base64.b64decode(checksum[len("base64:"):], validate=True).hex()
    except ValueError:
        raise UserError(f"{path}: romChecksum {checksum!r} is not valid base64.") from None
    if len(md5) != 32:
        raise UserError(f"{path}: romChecksum {checksum!r} is not a 16-byte MD5.")
    buttons = buttons_for("Nes")
    index = {b: i for i, b in enumerate(buttons) if b}
    pad_bits = [index[name] for name, _ in FM2_PAD]
    frames, commands = [], []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.rstrip("\r")
        if not line.startswith("|"):
            if frames and line.strip():
                raise UserError(f"{path}: line {number} ({line[:60]!r}) follows the input but is not an input line.")
            continue
        fields = line.split("|")
        if len(fields) != 6 or fields[-1] != "":
            raise UserError(f"{path}: input line {number} ({line[:60]!r}) should be "
                            f"`|commands|port0|port1|port2|` (5 bars).")
        command_text, *pads, _ = fields[1:]
        try:
            command = int(command_text)
        except ValueError:
            raise UserError(f"{path}: input line {number}: commands field {command_text!r} is not a number.") from None
        if not 0 <= command < 1 << 31:  # FCEUX's command bits (reset, power, ...) fit an int
            raise UserError(f"{path}: input line {number}: commands field {command_text[:30]!r} is outside 0..2^31-1.")
        action = 0
        for port, (kind, pad) in enumerate(zip(ports + ["0"], pads)):
            width = 8 if kind == "1" else 0
            if len(pad) != width:
                raise UserError(f"{path}: input line {number}: port{port} field {pad!r} is {len(pad)} "
                                f"characters wide; the header says it should be {width} (RLDUTSBA for a gamepad).")
            pressed = [ch not in ". " for ch in pad]
            if port == 0:
                for on, bit in zip(pressed, pad_bits):
                    action |= int(on) << bit
            elif any(pressed):
                raise UserError(f"{path}: player 2 presses buttons on line {number}; recordings hold player 1 "
                                f"only, so two-player movies cannot be imported.")
        frames.append(action)
        commands.append(command)
    if not frames:
        raise UserError(f"{path} holds no input lines (`|commands|port0|port1|port2|`).")
    return Movie(path=path, kind="fm2", platform="Nes", buttons=buttons, frames=np.array(frames, np.int64),
                 commands=np.array(commands, np.int64), start_state=None, rom_md5=md5,
                 rom_filename=header.get("romFilename"), header=header)


def write_fm2(path: Path, *, rom_filename: str, rom_md5: str, buttons: list, frames: np.ndarray,
              comments: list[str] = ()) -> None:
    """A text .fm2 for FCEUX, starting from power-on (see docs/formats.md)."""
    index = {b: i for i, b in enumerate(buttons) if b}
    pad = [(ch, index[name]) for name, ch in FM2_PAD]
    lines = [
        "version 3",
        "emuVersion 20604",
        "rerecordCount 0",
        "palFlag 0",
        f"romFilename {rom_filename}",
        "romChecksum base64:" + base64.b64encode(bytes.fromhex(rom_md5)).decode(),
        f"guid {str(uuid.uuid4()).upper()}",
        "fourscore 0",
        "microphone 0",
        "port0 1",
        "port1 0",
        "port2 0",
        "FDS 0",
        "NewPPU 0",
    ] + [f"comment {c}" for c in comments]
    for action in frames:
        a = int(action)
        lines.append("|0|" + "".join(ch if (a >> bit) & 1 else "." for ch, bit in pad) + "|||")
    atomic.write_text(Path(path), "\n".join(lines) + "\n")


# ---------------------------------------------------------------- .fm2's ROM checksum
def rom_md5(rom: Path) -> str:
    """MD5 as FCEUX computes it for an iNES file: over PRG+CHR (no 16-byte header, no trainer)."""
    data = Path(rom).read_bytes()
    if data[:4] == b"NES\x1a":
        skip = 16 + (512 if data[6] & 4 else 0)
        data = data[skip:]
    return hashlib.md5(data).hexdigest()
