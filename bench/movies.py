#!/usr/bin/env python3
"""Movie import and export cost against recording the same actions from a CSV file.

Baseline (measured in this run): `record --input actions.csv` at the console frame rate. Then the recording is
exported as .bk2 and imported again. Goal: importing a movie runs at >= 0.9x the speed of
the CSV baseline (parsing and frame mapping cost little next to the emulator and video).

    python bench/movies.py [--steps 1500] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--game", default="Airstriker-Genesis-v0")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numpy as np

    from contra_bc.emulator import platform_buttons
    from contra_bc.formats.movies import read_movie
    from contra_bc.movies import export_recording
    from contra_bc.parallel import shared_emulator
    from contra_bc.record.scripted import RecordJob, record_job

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        actions = rng.integers(0, 1 << 12, args.steps) & ~(1 << 3)  # no START: no pause
        (tmp / "actions.csv").write_text("action\n" + "\n".join(map(str, actions)) + "\n")

        # Warm up (creates the emulator), then record the CSV at the movie's own rate, so the
        # baseline writes the same video at the same fps and only the movie handling differs.
        record_job(RecordJob(args.game, None, str(tmp / "actions.csv"), str(tmp / "warm"), until="never",
                             max_steps=20))
        frame_rate = shared_emulator(args.game).frame_rate
        t0 = time.perf_counter()
        record_job(RecordJob(args.game, None, str(tmp / "actions.csv"), str(tmp / "csv"), hz=frame_rate,
                             until="never", max_steps=args.steps))
        csv_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        export_recording(tmp / "csv", tmp / "run.bk2")
        export_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        read_movie(tmp / "run.bk2", platform_buttons)
        parse_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        record_job(RecordJob(args.game, None, str(tmp / "run.bk2"), str(tmp / "movie"), until="never",
                             max_steps=args.steps))
        import_s = time.perf_counter() - t0

    result = {
        "steps": args.steps,
        "csv_record_s": round(csv_s, 3),
        "bk2_import_s": round(import_s, 3),
        "bk2_parse_s": round(parse_s, 4),
        "bk2_export_s": round(export_s, 3),
        "import_speed_ratio": round(csv_s / import_s, 3),
        "goal": ">= 0.9",
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22s} {v}")


if __name__ == "__main__":
    main()
