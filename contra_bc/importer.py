"""`contra-bc import`: datasets of frames and actions made elsewhere, as recordings.

Researchers more often have folders of frames with the buttons of each frame than emulator
recordings. Two sources:

- ``smb``: the public Super Mario Bros. gameplay dataset (Pinto 2021, "smbdataset"): one folder per
  episode, ``<user>_<session>_e<episode>_<world>-<level>_<win|fail>``, one 256x240 indexed PNG per
  frame, ``<user>_<session>_e<episode>_<world>-<level>_f<frame>_a<action>_<date>_<time>.<win|fail>.png``,
  whose chunks after IEND hold the RAM (``tEXtRAM``, 2,048 bytes), player 1's buttons (``tEXtBP1``) and
  the outcome (``tEXtOUTCOME``: 1 fail, 2 win). The action byte's bits, MSB to LSB, are A, up, left, B,
  start, right, down, select.
- ``frames``: any folder of frame images (sorted by name) with a CSV of one action per frame
  (``action`` bitmask or ``buttons`` like RIGHT+A), for a game `contra-bc games` knows.

Alignment. A recording's step k pairs the screen the player saw with the buttons then chosen. The
smbdataset collector saves, after each emulated frame, that frame's picture and the buttons that
were applied to it; so step k holds the picture of frame k+1 and the buttons of frame k+2 (the last
picture has no buttons after it, the first buttons no picture before them). For ``frames`` the CSV's
row i is taken as chosen while seeing frame i. Either way each step's ``frame_hash`` is the hash of
the next picture, so build-dataset's frame check holds.

The dataset's known quirk: its collector appended the chunks in text mode on Windows, so each 0x0A
byte of the RAM became 0x0D 0x0A and the RAM chunk is longer than its length field says. The reader
takes the chunk both ways (as written, and with every 0x0D 0x0A folded back to 0x0A) and keeps the
one after which the next chunk (or the file's end) follows; ``ram_repaired`` in meta.json counts the
frames that needed the fold.

Imported recordings have no emulator start state: `replay-verify` reports them "unverifiable"
(exit 3), build-dataset and train take them as any other recording, and play needs the ROM as usual.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contra_bc.emulator import digest64, get_game, variables_from_ram
from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.actions import read_action_file
from contra_bc.formats.recording import RecordingWriter, now_ns

SMB_GAME = "SuperMarioBros-Nes-v0"
SMB_BITS = ("A", "UP", "LEFT", "B", "START", "RIGHT", "DOWN", "SELECT")  # the action byte, MSB to LSB
SMB_RAM = 2048
SMB_HZ = 60.0
FOLDER = re.compile(r"^(?P<user>.+)_(?P<session>[A-Za-z0-9]+)_e(?P<episode>\d+)_(?P<world>\d+)-(?P<level>\d+)"
                    r"(?:_(?P<outcome>win|fail))?$")
FRAME = re.compile(r"^(?P<user>.+)_(?P<session>[A-Za-z0-9]+)_e(?P<episode>\d+)_(?P<world>\d+)-(?P<level>\d+)"
                   r"_f(?P<frame>\d+)_a(?P<action>\d+)_(?P<when>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)"
                   r"(?:\.(?P<outcome>win|fail))?\.png$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def smb_action(byte: int, buttons: list) -> int:
    """The smbdataset action byte -> a bitmask over the platform's ``buttons``."""
    index = {b: i for i, b in enumerate(buttons) if b}
    return sum(1 << index[name] for bit, name in enumerate(reversed(SMB_BITS)) if (byte >> bit) & 1)


# ---------------------------------------------------------------- the PNG's extra chunks
def _fold(data: bytes, start: int, count: int) -> tuple[bytes, int] | None:
    """``count`` bytes from ``start`` with each 0x0D 0x0A read as 0x0A; (bytes, end) or None if too short."""
    end = start + count
    while True:  # widen the slice by the pairs inside it until it folds to exactly count bytes
        if end > len(data):
            return None
        pairs = data.count(b"\r\n", start, end) + (data[end - 1:end + 1] == b"\r\n")
        if start + count + pairs == end:
            break
        end = start + count + pairs
    folded = data[start:end].replace(b"\r\n", b"\n")
    return (folded, end) if len(folded) == count else None


