#!/usr/bin/env python3
"""downsample-check throughput against the bare emulator loop (goal >= 0.5x), same run.

    python bench/downsample_check.py [--game Airstriker-Genesis-v0] [--steps 1500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--game", default="Airstriker-Genesis-v0")
    ap.add_argument("--input", default="bot:random")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from contra_bc.downsample import DownsampleJob, check
    from contra_bc.emulator import digest64
    from contra_bc.formats.recording import read_recording
    from contra_bc.parallel import shared_emulator
    from contra_bc.record.scripted import RecordJob, record_job

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec"
        record_job(RecordJob(args.game, None, args.input, str(path), hz=60, max_steps=args.steps, until="never"))
        rec = read_recording(path)
        emu = shared_emulator(args.game)
        emu.reset(rec.start_state())
        t0 = time.perf_counter()
        for a in rec.actions.tolist():
            emu.step(a)
            digest64(emu.screen())
            digest64(emu.ram())
        bare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = check(DownsampleJob(str(path), report_dir=str(Path(tmp) / "rep")))
        check_s = time.perf_counter() - t0
        assert result["status"] == "ok", result
    rows = {"steps": rec.n_steps, "bare_loop_steps_per_s": round(rec.n_steps / bare_s, 1),
            "downsample_steps_per_s": round(result["pooled_steps"] / check_s, 1),
            "downsample_ratio": round((result["pooled_steps"] / check_s) / (rec.n_steps / bare_s), 3),
            "goal": 0.5}
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for k, v in rows.items():
        print(f"  {k:26s} {v}")
    print(f"RATIO downsample_vs_bare {rows['downsample_ratio']:.3f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
