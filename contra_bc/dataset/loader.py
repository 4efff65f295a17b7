"""Read a contra-bc dataset for training: fixed-length windows inside episodes.

    ds = DatasetReader(path)                      # info, texts, episodes
    wd = WindowDataset(path, split="train", window=32)
    item = wd[0]    # frames uint8 [T,H,W,3], actions int64 [T] (executed: the history a policy sees),
                    # targets int64 [T] (what training learns: the chosen actions, or with
                    # learn="executed" the executed ones), text int64 [T] (-1 none),
                    # loss_mask bool [T], valid bool [T], episode int64, start int64,
                    # aux float32 [T, n] (only for a dataset built with --aux)
    loader = make_loader(path, split="train", window=32, batch_size=8, seed=0, workers=2)

Windows never cross an episode boundary; an episode's last window is padded at
the end (valid False, frames 0, actions 0, text -1, loss_mask False). Windows without a
single trained-on step (an agent's stretch of correction data) are left out. A window
reads only the parquet row groups it overlaps; each worker process keeps its own
open files and a small cache of decoded row groups.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from contra_bc.errors import UserError
from contra_bc.formats import dataset as fmt

_COLUMNS = ["action", "text_index", "loss_mask", "frame"]
LEARN = ("chosen", "executed")  # which action of a step training learns (they differ on perturbed steps)


class DatasetReader:
    """A validated dataset directory: ``info``, ``texts``, ``episodes`` and row access."""

    def __init__(self, path, cache_groups: int = 4):
        self.path = Path(path)
        self.info = fmt.read_info(self.path)
        self.texts: list[str] = fmt.read_texts(self.path, self.info)
        self.episodes: list[dict] = [
            {k: e[k] for k in ("episode_index", "name", "source", "length", "outcome", "split",
                               "index_start", "index_end", "data_file", "file_row_start", "complete",
                               "annotated", "loss_steps")}
            for e in fmt.read_episodes(self.path, self.info)]
        h, w = self.info["frame_size"]
        self.frame_shape = (h, w, 3)
        self.aux_variables = fmt.aux_variables(self.info)
        self.chosen_column = "chosen_action" if fmt.has_chosen_actions(self.info) else "action"
        self._columns = _COLUMNS + (["chosen_action"] if self.chosen_column != "action" else []) + \
            (["aux"] if self.aux_variables else [])
        self.cache_groups = cache_groups
        self._files: dict = {}
        self._cache: OrderedDict = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"], state["_cache"] = {}, OrderedDict()  # open files stay with their process
        state.pop("_actions_of", None)
        return state

    def __len__(self) -> int:
        return len(self.episodes)

    def split_episodes(self, split: str | None) -> list[dict]:
        if split is not None and split not in fmt.SPLITS:
            raise UserError(f"Unknown split {split!r}; a dataset has the splits {', '.join(fmt.SPLITS)} "
                            f"(or None for all episodes).")
        return [e for e in self.episodes if split is None or e["split"] == split]

    def _file(self, rel: str):
        import pyarrow.parquet as pq

        if self._pid != os.getpid():  # forked into a worker: do not share handles
            self._files, self._cache, self._pid = {}, OrderedDict(), os.getpid()
        pf = self._files.get(rel)
        if pf is None:
            try:
                pf = pq.ParquetFile(self.path / rel, memory_map=True)
            except (FileNotFoundError, OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
                raise UserError(f"{self.path / rel} is missing or unreadable ({exc}); the dataset is damaged. "
                                f"Rebuild it with `contra-bc build-dataset`.") from None
            starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
            pf = (pf, starts)
            self._files[rel] = pf
        return pf

    def _group(self, rel: str, g: int) -> dict:
        key = (rel, g)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        import pyarrow as pa

        pf, _ = self._file(rel)
        width = int(np.prod(self.frame_shape))
        try:
            table = pf.read_row_group(g, columns=self._columns, use_threads=False)
            column = table.column("frame")
            frames = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            if frames.type.byte_width != width:
                raise ValueError(f"frames of {frames.type.byte_width} bytes, not {width} ({self.frame_shape})")
            raw = np.frombuffer(frames.buffers()[1], np.uint8, count=len(frames) * width,
                                offset=frames.offset * width)
            group = {
                "action": table.column("action").to_numpy(zero_copy_only=False).astype(np.int64),
                "chosen": table.column(self.chosen_column).to_numpy(zero_copy_only=False).astype(np.int64),
                "text": table.column("text_index").fill_null(-1).to_numpy().astype(np.int64),
                "loss_mask": table.column("loss_mask").to_numpy(zero_copy_only=False).astype(bool),
                "frame": raw.reshape((len(frames),) + self.frame_shape),
            }
            if self.aux_variables:
                group["aux"] = _aux_array(table.column("aux"), len(self.aux_variables))
        except (pa.ArrowException, OSError, ValueError, KeyError, AttributeError) as exc:
            raise UserError(f"{self.path / rel} is damaged: row group {g} cannot be read ({exc}). Rebuild the "
                            f"dataset with `contra-bc build-dataset`.") from None
        allowed = sum(1 << i for i, b in enumerate(self.info["buttons"]) if b)
        if any(((group[k] < 0) | (group[k] & ~allowed != 0)).any() for k in ("action", "chosen")):
            raise UserError(f"{self.path / rel} holds actions on buttons the dataset does not have "
                            f"({self.info['buttons']}); the shard is damaged. Rebuild the dataset.")
        if ((group["text"] < -1) | (group["text"] >= len(self.texts))).any():
            raise UserError(f"{self.path / rel} holds text indices outside the dataset's {len(self.texts)} "
                            f"texts; the shard is damaged. Rebuild the dataset.")
        self._cache[key] = group
        while len(self._cache) > self.cache_groups:
            self._cache.popitem(last=False)
        return group

    def check_values(self) -> None:
        """Every row's actions and text index in range (columns only, no frame is decoded); UserError naming
        the first data file that is not, so a command refuses a damaged dataset before it writes anything."""
        import pyarrow as pa

        allowed = sum(1 << i for i, b in enumerate(self.info["buttons"]) if b)
        columns = ["action", "text_index"] + (["chosen_action"] if self.chosen_column != "action" else [])
        for rel in dict.fromkeys(e["data_file"] for e in self.episodes):
            pf, _ = self._file(rel)
            try:
                table = pf.read(columns=columns, use_threads=False)
            except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
                raise UserError(f"{self.path / rel} is damaged: its columns cannot be read ({exc}). Rebuild the "
                                f"dataset with `contra-bc build-dataset`.") from None
            for name in columns[:1] + columns[2:]:
                values = table.column(name).to_numpy(zero_copy_only=False).astype(np.int64)
                if ((values < 0) | (values & ~allowed != 0)).any():
                    raise UserError(f"{self.path / rel} holds actions on buttons the dataset does not have "
                                    f"({self.info['buttons']}); the shard or meta/info.json was changed. Rebuild "
                                    f"the dataset with `contra-bc build-dataset`.")
            text = table.column("text_index").fill_null(-1).to_numpy().astype(np.int64)
            if ((text < -1) | (text >= len(self.texts))).any():
                raise UserError(f"{self.path / rel} holds text indices outside the dataset's {len(self.texts)} "
                                f"texts; the shard or meta/texts.parquet was changed. Rebuild the dataset.")

    def actions(self, episode_index: int) -> tuple[np.ndarray, np.ndarray]:
        """One episode's chosen actions (what training learns) and loss_mask, without decoding any frame."""
        import pyarrow as pa

        ep = self.episodes[episode_index]
        rel, lo, n = ep["data_file"], ep["file_row_start"], ep["length"]
        if getattr(self, "_actions_of", (None,))[0] != rel:  # a shard holds many episodes: read it once
            pf, _ = self._file(rel)
            try:
                table = pf.read(columns=[self.chosen_column, "loss_mask"], use_threads=False)
                self._actions_of = (rel, table.column(self.chosen_column).to_numpy().astype(np.int64),
                                    table.column("loss_mask").to_numpy(zero_copy_only=False).astype(bool))
            except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
                raise UserError(f"{self.path / rel} is damaged: its actions cannot be read ({exc}). "
                                f"Rebuild the dataset with `contra-bc build-dataset`.") from None
        _, actions, mask = self._actions_of
        return actions[lo:lo + n], mask[lo:lo + n]

    def aux(self, episode_index: int) -> np.ndarray:
        """One episode's aux column [steps, n] (float32), without decoding any frame."""
        import pyarrow as pa

        ep = self.episodes[episode_index]
        pf, _ = self._file(ep["data_file"])
        try:
            column = pf.read(columns=["aux"], use_threads=False).column("aux")
            values = _aux_array(column, len(self.aux_variables))
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            raise UserError(f"{self.path / ep['data_file']} is damaged: its aux column cannot be read ({exc}). "
                            f"Rebuild the dataset with `contra-bc build-dataset`.") from None
        lo = ep["file_row_start"]
        return values[lo:lo + ep["length"]]

    def read(self, episode_index: int, start: int, stop: int) -> dict:
        """Rows [start, stop) of one episode as numpy arrays (frame, action, chosen, text, loss_mask)."""
        ep = self.episodes[episode_index]
        if not 0 <= start <= stop <= ep["length"]:
            raise IndexError(f"rows {start}:{stop} outside episode {episode_index} (length {ep['length']})")
        rel = ep["data_file"]
        _, starts = self._file(rel)
        lo, hi = ep["file_row_start"] + start, ep["file_row_start"] + stop
        parts = {k: [] for k in ("frame", "action", "chosen", "text", "loss_mask") + (("aux",) if self.aux_variables else ())}
        g = int(np.searchsorted(starts, lo, side="right") - 1)
        while lo < hi:
            group = self._group(rel, g)
            a, b = lo - starts[g], min(hi, starts[g + 1]) - starts[g]
            for k in parts:
                parts[k].append(group[k][a:b])
            lo = starts[g] + b
            g += 1
        if not parts["frame"]:
            empty = {"frame": np.zeros((0,) + self.frame_shape, np.uint8), "action": np.zeros(0, np.int64),
                     "chosen": np.zeros(0, np.int64), "text": np.zeros(0, np.int64), "loss_mask": np.zeros(0, bool)}
            if self.aux_variables:
                empty["aux"] = np.zeros((0, len(self.aux_variables)), np.float32)
            return empty
        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in parts.items()}