def _chunk_follows(data: bytes, at: int) -> bool:
    """Does a CRC then another chunk (or the end of the file) start at ``at``?"""
    if at + 4 == len(data):
        return True
    return at + 12 <= len(data) and data[at + 8:at + 12] == b"tEXt"


def extra_chunks(path: Path, data: bytes) -> tuple[dict[str, bytes], bool]:
    """The text chunks after IEND (key -> value) and whether a value needed the CRLF fold; UserError if
    the file is not a PNG or has none."""
    if not data.startswith(PNG_SIGNATURE):
        raise UserError(f"{path} is not a PNG file.")
    end = data.find(b"IEND")
    if end < 0:
        raise UserError(f"{path} is cut off: its PNG has no IEND chunk.")
    at = end + 8  # past the type and its CRC
    chunks, folded = {}, False
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        if data[at + 4:at + 8] != b"tEXt":
            break
        key_end = data.find(b"\x00", at + 8)
        if key_end < 0:
            break
        key = data[at + 8:key_end].decode("latin-1")
        start = key_end + 1
        size = length - len(key) - 1
        exact = data[start:start + size] if start + size <= len(data) else None
        if exact is not None and len(exact) == size and _chunk_follows(data, start + size):
            value, after = exact, start + size
        else:  # the collector's text-mode write turned 0x0A into 0x0D 0x0A
            result = _fold(data, start, size)
            if result is None or not _chunk_follows(data, result[1]):
                raise UserError(f"{path}: the chunk tEXt{key} after IEND is damaged (neither its length nor the "
                                f"dataset's known 0x0D 0x0A repair fits what follows it).")
            value, after = result
            folded = True
        chunks[key] = value
        at = after + 4  # the collector's CRC (four zero bytes)
    return chunks, folded


# ---------------------------------------------------------------- smbdataset
@dataclass
class SmbFrame:
    path: Path
    frame: int
    action: int          # the dataset's byte
    ram: bytes
    outcome: str | None  # win / fail, from the name


@dataclass
class SmbEpisode:
    folder: Path
    user: str
    session: str
    episode: int
    world: int
    level: int
    outcome: str
    frames: list
    ram_repaired: int


def read_smb_episode(folder: Path) -> SmbEpisode:
    """One episode folder, every frame's name and chunks checked (no picture decoded yet)."""
    folder = Path(folder)
    named = FOLDER.match(folder.name)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise UserError(f"{folder} holds no PNG frames; an smbdataset episode is a folder of "
                        f"<user>_<session>_e<episode>_<world>-<level>_f<frame>_a<action>_<date>.<outcome>.png files.")
    frames, keys, repaired = [], set(), 0
    for path in files:
        m = FRAME.match(path.name)
        if not m:
            raise UserError(f"{path.name} (in {folder}) does not parse as an smbdataset frame name "
                            f"<user>_<session>_e<episode>_<world>-<level>_f<frame>_a<action>_<YYYY-MM-DD_HH-MM-SS>"
                            f".<win|fail>.png.")
        action = int(m["action"])
        if not 0 <= action <= 255:
            raise UserError(f"{path.name}: action {action} is outside a byte (0-255: A, up, left, B, start, right, "
                            f"down, select).")
        keys.add((m["user"], m["session"], int(m["episode"]), int(m["world"]), int(m["level"])))
        chunks, folded = extra_chunks(path, path.read_bytes())
        repaired += folded
        missing = [k for k in ("RAM", "BP1") if k not in chunks]
        if missing:
            raise UserError(f"{path} has no {' or '.join('tEXt' + k for k in missing)} chunk after its image: it is "
                            f"not a frame of the smbdataset as its collector writes them (RAM and buttons follow IEND).")
        if len(chunks["RAM"]) != SMB_RAM:
            raise UserError(f"{path}: its RAM chunk holds {len(chunks['RAM'])} bytes, not {SMB_RAM}.")
        if chunks["BP1"] and chunks["BP1"][0] != action:
            raise UserError(f"{path}: the buttons in its name ({action}) and in its BP1 chunk ({chunks['BP1'][0]}) "
                            f"differ; the file was renamed or damaged.")
        outcome = m["outcome"]
        if "OUTCOME" in chunks and chunks["OUTCOME"]:
            outcome = {1: "fail", 2: "win"}.get(chunks["OUTCOME"][0], outcome)
        frames.append(SmbFrame(path, int(m["frame"]), action, chunks["RAM"], outcome))
    if len(keys) > 1:
        listed = ", ".join(f"{u}_{s}_e{e}_{w}-{lv}" for u, s, e, w, lv in sorted(keys)[:3])
        raise UserError(f"{folder} mixes frames of {len(keys)} episodes ({listed}); one folder holds one episode, "
                        f"as the dataset ships them. Move each episode's frames into its own folder.")
    frames.sort(key=lambda f: f.frame)
    numbers = [f.frame for f in frames]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        gap = next(a for a, b in zip(numbers, numbers[1:]) if b != a + 1)
        raise UserError(f"{folder}: frames are missing after frame {gap} (the next is "
                        f"{numbers[numbers.index(gap) + 1]}); an episode needs every frame, or its steps would not "
                        f"line up with its pictures.")
    if len(frames) < 2:
        raise UserError(f"{folder} holds one frame; an episode needs at least two (a picture and the buttons after it).")
    user, session, episode, world, level = next(iter(keys))
    outcomes = {f.outcome for f in frames if f.outcome} | ({named["outcome"]} if named and named["outcome"] else set())
    if len(outcomes) > 1:
        raise UserError(f"{folder}: its frames disagree on the outcome ({', '.join(sorted(outcomes))}).")
    return SmbEpisode(folder, user, session, episode, world, level, (outcomes or {"none"}).pop(), frames, repaired)


