"""Decision latency of the `small` policy at history 200: KV cache vs full recompute.

Prints p50/p99 per decision for
  - cached:   Policy.act() (one backbone pass over the new tokens against the KV cache),
  - full:     a full teacher-forced forward over the last `history` steps per decision
              (what a policy without a cache must do; all frames re-encoded),
  - full-tf:  the same, but with the image tokens cached (transformer + decoder only),
and the ratios full/cached. The goal: cached p99 < 50 ms (20 Hz) on one CPU core.

    PYTHONPATH=. python bench/decision_latency.py [--history 200] [--steps 260] [--threads 1]
"""

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np
import torch

from contra_bc.model.actions import ActionSchema
from contra_bc.model.model import PRESETS, PolicyModel
from contra_bc.model.policy import Policy

NES = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--history", type=int, default=200)
    ap.add_argument("--steps", type=int, default=260, help="decisions with the cache (the first `history` fill it)")
    ap.add_argument("--full-reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="Print one JSON object (for bench/run_all).")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = dataclasses.replace(PRESETS[a.preset], history=a.history)
    model = PolicyModel(cfg, ActionSchema.from_buttons(NES)).eval()
    policy = Policy(model, {"dataset": {}, "texts": [], "text_encoder": {"id": "hashed-bow-v1", "dim": 384}})
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (a.history, 192, 192, 3), dtype=np.uint8)
    gen = torch.Generator().manual_seed(0)
    cached = []
    policy.reset(instruction="Destroy the turret")
    for t in range(a.steps):
        _, info = policy.act(frames[t % a.history], generator=gen)
        cached.append(info["latency_ms"])
    steady = cached[a.history:] or cached[len(cached) // 2:]

    T = a.history
    batch = {"frames": torch.from_numpy(frames)[None], "actions": torch.zeros(1, T, dtype=torch.long),
             "text": torch.full((1, T), -1), "valid": torch.ones(1, T, dtype=torch.bool)}
    full, full_tf = [], []
    with torch.inference_mode():
        for _ in range(a.full_reps):
            t0 = time.perf_counter()
            h, targets = model.a_in_states(batch)
            model.decoder.sample(h[:, -1])
            full.append((time.perf_counter() - t0) * 1000)
        img = model.image(batch["frames"][0])  # cache the image tokens once
        orig = model.image.forward
        model.image.forward = lambda f: img[: f.shape[0]]
        try:
            for _ in range(a.full_reps):
                t0 = time.perf_counter()
                h, _ = model.a_in_states(batch)
                model.decoder.sample(h[:, -1])
                full_tf.append((time.perf_counter() - t0) * 1000)
        finally:
            model.image.forward = orig
    load = os.getloadavg()[0]
    if a.json:
        import json

        print(json.dumps({"preset": a.preset, "history": a.history, "cached_p50_ms": pct(steady, 50),
                          "cached_p99_ms": pct(steady, 99), "full_p50_ms": pct(full, 50),
                          "cache_speedup": pct(full, 50) / pct(steady, 50), "goal_p99_ms": 50}, indent=2))
        return
    print(f"preset {a.preset}, history {a.history}, threads {a.threads}, cpus {os.cpu_count()}, load avg {load:.1f}")
    print(f"{'mode':<34}{'p50 ms':>10}{'p99 ms':>10}{'n':>6}")
    rows = [("cached (Policy.act)", steady), ("full recompute (all frames)", full),
            ("full recompute (image tokens cached)", full_tf)]
    for name, xs in rows:
        print(f"{name:<34}{pct(xs, 50):>10.1f}{pct(xs, 99):>10.1f}{len(xs):>6}")
    c50 = pct(steady, 50)
    print(f"ratio full/cached (p50): {pct(full, 50) / c50:.1f}x all frames, {pct(full_tf, 50) / c50:.1f}x image tokens cached")
    print(f"20 Hz goal (cached p99 < 50 ms): {'met' if pct(steady, 99) < 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
