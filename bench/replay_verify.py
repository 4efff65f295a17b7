#!/usr/bin/env python3
"""replay-verify throughput against the bare emulator loop, and the recorder's cost per step.

Prints ratios measured in this run (goal: replay-verify >= 0.75x the bare loop;
the recorder must leave a 50 ms tick mostly idle).

    python bench/replay_verify.py [--game Airstriker-Genesis-v0] [--steps 1500]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from _baseline import emulator_bench_args, record_and_time_bare_loop

    args = emulator_bench_args()
    from contra_bc.episode import EpisodeRunner
    from contra_bc.replay import VerifyJob, verify

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec"
        rec, emu, record_s, bare_s = record_and_time_bare_loop(args.game, args.input, args.steps, path)
        n = rec.n_steps
        actions = rec.actions.tolist()

        t0 = time.perf_counter()
        result = verify(VerifyJob(str(path)))
        verify_s = time.perf_counter() - t0
        assert result["status"] == "verified", result

        # recorder per-step cost: step + row + video encode, without pacing
        runner = EpisodeRunner(emu, until="never")
        frame = runner.reset(rec.start_state())
        writer = runner.open_writer(Path(tmp) / "rec2", source="script", source_detail="bench", hz=20)
        t0 = time.perf_counter()
        for a in actions:
            writer.add(frame, runner.step(a, "script"))
            frame = emu.screen()
        writer.finish("none", complete=True, end_reason="bench")
        per_step_ms = (time.perf_counter() - t0) / n * 1000

    rows = {
        "steps": n,
        "bare_loop_steps_per_s": round(n / bare_s, 1),
        "replay_verify_steps_per_s": round(n / verify_s, 1),
        "replay_verify_ratio": round(bare_s / verify_s, 3),
        "replay_verify_goal": 0.75,
        "recorder_ms_per_step": round(per_step_ms, 3),
        "recorder_tick_fraction_at_20hz": round(per_step_ms / 50.0, 4),
        "headless_record_steps_per_s": round(n / record_s, 1),
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"replay-verify bench on {args.game}, {n} steps")
    for k, v in rows.items():
        print(f"  {k:34s} {v}")
    print(f"RATIO replay_verify_vs_bare {rows['replay_verify_ratio']:.3f} (goal >= 0.75)")
    print(f"RATIO recorder_tick_fraction {rows['recorder_tick_fraction_at_20hz']:.4f} (of a 50 ms tick)")


if __name__ == "__main__":
    main()