def smb_episode_folders(paths: list[Path]) -> list[Path]:
    """Each argument: an episode folder, or a folder of them."""
    found = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise UserError(f"{p} is not a folder; give smbdataset episode folders, or the folder that holds them.")
        if any(c.suffix.lower() == ".png" for c in p.iterdir()):
            found.append(p)
        else:
            subs = sorted(d for d in p.iterdir() if d.is_dir())
            if not subs:
                raise UserError(f"{p} holds neither PNG frames nor episode folders.")
            found += subs
    return found


def import_smb(paths: list[Path], out: Path, on_episode=None) -> list[dict]:
    """Every episode under ``paths`` as a recording in ``out/<episode folder>``; their metas.

    All episodes are read and checked before anything is written; a failure while writing removes the
    recording it was writing (and ``out`` if this made it), so nothing is left half-written."""
    from PIL import Image

    folders = smb_episode_folders(paths)
    episodes = [read_smb_episode(f) for f in folders]
    names = [e.folder.name for e in episodes]
    if len(set(names)) != len(names):
        raise UserError(f"two episode folders share a name ({sorted({n for n in names if names.count(n) > 1})[0]}); "
                        f"each becomes OUT/<name>.")
    out = Path(out)
    if not atomic.check_new_dir(out):
        raise UserError(f"{out} exists and is not empty; contra-bc never overwrites recordings. Choose a new --out.")
    game = get_game(SMB_GAME)
    buttons = list(game.buttons)
    made_out = not out.exists()
    if not atomic.claim_dir(out):
        raise UserError(f"{out} appeared with files in it; choose a new --out.")
    metas = []
    try:
        for ep in episodes:
            pictures = (np.asarray(Image.open(f.path).convert("RGB")) for f in ep.frames)
            ram = [f.ram for f in ep.frames]
            actions = [smb_action(f.action, buttons) for f in ep.frames]
            # step k: the picture of frame k+1 (index k) and the buttons of frame k+2 (index k+1)
            detail = (f"smbdataset:{ep.folder.name} (user {ep.user}, session {ep.session}, episode {ep.episode}, "
                      f"world {ep.world}-{ep.level})")
            extra = {"start": "unknown", "episode_until": "life",
                     "import": {"dataset": "smbdataset", "folder": ep.folder.name, "user": ep.user,
                                "session": ep.session, "episode": ep.episode, "world": ep.world, "level": ep.level,
                                "outcome": ep.outcome, "frames": len(ep.frames), "ram_repaired": ep.ram_repaired,
                                "alignment": "step k: picture of frame k+1, buttons of frame k+2"}}
            meta = write_imported(out / ep.folder.name, game, pictures, actions[1:], ram[1:],
                                  {"win": "win", "fail": "death"}.get(ep.outcome, "none"), SMB_HZ, detail, extra)
            metas.append(meta)
            if on_episode:
                on_episode(meta)
    except BaseException:
        if made_out:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    return metas


