"""Dataset format v1: training shards built from recordings (LeRobot-v3-like layout).

    meta/info.json          what the dataset is: game, fps, frame size, buttons, counts,
                            splits, sources with their hashes (written last)
    meta/episodes.parquet   one row per episode: where its rows are, length, outcome, split
    meta/texts.parquet      text_index -> instruction text
    data/chunk-CCC/file-FFF.parquet   one file per episode, one row per step:
        episode_index, frame_index, index (global), action (bitmask over info["buttons"]: what the
        emulator executed, the action history a policy sees), text_index (null = no annotation),
        loss_mask, frame (raw H*W*3 uint8 bytes), chosen_action (what the actor chose: differs from
        action only on a perturbed step, e.g. sticky actions; what training learns by default; v2),
        aux (only when built with --aux: the named game variables at that frame, float32 list)

Every parquet file is written with fixed settings (zstd, no dictionary, fixed row
groups) and no timestamps, so the same inputs give the same bytes. Files are
written under temp names and renamed; info.json is written last, so a directory
without a valid info.json is not a dataset. See docs/formats.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from contra_bc import __version__
from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats import fields as F

FORMAT = "contra-bc/dataset"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # v1 has no chosen_action column: every step's chosen action is its action
INFO = Path("meta/info.json")
EPISODES = Path("meta/episodes.parquet")
TEXTS = Path("meta/texts.parquet")
ROW_GROUP_ROWS = 32  # a stride-aligned 32-step window reads exactly one row group
FILES_PER_CHUNK = 1000
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
SPLITS = ("train", "val")
INFO_KEYS = ("format", "format_version", "game", "platform", "hz", "frames_per_step", "frame_size",
             "buttons", "action_encoding", "frame_storage", "row_group_rows", "counts", "splits",
             "sources", "build")


def data_schema(frame_size: tuple[int, int], n_aux: int = 0, version: int = VERSION):
    import pyarrow as pa

    h, w = frame_size
    chosen = [pa.field("chosen_action", pa.int32(), nullable=False)] if version >= 2 else []
    aux = [pa.field("aux", pa.list_(pa.float32(), n_aux), nullable=False)] if n_aux else []
    return pa.schema([
        pa.field("episode_index", pa.int32(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("index", pa.int64(), nullable=False),
        pa.field("action", pa.int32(), nullable=False),
        pa.field("text_index", pa.int32(), nullable=True),
        pa.field("loss_mask", pa.bool_(), nullable=False),
        pa.field("frame", pa.binary(h * w * 3), nullable=False),
    ] + chosen + aux)


def has_chosen_actions(info: dict) -> bool:
    """Whether the data files hold a chosen_action column (format v2 on)."""
    return int(info.get("format_version", VERSION)) >= 2


def episodes_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("episode_index", pa.int32(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("data_file", pa.string(), nullable=False),
        pa.field("file_row_start", pa.int64(), nullable=False),
        pa.field("length", pa.int64(), nullable=False),
        pa.field("index_start", pa.int64(), nullable=False),
        pa.field("index_end", pa.int64(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("complete", pa.bool_(), nullable=False),
        pa.field("annotated", pa.bool_(), nullable=False),
        pa.field("loss_steps", pa.int64(), nullable=False),
    ])


def texts_schema():
    import pyarrow as pa

    return pa.schema([pa.field("text_index", pa.int32(), nullable=False),
                      pa.field("text", pa.string(), nullable=False)])


def data_file(episode_index: int) -> str:
    """Relative path of an episode's shard: data/chunk-CCC/file-FFF.parquet."""
    chunk, file = divmod(int(episode_index), FILES_PER_CHUNK)
    return f"data/chunk-{chunk:03d}/file-{file:03d}.parquet"


def _writer_options() -> dict:
    return {"compression": COMPRESSION, "compression_level": COMPRESSION_LEVEL, "use_dictionary": False,
            "write_statistics": True, "version": "2.6"}