def _aux_array(column, n: int) -> np.ndarray:
    """A fixed-size-list float32 column -> [rows, n]."""
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, n)


def press_edges(actions: np.ndarray, loss_mask: np.ndarray, n_bits: int) -> np.ndarray:
    """[steps, n_bits] bool: the trained-on steps where a button goes down (up the step before)."""
    bits = (actions[:, None] >> np.arange(n_bits)) & 1
    edges = np.zeros(bits.shape, bool)
    edges[1:] = (bits[1:] == 1) & (bits[:-1] == 0)
    return edges & loss_mask[:, None]


def rare_presses(reader, episodes, window: int):
    """(rare, edges): ``rare`` [n_bits] bool marks the buttons that go down less than once per window
    on average over ``episodes`` (in a platformer: a jump start, not the fire rhythm); ``edges`` maps
    each episode to its ``press_edges``."""
    n_bits = len(reader.info["buttons"])
    edges = {e: press_edges(*reader.actions(e), n_bits) for e in episodes}
    steps = sum(len(v) for v in edges.values())
    rate = sum((v.sum(axis=0) for v in edges.values()), np.zeros(n_bits)) / max(1, steps)
    return (rate > 0) & (rate < 1.0 / window), edges


def rare_buttons(path, split: str | None, window: int) -> list[str]:
    """Names of the rarely pressed buttons of a dataset split (see ``rare_presses``)."""
    reader = DatasetReader(path)
    rare, _ = rare_presses(reader, [e["episode_index"] for e in reader.split_episodes(split)], window)
    return [b for b, r in zip(reader.info["buttons"], rare) if r and b]


