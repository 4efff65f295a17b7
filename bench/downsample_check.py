#!/usr/bin/env python3
"""downsample-check throughput against the bare emulator loop (goal >= 0.5x), same run.

    python bench/downsample_check.py [--game Airstriker-Genesis-v0] [--steps 1500]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from _baseline import emulator_bench_args, record_and_time_bare_loop

    args = emulator_bench_args()
    from contra_bc.downsample import DownsampleJob, check

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec"
        rec, _, _, bare_s = record_and_time_bare_loop(args.game, args.input, args.steps, path, hz=60)
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