def write_parquet(path: Path, table, *, row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """Write a table atomically with the fixed settings that make the bytes reproducible."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path(path)
    try:
        pq.write_table(table, tmp, row_group_size=row_group_rows, **_writer_options())
        atomic.commit(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


class ShardWriter:
    """Writes one episode's data file row group by row group (bounded memory), atomically.

    ``add(action, text_index, loss_mask, frame, aux, chosen)`` per step in order (``aux``: ``n_aux`` numbers,
    or None when the dataset has no aux column; ``chosen``: the actor's choice, None = ``action``); ``close()`` renames
    the finished file into place; ``abort()`` removes the temp file.
    """

    def __init__(self, path: Path, *, episode_index: int, index_start: int, frame_size, n_aux: int = 0):
        import numpy as np
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = atomic.temp_path(self.path)
        self.schema = data_schema(tuple(frame_size), n_aux)
        self.n_aux = int(n_aux)
        self.frame_bytes = int(frame_size[0]) * int(frame_size[1]) * 3
        self.episode_index, self.index_start = int(episode_index), int(index_start)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, **_writer_options())
        self._frames = np.empty((ROW_GROUP_ROWS, self.frame_bytes), np.uint8)
        self._rows: list[tuple] = []
        self.rows = 0

    def add(self, action: int, text_index: int | None, loss_mask: bool, frame, aux=None, chosen=None) -> None:
        self._frames[len(self._rows)] = frame.reshape(-1)
        if self.n_aux and (aux is None or len(aux) != self.n_aux):
            raise ValueError(f"a row of this shard needs {self.n_aux} aux values, got {aux!r}")
        self._rows.append((int(action), text_index, bool(loss_mask), aux, int(action if chosen is None else chosen)))
        if len(self._rows) == ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        n = len(self._rows)
        if not n:
            return
        first = self.rows
        frames = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(self.frame_bytes), n, [None, pa.py_buffer(self._frames[:n])])
        aux = [pa.array([[float(v) for v in r[3]] for r in self._rows],
                        pa.list_(pa.float32(), self.n_aux))] if self.n_aux else []
        table = pa.Table.from_arrays([
            pa.array([self.episode_index] * n, pa.int32()),
            pa.array(range(first, first + n), pa.int32()),
            pa.array(range(self.index_start + first, self.index_start + first + n), pa.int64()),
            pa.array([r[0] for r in self._rows], pa.int32()),
            pa.array([r[1] for r in self._rows], pa.int32()),
            pa.array([r[2] for r in self._rows], pa.bool_()),
            frames,
            pa.array([r[4] for r in self._rows], pa.int32()),
        ] + aux, schema=self.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += n
        self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        atomic.commit(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            if self._tmp.exists():
                self._tmp.unlink()


def frame_storage(frame_size) -> dict:
    h, w = frame_size
    return {"column": "frame", "dtype": "uint8", "shape": [int(h), int(w), 3], "layout": "HWC RGB",
            "encoding": "raw bytes (fixed_size_binary)", "compression": f"parquet {COMPRESSION}",
            "preprocess": "contra_bc.preprocess.preprocess_frame"}


def make_info(*, game: str, platform: str, hz: float, frames_per_step: int, frame_size, buttons: list,
              episodes: list[dict], n_texts: int, sources: list[dict], build: dict, aux: list | None = None) -> dict:
    """info.json from the episode rows (so counts and splits always agree with episodes.parquet)."""
    counts = {"episodes": len(episodes), "frames": sum(e["length"] for e in episodes), "texts": n_texts,
              "annotated_episodes": sum(1 for e in episodes if e["annotated"]),
              "loss_frames": sum(e["loss_steps"] for e in episodes)}
    for split in SPLITS:
        counts[f"{split}_episodes"] = sum(1 for e in episodes if e["split"] == split)
        counts[f"{split}_frames"] = sum(e["length"] for e in episodes if e["split"] == split)
    info = {
        "format": FORMAT,
        "format_version": VERSION,
        "game": game,
        "platform": platform,
        "hz": float(hz),
        "frames_per_step": int(frames_per_step),
        "frame_size": [int(frame_size[0]), int(frame_size[1])],
        "buttons": list(buttons),
        "action_encoding": "bitmask: bit i set = buttons[i] held (null slots never set)",
        "frame_storage": frame_storage(frame_size),
        "row_group_rows": ROW_GROUP_ROWS,
        "counts": counts,
        "splits": {s: [e["episode_index"] for e in episodes if e["split"] == s] for s in SPLITS},
        "sources": sources,
        "build": {**build, "contra_bc_version": __version__},
    }
    if aux:  # optional: datasets without it (all of them before --aux) read as before
        info["aux"] = {"variables": list(aux), "column": "aux", "dtype": "float32",
                       "meaning": "the game variables as the frame shows them (after the previous step)"}
    return info


def write_meta(root: Path, *, info: dict, episodes: list[dict], texts: list[str]) -> None:
    """episodes.parquet and texts.parquet, then info.json last (all atomic)."""
    import pyarrow as pa

    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    ep_rows = [{k: e[k] for k in episodes_schema().names} for e in episodes]
    write_parquet(root / EPISODES, pa.Table.from_pylist(ep_rows, schema=episodes_schema()), row_group_rows=4096)
    write_parquet(root / TEXTS, pa.Table.from_pylist(
        [{"text_index": i, "text": t} for i, t in enumerate(texts)], schema=texts_schema()), row_group_rows=4096)
    validate_info(info, root / INFO)
    atomic.write_json(root / INFO, info)


def _not_dataset(root: Path, why: str) -> UserError:
    return UserError(f"{root} is not a usable contra-bc dataset: {why}. Build one with "
                     f"`contra-bc build-dataset RECORDINGS... --out {root}` (a folder named *.partial-* is an "
                     f"unfinished build: rerun the same command to resume it).")


def validate_info(info: dict, where: Path) -> None:
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise UserError(f"{where} is not a contra-bc dataset info file (format "
                        f"{info.get('format') if isinstance(info, dict) else None!r}, expected {FORMAT!r}).")
    F.require_fields(info, {"format_version": F.integer()}, where, "dataset info file",
                     "It was edited or damaged; rebuild the dataset with `contra-bc build-dataset`.")
    if info.get("format_version") not in READABLE_VERSIONS:
        raise UserError(f"{where} is dataset format v{info.get('format_version')}; this contra-bc "
                        f"(v{__version__}) reads v{', v'.join(map(str, READABLE_VERSIONS))}. Rebuild the dataset with "
                        f"`contra-bc build-dataset` or install the contra-bc version that wrote it.")
    if "fps" in info and "hz" not in info:
        info["hz"] = info.pop("fps")  # datasets written before hz was the one name called it `fps`
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise UserError(f"{where} lacks the keys {missing}; the dataset is damaged. Rebuild it.")
    fs = info["frame_size"]
    if not (isinstance(fs, list) and len(fs) == 2 and all(isinstance(v, int) and v > 0 for v in fs)):
        raise UserError(f"{where}: frame_size must be [height, width], got {fs!r}.")
    count = F.integer(at_least=0)
    F.require_fields(info, {
        "game": F.string(), "hz": F.number(above=0), "frames_per_step": F.integer(at_least=1),
        "buttons": F.button_list(), "row_group_rows": F.integer(at_least=1),
        "counts": F.mapping({"episodes": count, "frames": count, "texts": count}),
        "splits": F.mapping({s: F.list_of(count) for s in SPLITS}), "sources": F.list_of(F.mapping()),
    }, where, "dataset info file", "It was edited or damaged; rebuild the dataset with `contra-bc build-dataset`.")
    if "aux" in info:
        F.require_fields(info, {"aux": F.mapping({"variables": F.list_of(F.string(), min_len=1)})}, where,
                         "dataset info file", "It was edited or damaged; rebuild the dataset with `contra-bc build-dataset`.")


def aux_variables(info: dict) -> list[str]:
    """The game variables a dataset stores per frame in its ``aux`` column ([] for none)."""
    return list(info.get("aux", {}).get("variables", []))


def read_info(root: Path) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise _not_dataset(root, "no such directory")
    try:
        info = json.loads((root / INFO).read_text())
    except FileNotFoundError:
        raise _not_dataset(root, f"it has no {INFO}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _not_dataset(root, f"{INFO} is not valid JSON ({exc})") from None
    validate_info(info, root / INFO)
    return info


def _read_table(root: Path, rel: Path, schema):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(root / rel, use_threads=False)
    except FileNotFoundError:
        raise _not_dataset(root, f"{rel} is missing") from None
    except (pa.ArrowException, OSError) as exc:
        raise _not_dataset(root, f"{rel} is unreadable ({exc})") from None
    missing = [n for n in schema.names if n not in table.schema.names]
    if missing:
        raise _not_dataset(root, f"{rel} lacks columns {missing}")
    return table.select(schema.names)


def read_episodes(root: Path, info: dict) -> list[dict]:
    """The episode rows info.json counts. info.json is written last and so commits a build or an append:
    rows beyond its count are an --append that was cut off before its commit, and are not part of the dataset."""
    root = Path(root)
    episodes = _read_table(root, EPISODES, episodes_schema()).to_pylist()
    if len(episodes) < info["counts"]["episodes"]:
        raise _not_dataset(root, f"{EPISODES} has {len(episodes)} episodes but info.json says "
                                 f"{info['counts']['episodes']}")
    episodes = episodes[:info["counts"]["episodes"]]
    next_index = 0
    for i, e in enumerate(episodes):
        if e["episode_index"] != i or e["index_start"] != next_index or \
                e["index_end"] - e["index_start"] != e["length"] or e["split"] not in SPLITS:
            raise _not_dataset(root, f"episode row {i} of {EPISODES} is inconsistent")
        next_index = e["index_end"]
    return episodes


def read_texts(root: Path, info: dict) -> list[str]:
    rows = _read_table(Path(root), TEXTS, texts_schema()).to_pylist()[:info["counts"]["texts"]]  # as episodes
    if [r["text_index"] for r in rows] != list(range(len(rows))) or len(rows) != info["counts"]["texts"]:
        raise _not_dataset(Path(root), f"{TEXTS} does not match info.json")
    return [r["text"] for r in rows]


def validate_dataset(root: Path) -> dict:
    """Check meta and every data file's row count and schema; returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    info = read_info(root)
    episodes = read_episodes(root, info)
    read_texts(root, info)
    expected = data_schema(tuple(info["frame_size"]), len(aux_variables(info)), info["format_version"])
    rows = 0
    for e in episodes:
        path = root / e["data_file"]
        try:
            meta = pq.ParquetFile(path).schema_arrow
            n = pq.ParquetFile(path).metadata.num_rows
        except (FileNotFoundError, OSError, pa.ArrowException) as exc:
            raise _not_dataset(root, f"data file {e['data_file']} is missing or unreadable ({exc})") from None
        if not meta.equals(expected):
            raise _not_dataset(root, f"{e['data_file']} has the wrong columns")
        if n < e["file_row_start"] + e["length"]:
            raise _not_dataset(root, f"{e['data_file']} has {n} rows, fewer than episode {e['episode_index']} needs")
        rows += e["length"]
    return {"episodes": len(episodes), "frames": rows}