def window_starts(length: int, window: int, stride: int, offset: int = 0) -> list[int]:
    """Starts of the windows covering an episode from ``offset`` on; the last one may run past its end."""
    starts, s = [], min(int(offset), max(0, length - 1))
    while True:
        starts.append(s)
        if s + window >= length:
            return starts
        s += stride


class WindowDataset(Dataset):
    """Map-style torch Dataset of fixed-length windows from one split."""

    def __init__(self, path, split: str | None = "train", window: int = 32, stride: int | None = None,
                 jitter_seed: int | None = None, focus: int = 1, learn: str = "chosen"):
        if window < 1 or (stride is not None and stride < 1):
            raise UserError(f"window and stride must be >= 1 (got window={window}, stride={stride}).")
        if learn not in LEARN:
            raise UserError(f"--learn must be one of {', '.join(LEARN)}, not {learn!r}.")
        self.learn = learn
        self.reader = DatasetReader(path)
        self.window = int(window)
        self.stride = int(stride or window)
        self.split = split
        # jitter: each episode's windows start at a seeded offset in [0, stride), so a new seed (a new
        # epoch) cuts new windows instead of showing the same ones at the same offsets again
        rng = np.random.default_rng(jitter_seed) if jitter_seed is not None else None
        self.windows = []
        for e in self.reader.split_episodes(split):
            offset = int(rng.integers(0, self.stride)) if rng is not None else 0
            starts = window_starts(e["length"], self.window, self.stride, offset)
            if e["loss_steps"] < e["length"]:  # correction data: a window with no trained-on step adds nothing
                mask = self.reader.actions(e["episode_index"])[1]
                starts = [s for s in starts if mask[s:s + self.window].any()]
            self.windows += [(e["episode_index"], s) for s in starts]
        self.rare_buttons: list[str] = []
        if focus > 1:
            self._focus(int(focus))

    def _focus(self, focus: int) -> None:
        """Show ``focus`` times each window that holds a rare press (see ``rare_presses``). Those few
        steps are where the screen, not the previous action, decides the action; without this most
        batches hold none of them."""
        episodes = sorted({e for e, _ in self.windows})
        rare, edges = rare_presses(self.reader, episodes, self.window)
        self.rare_buttons = [b for b, r in zip(self.reader.info["buttons"], rare) if r and b]
        extra = [(e, s) for e, s in self.windows if edges[e][s:s + self.window][:, rare].any()]
        self.windows += extra * (focus - 1)

    @property
    def info(self) -> dict:
        return self.reader.info

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        episode, start = self.windows[i]
        length = self.reader.episodes[episode]["length"]
        n = min(self.window, length - start)
        rows = self.reader.read(episode, start, start + n)
        t = self.window
        frames = np.empty((t,) + self.reader.frame_shape, np.uint8)
        frames[:n] = rows["frame"]
        frames[n:] = 0
        actions = np.zeros(t, np.int64)
        actions[:n] = rows["action"]
        targets = np.zeros(t, np.int64)
        targets[:n] = rows["chosen" if self.learn == "chosen" else "action"]
        text = np.full(t, -1, np.int64)
        text[:n] = rows["text"]
        loss = np.zeros(t, bool)
        loss[:n] = rows["loss_mask"]
        valid = np.zeros(t, bool)
        valid[:n] = True
        item = {"frames": torch.from_numpy(frames), "actions": torch.from_numpy(actions),
                "targets": torch.from_numpy(targets),
                "text": torch.from_numpy(text), "loss_mask": torch.from_numpy(loss),
                "valid": torch.from_numpy(valid), "episode": torch.tensor(episode, dtype=torch.int64),
                "start": torch.tensor(start, dtype=torch.int64)}
        if self.reader.aux_variables:
            aux = np.zeros((t, len(self.reader.aux_variables)), np.float32)
            aux[:n] = rows["aux"]
            item["aux"] = torch.from_numpy(aux)
        return item


