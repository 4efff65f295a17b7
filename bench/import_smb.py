#!/usr/bin/env python3
"""`import smb` throughput against decoding the same PNGs alone.

Baseline (measured in this run): open every frame PNG of an smbdataset-format episode and convert
it to RGB (what any reader of the dataset must do). Then `contra_bc.importer.import_smb` on the same
folder: parsing the names and chunks, repairing the RAM, decoding, hashing and writing the lossless
video and the steps table. The frames are written here in the dataset's format (indexed 256x240 PNG,
RAM/BP1/OUTCOME chunks after IEND, written as its Windows collector did). Measured (profile): about
two thirds of the import is encoding the recording's lossless video (~0.8 ms a frame), which a
recording needs and decoding alone does not do; hashing every frame comes next.

    python bench/import_smb.py [--frames 1200] [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_episode(folder: Path, frames: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    palette = rng.integers(0, 256, 192, dtype=np.uint8).tolist()
    # a game-like picture: big flat areas (the sky, the ground) and some detail, shifting as the level scrolls
    base = (rng.integers(0, 8, (240, 64), dtype=np.uint8).repeat(4, axis=1) // 4) * 4
    for f in range(1, frames + 1):
        index = np.roll(base, -f, axis=1).copy()
        index[200:] = 33
        image = Image.fromarray(index, mode="P")
        image.putpalette(palette)
        path = folder / f"bench_ab12cd34_e0_1-1_f{f}_a{(f * 7) % 256}_2021-03-04_10-20-00.win.png"
        image.save(path)
        ram = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
        with open(path, "ab") as fh:
            for key, value in (("RAM", ram), ("BP1", bytes([(f * 7) % 256])), ("OUTCOME", b"\x02")):
                raw = struct.pack(">I", len(key) + 1 + len(value)) + b"tEXt" + key.encode() + b"\x00" + value + bytes(4)
                fh.write(raw.replace(b"\n", b"\r\n"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from contra_bc.importer import import_smb

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        episode = tmp / "bench_ab12cd34_e0_1-1_win"
        write_episode(episode, args.frames)
        warm = tmp / "bench_ab12cd34_e1_1-1_win"
        write_episode(warm, 20)
        import_smb([warm], tmp / "warm")  # the imports of av, pyarrow and PIL plugins out of the timing
        files = sorted(episode.iterdir())
        t0 = time.perf_counter()
        for p in files:
            np.asarray(Image.open(p).convert("RGB"))
        decode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        import_smb([episode], tmp / "out")
        import_s = time.perf_counter() - t0
    result = {"frames": args.frames, "decode_fps": round(args.frames / decode_s, 1),
              "import_fps": round(args.frames / import_s, 1), "import_vs_decode_ratio": round(decode_s / import_s, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"decode only: {result['decode_fps']} frames/s; import smb: {result['import_fps']} frames/s "
              f"({result['import_vs_decode_ratio']}x)")


if __name__ == "__main__":
    main()
