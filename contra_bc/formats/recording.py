"""Recording format v1: one directory per episode.

    meta.json         what, where from, how fast, how it ended (rewritten atomically)
    start_state.gz    emulator state bytes at step 0 (before the reset frame)
    steps.parquet     one row per step (finished recordings)
    steps/NNNNN.parquet  the same rows in chunks, while recording or after a crash
    video/NNNNN.mkv   lossless frames in chunks; frame i is what the player saw
                      when choosing the action of step i

Alignment is by integer step index only. The writer flushes one chunk of steps
and its video segment at a time, each under a temp name renamed into place, so
``kill -9`` leaves a readable prefix; Ctrl-C and SIGTERM also flush the open chunk.
See docs/formats.md.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from contra_bc import __version__
from contra_bc.errors import UserError
from contra_bc.formats import atomic, video
from contra_bc.formats import fields as F

FORMAT = "contra-bc/recording"
VERSION = 1
CHUNK_STEPS = 100
ACTORS = ("human", "agent", "script", "perturbation", "corrector")  # perturbation: a mistake injected into a bot's run; corrector: a bot that took over from the agent
BASE_COLUMNS = ("step", "action", "actor", "frame_hash", "ram_hash", "event", "wall_time_ns", "lateness_ms",
                "chosen_action")
# Columns a recording may lack because it was written before they existed: what to read instead.
# chosen_action: the action the actor chose; it differs from `action` (what the emulator executed, what
# replays) only on a perturbed step (play/record --sticky); recordings made before it chose what they executed.
LATER_COLUMNS = {"chosen_action": "action"}
VAR_PREFIX = "var_"


def _schema(variables: list[str]):
    import pyarrow as pa

    fields = [
        pa.field("step", pa.int32(), nullable=False),
        pa.field("action", pa.int32(), nullable=False),
        pa.field("actor", pa.string(), nullable=False),
        pa.field("frame_hash", pa.int64(), nullable=False),
        pa.field("ram_hash", pa.int64(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("wall_time_ns", pa.int64(), nullable=False),
        pa.field("lateness_ms", pa.float32(), nullable=True),
        pa.field("chosen_action", pa.int32(), nullable=False),
    ]
    fields += [pa.field(VAR_PREFIX + v, pa.int64(), nullable=False) for v in variables]
    return pa.schema(fields)


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class RecordingWriter:
    """Writes one episode incrementally. Refuses to touch an existing recording."""

    def __init__(
        self,
        path: Path,
        *,
        game: str,
        platform: str,
        state_name: str | None,
        start_state: bytes | None,
        rom_sha1: str,
        buttons: list,
        variables: list[str],
        frames_per_step: int,
        hz: float,
        reset_frames: int,
        source: str,
        source_detail: str,
        screen_shape: tuple,
        first_frame_hash: int,
        stable_retro_version: str,
        extra: dict | None = None,
        chunk_steps: int = CHUNK_STEPS,
    ):
        path = Path(path)
        if not atomic.claim_dir(path):
            raise UserError(f"{path} already exists and is not empty; contra-bc never overwrites a "
                            f"recording. Choose another --out or remove it yourself.")
        (path / "steps").mkdir()
        (path / "video").mkdir()
        self.path = path
        self.variables = list(variables)
        self.chunk_steps = chunk_steps
        self.screen_shape = tuple(screen_shape)
        self.hz = hz
        self._rows: list[dict] = []
        self._segment: video.SegmentWriter | None = None
        self._chunk = 0
        self.steps = 0
        self.closed = False
        if start_state is not None:  # None: imported frames, no emulator state to start from (not replayable)
            atomic.write_bytes(path / "start_state.gz", gzip.compress(start_state, mtime=0))
        self.meta = {
            "format": FORMAT,
            "format_version": VERSION,
            "game": game,
            "platform": platform,
            "state": state_name,
            "start_state_sha1": None if start_state is None else sha1_hex(start_state),
            "rom_sha1": rom_sha1,
            "buttons": list(buttons),
            "variables": self.variables,
            "frames_per_step": int(frames_per_step),
            "hz": float(hz),
            "reset_frames": int(reset_frames),
            "source": source,
            "source_detail": source_detail,
            "screen": {"height": int(screen_shape[0]), "width": int(screen_shape[1])},
            "first_frame_hash": int(first_frame_hash),
            "video": {"codec": video.CODEC, "container": video.CONTAINER, "chunk_steps": chunk_steps},
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stable_retro_version": stable_retro_version,
            "contra_bc_version": __version__,
            "steps": 0,
            "outcome": "none",
            "end_reason": None,
            "complete": False,
            "status": "recording",
            **(extra or {}),
        }
        atomic.write_json(path / "meta.json", self.meta)

    def add(self, frame_before: np.ndarray, row: dict) -> None:
        """One step: the frame the actor saw, then the step's row (see BASE_COLUMNS)."""
        if self._segment is None:
            h, w = self.screen_shape[:2]
            self._segment = video.SegmentWriter(
                self.path / "video" / f"{self._chunk:05d}{video.SUFFIX}", w, h, self.hz)
        self._segment.add(frame_before)
        row = dict(row)
        row["step"] = self.steps
        self._rows.append(row)
        self.steps += 1
        if len(self._rows) >= self.chunk_steps:
            self.flush()

    def flush(self) -> None:
        """Close the open chunk: video segment first, then its steps (both atomic)."""
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._segment.close()
        self._segment = None
        table = pa.Table.from_pylist(self._table_rows(self._rows), schema=_schema(self.variables))
        final = self.path / "steps" / f"{self._chunk:05d}.parquet"
        tmp = atomic.temp_path(final)
        pq.write_table(table, tmp)
        atomic.commit(tmp, final)
        self._rows = []
        self._chunk += 1

    def _table_rows(self, rows):
        out = []
        for r in rows:
            d = {k: r.get(k) for k in BASE_COLUMNS}
            if d["chosen_action"] is None:
                d["chosen_action"] = d["action"]
            for v in self.variables:
                d[VAR_PREFIX + v] = r["variables"][v]
            out.append(d)
        return out

    def abort(self) -> None:
        """Give up on this recording: remove its folder (a writer that never finishes leaves nothing)."""
        if self._segment is not None:
            try:
                self._segment.close()
            except Exception:  # the segment is being thrown away with the folder
                pass
            self._segment = None
        shutil.rmtree(self.path, ignore_errors=True)
        self.closed = True

    def finish(self, outcome: str, *, complete: bool, end_reason: str, summary: dict | None = None) -> dict:
        """Flush, merge the chunks into steps.parquet and write the final meta.json."""
        import pyarrow.parquet as pq

        self.flush()
        parts = sorted((self.path / "steps").glob("*.parquet"))
        table = _concat_parts(parts, self.variables)
        tmp = atomic.temp_path(self.path / "steps.parquet")
        pq.write_table(table, tmp)
        atomic.commit(tmp, self.path / "steps.parquet")
        shutil.rmtree(self.path / "steps")
        self.meta.update(
            steps=self.steps,
            outcome=outcome,
            complete=complete,
            status="complete" if complete else "interrupted",
            end_reason=end_reason,
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(summary or {}),
        )
        self.meta["video"]["segments"] = self._chunk
        atomic.write_json(self.path / "meta.json", self.meta)
        self.closed = True
        return self.meta