class WindowBatches(Sampler):
    """Batches of window indices: a seeded shuffle (or the plain order) cut into batches.

    For data parallel training rank r of w keeps global batches r, r+w, r+2w, ..., and a
    resumed run passes over its first ``skip`` batches; both without reading any frame.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool = False,
                 rank: int = 0, world: int = 1, skip: int = 0):
        self.n, self.batch_size, self.shuffle, self.seed = int(n), int(batch_size), shuffle, int(seed)
        self.drop_last, self.rank, self.world, self.skip = drop_last, int(rank), int(world), int(skip)

    def _batches(self) -> list[list[int]]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed)
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = list(range(self.n))
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches[self.rank::self.world][self.skip:]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        total = full + (1 if rest and not self.drop_last else 0)
        return max(0, len(range(self.rank, total, self.world)) - self.skip)


def make_loader(path, split: str | None = "train", window: int = 32, batch_size: int = 8,
                shuffle: bool = True, seed: int = 0, workers: int = 2, stride: int | None = None,
                drop_last: bool = False, rank: int = 0, world: int = 1, skip: int = 0, jitter: bool = False,
                focus: int = 1, learn: str = "chosen"):
    """A torch DataLoader over WindowDataset; the same seed gives the same batches.

    ``rank``/``world`` keep one data-parallel rank's share of the batches and ``skip`` passes
    over that many of them (see WindowBatches). ``jitter`` cuts the windows at offsets drawn
    from ``seed`` (training: every epoch sees other windows); ``focus`` > 1 repeats the windows that
    hold a rare press that many times (see WindowDataset); ``learn`` picks the targets: the actions
    the actors chose (default) or the ones the emulator executed (they differ on perturbed steps).
    """
    from torch.utils.data import DataLoader

    dataset = WindowDataset(path, split=split, window=window, stride=stride, jitter_seed=seed if jitter else None,
                            focus=focus, learn=learn)
    if len(dataset) == 0:
        raise UserError(f"The {split!r} split of {path} has no episodes with a trained-on step (every step "
                        f"an agent's, or no episodes at all). Rebuild with more recordings or another "
                        f"--val-fraction, or load split=None for all episodes.")
    batches = WindowBatches(len(dataset), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                            rank=rank, world=world, skip=skip)
    generator = torch.Generator()  # seeds the worker processes
    generator.manual_seed(int(seed))
    return DataLoader(dataset, batch_sampler=batches, generator=generator, num_workers=workers,
                      persistent_workers=workers > 0, prefetch_factor=2 if workers > 0 else None)
