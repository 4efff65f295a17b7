"""Benchmark build-dataset and the training loader against baselines measured in the same run.

    PYTHONPATH=. python bench/build_dataset.py                 # records 2 x 600 Airstriker steps first
    PYTHONPATH=. python bench/build_dataset.py --recordings runs/expert --workers 2

Prints:
  * build throughput (frames/s) vs plain video decoding of the same recordings
    (Recording.frames(), one process) -> ratio, goal >= 0.5x;
  * frame storage: raw uint8 in parquet+zstd (what the dataset stores) vs one PNG per
    frame, bytes per frame and decode frames/s;
  * loader windows/s for T=32, batch 8 (workers 0 and 2), vs reading the same rows'
    frames straight from the shards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the contra-bc CLI sets it, before numpy loads

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def record(base: Path, episodes: int, steps: int) -> Path:
    out = base / "recs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "contra_bc", "record", "--input", "bot:airstriker", "--game",
                    "Airstriker-Genesis-v0", "--out", str(out), "--episodes", str(episodes), "--max-steps",
                    str(steps), "--episode-until", "never"], check=True, env=env, capture_output=True)
    return out


def decode_baseline(paths) -> tuple[int, float]:
    from contra_bc.formats.recording import read_recording

    n = sum(read_recording(p).n_steps for p in paths)
    return n, best_of(lambda: [f for p in paths for f in read_recording(p).frames()])


def timed_build(inputs, out: Path, workers: int) -> tuple[int, float]:
    from contra_bc.dataset.build import BuildOptions, build_dataset

    t = time.perf_counter()
    report = build_dataset(inputs, out, BuildOptions(workers=workers, quality=_no_filter()), log=lambda m: None)
    return report["frames_added"], time.perf_counter() - t


def _no_filter():
    from contra_bc.dataset.quality import QualityFilter

    return QualityFilter(enabled=False)


def best_of(fn, repeat: int = 3) -> float:
    """Fastest of a few runs: the machine is shared, the minimum is the least disturbed."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


RESULTS: dict = {}
QUIET = False


def say(line: str) -> None:
    if not QUIET:
        print(line, flush=True)


def storage(dataset: Path) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    from contra_bc.dataset.loader import DatasetReader

    ds = DatasetReader(dataset)
    shard = dataset / ds.episodes[0]["data_file"]
    n = ds.episodes[0]["length"]
    def read_raw():
        col = pq.read_table(shard, columns=["frame"]).column("frame").combine_chunks()
        return np.frombuffer(col.buffers()[1], np.uint8).reshape((n,) + ds.frame_shape).copy()

    raw_s = best_of(read_raw)
    frames = read_raw()
    raw_bytes = os.path.getsize(shard) / n
    say(f"storage raw uint8 + parquet zstd-3: {raw_bytes:8.0f} bytes/frame, decode {n / raw_s:8.0f} frames/s")
    RESULTS["storage_raw_bytes_per_frame"] = round(raw_bytes)
    RESULTS["storage_raw_decode_fps"] = round(n / raw_s)
    for level in (1, 6):
        pngs = []
        for f in frames:
            b = io.BytesIO()
            Image.fromarray(f).save(b, format="PNG", compress_level=level)
            pngs.append(b.getvalue())
        png_s = best_of(lambda: [np.asarray(Image.open(io.BytesIO(p))) for p in pngs])
        back = [np.asarray(Image.open(io.BytesIO(p))) for p in pngs]
        assert all(np.array_equal(a, b) for a, b in zip(back, frames))
        say(f"storage PNG level {level} per frame:    {sum(map(len, pngs)) / n:8.0f} bytes/frame, "
            f"decode {n / png_s:8.0f} frames/s  (raw is {png_s / raw_s:.1f}x faster)")
        RESULTS[f"storage_png{level}_bytes_per_frame"] = round(sum(map(len, pngs)) / n)
        RESULTS[f"storage_raw_vs_png{level}_decode_speedup"] = round(png_s / raw_s, 3)


def loader(dataset: Path, window: int = 32, batch: int = 8) -> None:
    from contra_bc.dataset.loader import DatasetReader, make_loader

    ds = DatasetReader(dataset)
    rows = sum(e["length"] for e in ds.episodes)
    base = best_of(lambda: [DatasetReader(dataset).read(e["episode_index"], 0, e["length"]) for e in ds.episodes])
    say(f"baseline: sequential read of all {rows} rows: {rows / window / base:8.1f} windows/s (T={window})")
    RESULTS["sequential_read_windows_per_s"] = round(rows / window / base, 1)
    for workers in (0, 2):
        dl = make_loader(dataset, split=None, window=window, batch_size=batch, shuffle=True, seed=0, workers=workers)
        t = time.perf_counter()
        windows = 0
        for _ in range(2):
            for b in dl:
                windows += b["frames"].shape[0]
        s = time.perf_counter() - t
        say(f"loader T={window} batch={batch} workers={workers}: {windows / s:8.1f} windows/s "
            f"({windows * window / s:8.0f} frames/s, {windows / s / (rows / window / base):.2f}x sequential read)")
        RESULTS[f"loader_workers{workers}_windows_per_s"] = round(windows / s, 1)
        RESULTS[f"loader_workers{workers}_vs_sequential_ratio"] = round(windows / s / (rows / window / base), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=Path, nargs="*")
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="Print one JSON object (for bench/run_all).")
    args = ap.parse_args()
    global QUIET
    QUIET = args.json
    from contra_bc.formats.recording import find_recordings

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = args.recordings or [record(tmp, args.episodes, args.steps)]
        paths = find_recordings(inputs)
        n, dec = decode_baseline(paths)
        say(f"baseline: plain video decode of {len(paths)} recordings: {n} frames in {dec:.2f} s = {n / dec:8.0f} frames/s")
        RESULTS["decode_fps"] = round(n / dec)
        for w in sorted({1, args.workers}):
            # fastest of three builds, as the baseline is the fastest of three decodes
            m, s = min((timed_build(inputs, tmp / f"ds{w}-{r}", w) for r in range(3)), key=lambda ms: ms[1])
            say(f"build-dataset workers={w}: {m} frames in {s:.2f} s = {m / s:8.0f} frames/s  "
                f"ratio {m / s / (n / dec):.2f}x of decode (goal >= 0.5x)")
            RESULTS[f"build_workers{w}_fps"] = round(m / s)
            RESULTS[f"build_workers{w}_vs_decode_ratio"] = round(m / s / (n / dec), 3)
            RESULTS[f"build_workers{w}_vs_decode_goal"] = 0.5
        storage(tmp / f"ds{args.workers}-0")
        loader(tmp / f"ds{args.workers}-0")
    if args.json:
        print(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()