def _concat_parts(parts, variables):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not parts:
        return _schema(variables).empty_table()
    return pa.concat_tables([pq.read_table(p) for p in parts])


@dataclass
class Recording:
    """A recording read from disk and checked."""

    path: Path
    meta: dict
    steps: "object"  # pyarrow.Table

    @property
    def n_steps(self) -> int:
        return self.steps.num_rows

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    @property
    def actions(self) -> np.ndarray:
        return self.steps.column("action").to_numpy().astype(np.int64)

    @property
    def chosen_actions(self) -> np.ndarray:
        """What the actor chose at each step (equal to ``actions`` except on perturbed steps)."""
        return self.steps.column("chosen_action").to_numpy().astype(np.int64)

    @property
    def buttons(self) -> list:
        return self.meta["buttons"]

    def column(self, name: str) -> np.ndarray:
        return self.steps.column(name).to_numpy()

    @property
    def replayable(self) -> bool:
        """False for a recording imported from frames and actions (no emulator state to start from)."""
        return self.meta.get("start_state_sha1") is not None

    def start_state(self) -> bytes:
        if not self.replayable:
            raise UserError(f"{self.path} was imported from {self.meta.get('source_detail') or 'frames and actions'} "
                            f"without an emulator state to start from, so it cannot be replayed; it can be rendered, "
                            f"annotated and trained on.")
        p = self.path / "start_state.gz"
        try:
            raw = gzip.decompress(p.read_bytes())
        except FileNotFoundError:
            raise UserError(f"{self.path} has no start_state.gz: without its start state a recording "
                            f"cannot be replayed. It is not a complete contra-bc recording.") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise UserError(f"{p} is corrupt ({exc}); the recording cannot be replayed.") from None
        if sha1_hex(raw) != self.meta.get("start_state_sha1"):
            raise UserError(f"{p} does not match the SHA-1 in meta.json; the start state was changed "
                            f"or damaged, so the recording cannot be replayed.")
        return raw

    def video_segments(self) -> list[Path]:
        return sorted((self.path / "video").glob(f"*{video.SUFFIX}"))

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames [start, stop) of the video (frame i = what step i's actor saw)."""
        chunk = int(self.meta["video"]["chunk_steps"])
        stop = self.n_steps if stop is None else min(stop, self.n_steps)
        index = (start // chunk) * chunk
        for seg in self.video_segments()[start // chunk:]:
            for frame in video.decode(seg):
                if index >= stop:
                    return
                if index >= start:
                    yield frame
                index += 1

    def time_of_step(self, step: int) -> float:
        return step / float(self.meta["hz"])


def is_recording(path: Path) -> bool:
    return (Path(path) / "meta.json").is_file()


def read_meta(path: Path) -> dict:
    """A recording's meta.json, checked (types and ranges); UserError with the reason otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; a recording is a directory holding meta.json, "
                        f"start_state.gz, steps.parquet and video/.")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{path} has no meta.json, so it is not a contra-bc recording.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}/meta.json is not valid JSON ({exc}); the recording is damaged.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise UserError(f"{path}/meta.json says format {found!r}, not {FORMAT!r}: it is not a contra-bc recording.")
    if not isinstance(meta.get("format_version"), int) or isinstance(meta.get("format_version"), bool):
        raise UserError(f"{path}/meta.json: `format_version` must be an integer, not "
                        f"{meta.get('format_version')!r}; the file was edited or damaged.")
    if meta["format_version"] != VERSION:
        raise UserError(f"{path} is recording format v{meta.get('format_version')}; this contra-bc "
                        f"(v{__version__}) reads v{VERSION}. Install the contra-bc version that wrote it.")
    validate_meta(meta, path / "meta.json")
    return meta


def read_recording(path: Path) -> Recording:
    """Open and validate a recording directory; UserError with the reason otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    meta = read_meta(path)
    variables = meta.get("variables", [])
    try:
        if (path / "steps.parquet").is_file():
            steps = pq.read_table(path / "steps.parquet")
        else:
            parts = sorted((path / "steps").glob("*.parquet")) if (path / "steps").is_dir() else []
            steps = _concat_parts(parts, variables)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"The steps table of {path} is unreadable ({exc}). The file is truncated or "
                        f"corrupt; the recording cannot be used.") from None
    steps = _checked_columns(steps, _schema(variables), path)
    idx = steps.column("step").to_numpy()
    if len(idx) and not np.array_equal(idx, np.arange(len(idx))):
        raise UserError(f"The steps of {path} are not numbered 0..N-1; the table is damaged.")
    if meta.get("complete") and meta.get("steps") != steps.num_rows:
        raise UserError(f"{path}/meta.json says {meta.get('steps')!r} steps but the table has "
                        f"{steps.num_rows}; the recording is damaged.")
    if meta.get("complete") and steps.num_rows == 0:
        raise UserError(f"{path} is marked complete but holds no step; there is nothing to replay or train on. "
                        f"Record it again.")
    allowed = sum(1 << i for i, b in enumerate(meta["buttons"]) if b)
    for column in ("action", "chosen_action"):
        actions = steps.column(column).to_numpy()
        stray = np.flatnonzero((actions < 0) | (actions & ~allowed != 0)) if len(actions) else []
        if len(stray):
            raise UserError(f"{path}: step {stray[0]} presses buttons the recording's platform does not have "
                            f"({column} {actions[stray[0]]}, buttons {meta['buttons']}); the steps table is damaged.")
    bad_actor = set(steps.column("actor").to_pylist()) - set(ACTORS)
    if bad_actor:
        raise UserError(f"{path}: actor(s) {sorted(bad_actor)} in the steps table are none of {list(ACTORS)}.")
    return Recording(path=path, meta=meta, steps=steps)


def _checked_columns(steps, expected, path: Path):
    """The table with exactly the expected columns, each of the expected type (UserError otherwise).

    A column written before it existed (LATER_COLUMNS) is filled from the one it defaults to."""
    names = steps.schema.names
    for name, source in LATER_COLUMNS.items():
        if name not in names and source in names:
            steps = steps.append_column(expected.field(name), steps.column(source))
            names = steps.schema.names
    missing = [n for n in expected.names if n not in names]
    if missing:
        raise UserError(f"The steps table of {path} lacks columns {missing}; it is not a v{VERSION} recording.")
    import pyarrow as pa

    steps = steps.select(expected.names)
    wrong = []
    for f in expected:
        have = steps.schema.field(f.name).type
        if have.equals(f.type):
            continue
        # another width of the same kind reads as the declared one (values are range-checked after)
        if (pa.types.is_integer(have) and pa.types.is_integer(f.type)) or \
                (pa.types.is_floating(have) and pa.types.is_floating(f.type)):
            try:
                steps = steps.set_column(steps.schema.get_field_index(f.name), f,
                                         steps.column(f.name).cast(f.type))
                continue
            except pa.ArrowInvalid:  # a value that does not fit the declared width
                pass
        wrong.append(f"`{f.name}` is {have}, not {f.type}")
    nulls = [f.name for f in expected if not f.nullable and steps.column(f.name).null_count]
    if wrong or nulls:
        why = "; ".join(wrong + [f"`{n}` has empty cells" for n in nulls])
        raise UserError(f"The steps table of {path} does not have the recording's column types ({why}); it was "
                        f"edited or damaged, so its steps cannot be trusted. Record the episode again or restore "
                        f"the file.")
    return steps


META_FIELDS = {
    "game": F.string(), "platform": F.string(), "buttons": F.button_list(),
    "variables": F.list_of(F.string()), "frames_per_step": F.integer(at_least=1), "hz": F.number(above=0),
    "start_state_sha1": F.optional(F.string()), "first_frame_hash": F.integer(), "complete": F.boolean(),
    "video": F.mapping({"chunk_steps": F.integer(at_least=1)}),
    "screen": F.mapping({"height": F.integer(at_least=1), "width": F.integer(at_least=1)}),
    "outcome": F.one_of("win", "death", "game_over", "none"),
    # play/record --sticky/--noop-max: the perturbation and this episode's draws (absent: none)
    "perturbation": F.absent_or(F.optional(F.mapping({
        "sticky": F.number(at_least=0, at_most=1), "noop_max": F.integer(at_least=0),
        "noop_steps": F.integer(at_least=0), "sticky_steps": F.integer(at_least=0)}))),
}


def validate_meta(meta: dict, where: Path) -> None:
    """Types and ranges of a recording's meta.json (UserError naming every problem)."""
    spec = dict(META_FIELDS)
    if meta.get("complete"):
        spec["steps"] = F.integer(at_least=0)
    F.require_fields(meta, spec, where, "recording meta.json",
                     "It was edited by hand or damaged; restore it, or record the episode again.")


def find_recordings(paths: list[Path]) -> list[Path]:
    """Expand each argument: a recording, or a folder of recordings (one level down)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if is_recording(p):
            found.append(p)
        elif p.is_dir():
            subs = sorted(d for d in p.iterdir() if is_recording(d))
            if not subs:
                raise UserError(f"{p} is neither a recording nor a folder of recordings (no meta.json found).")
            found.extend(subs)
        elif p.exists():
            raise UserError(f"{p} is a file, not a recording: a recording is a directory holding meta.json, "
                            f"start_state.gz, steps.parquet and video/ (or pass a folder of such directories).")
        else:
            raise UserError(f"{p} does not exist.")
    return found


def games_of(recordings) -> set[str]:
    """The games the recordings were made on (from each checked meta.json)."""
    return {read_meta(Path(r))["game"] for r in recordings}


def now_ns() -> int:
    return time.time_ns()