# ---------------------------------------------------------------- a folder of frames + a CSV
def natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def import_frames(folder: Path, actions_file: Path, out: Path, *, game_name: str, hz: float,
                  outcome: str = "none") -> dict:
    """A folder of frame images (in name order) and a CSV of one action per frame as one recording."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of frame images.")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg", ".jpeg")),
                   key=natural_key)
    if len(files) < 2:
        raise UserError(f"{folder} holds {len(files)} frame image(s); a recording needs at least two.")
    if any(p.suffix.lower() in (".jpg", ".jpeg") for p in files):
        raise UserError(f"{folder} holds JPEG frames: they are lossy, so what a policy trains on would not be the "
                        f"screen. Convert the source to PNG first.")
    game = get_game(game_name)
    actions = read_action_file(Path(actions_file), list(game.buttons))
    if len(actions) < len(files) - 1:
        raise UserError(f"{actions_file} has {len(actions)} action rows for {len(files)} frames; it needs one per "
                        f"frame (the last frame's may be left out).")
    if outcome not in ("win", "death", "game_over", "none"):
        raise UserError(f"--outcome must be win, death, game_over or none, not {outcome!r}.")
    out = Path(out)
    if not atomic.check_new_dir(out):
        raise UserError(f"{out} exists and is not empty; contra-bc never overwrites recordings. Choose a new --out.")
    with Image.open(files[0]) as first:
        size = first.size
    for p in files[1:]:
        with Image.open(p) as im:
            if im.size != size:
                raise UserError(f"{p.name} is {im.size[0]}x{im.size[1]} but {files[0].name} is {size[0]}x{size[1]}; "
                                f"every frame of a recording has the screen's size.")
    pictures = (np.asarray(Image.open(p).convert("RGB")) for p in files)
    detail = f"frames:{folder.name} + {Path(actions_file).name}"
    extra = {"start": "unknown", "episode_until": "never",
             "import": {"dataset": "frames", "folder": str(folder), "actions": str(actions_file),
                        "frames": len(files), "alignment": "step k: frame k and action row k"}}
    return write_imported(out, game, pictures, list(actions[:len(files) - 1]), None, outcome, hz, detail, extra)


# ---------------------------------------------------------------- the recording
def write_imported(path: Path, game, pictures, actions: list[int], ram: list[bytes] | None, outcome: str,
                   hz: float, detail: str, extra: dict) -> dict:
    """Steps k = 0..len(actions)-1 from ``pictures`` (one more than the actions: picture k+1 is the screen
    after step k) and, where given, the RAM after each step; the last step carries the outcome's event."""
    pictures = iter(pictures)
    try:
        screen = next(pictures)
    except StopIteration:
        raise UserError(f"{detail}: no picture to import.") from None
    zeros = {v: 0 for v in game.variables}
    writer = RecordingWriter(path, game=game.name, platform=game.platform, state_name=None, start_state=None,
                             rom_sha1=game.rom_sha1 or "unknown", buttons=list(game.buttons),
                             variables=list(game.variables), frames_per_step=1, hz=hz, reset_frames=0,
                             source="import", source_detail=detail, screen_shape=screen.shape,
                             first_frame_hash=digest64(screen), stable_retro_version="none (imported)", extra=extra)
    counts = {"win": 0, "death": 0, "game_over": 0}
    variables = zeros
    try:
        for k, action in enumerate(actions):
            after = next(pictures)
            last = k == len(actions) - 1
            event = outcome if last and outcome != "none" else "none"
            if event != "none":
                counts[event] += 1
            variables = variables_from_ram(game, ram[k]) if ram is not None else zeros
            writer.add(screen, {"action": int(action), "chosen_action": int(action), "actor": "human",
                                "frame_hash": digest64(after),
                                "ram_hash": digest64(ram[k]) if ram is not None else 0, "event": event,
                                "wall_time_ns": now_ns(), "lateness_ms": None, "variables": variables})
            screen = after
    except BaseException:
        writer.abort()
        raise
    return {**writer.finish(outcome, complete=True, end_reason="imported",
                            summary={"wins": counts["win"], "deaths": counts["death"],
                                     "game_overs": counts["game_over"], "final_variables": variables}),
            "path": str(path)}


def table_rows(metas: list[dict]) -> list[dict]:
    return [{"recording": m["path"], "steps": m["steps"], "outcome": m["outcome"],
             "ram repaired": m.get("import", {}).get("ram_repaired", "-")} for m in metas]
