"""Training throughput of `tiny` and `small` on this CPU; parameters and FLOPs per step of every preset.

Throughput: real optimizer steps (forward, backward, AdamW) on synthetic uint8 frames of the
dataset's shape, batch 4 × window = the preset's history, augmentation on. FLOPs: counted by
torch's FlopCounterMode over one training forward+backward on the meta device (no memory,
no time), for batch 1 × history, so the presets compare at their own context length.

    PYTHONPATH=. python bench/train.py [--steps 3] [--threads 2]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch

from contra_bc.model.actions import ActionSchema
from contra_bc.model.augment import augment_frames
from contra_bc.model.model import PRESETS, PolicyModel

NES = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]


def batch_for(B, T, device="cpu"):
    g = torch.Generator().manual_seed(0)
    mk = (lambda *s, **k: torch.zeros(*s, **k, device="meta")) if device == "meta" else None
    if device == "meta":
        return {"frames": mk(B, T, 192, 192, 3, dtype=torch.uint8), "actions": mk(B, T, dtype=torch.long),
                "text": mk(B, T, dtype=torch.long), "loss_mask": mk(B, T, dtype=torch.bool),
                "valid": mk(B, T, dtype=torch.bool)}
    return {"frames": torch.randint(0, 256, (B, T, 192, 192, 3), dtype=torch.uint8, generator=g),
            "actions": torch.randint(0, 512, (B, T), generator=g) & 0b111111101,
            "text": torch.full((B, T), -1), "loss_mask": torch.ones(B, T, dtype=torch.bool),
            "valid": torch.ones(B, T, dtype=torch.bool)}


def flops_and_params(name):
    from torch.utils.flop_counter import FlopCounterMode

    cfg = PRESETS[name]
    with torch.device("meta"):
        model = PolicyModel(cfg, ActionSchema.from_buttons(NES))
    params = sum(p.numel() for p in model.parameters())
    image = sum(p.numel() for p in model.image.parameters())
    batch = batch_for(1, cfg.history, "meta")
    try:
        with FlopCounterMode(display=False) as fc:
            loss, _ = model.loss(batch)
            loss.backward()
        flops = fc.get_total_flops()
    except Exception as exc:  # meta tracing not supported by some op: say so rather than guess
        flops = None
        print(f"  ({name}: FLOP count failed: {type(exc).__name__}: {exc})")
    return params, image, flops


def throughput(name, steps, B=4):
    cfg = PRESETS[name]
    torch.manual_seed(0)
    model = PolicyModel(cfg, ActionSchema.from_buttons(NES)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    batch = batch_for(B, cfg.history)
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = model.loss(batch, frames=augment_frames(batch["frames"], gen))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - t0)
    per_step = sorted(times)[len(times) // 2]
    return B / per_step, B * cfg.history / per_step, per_step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="Print one JSON object (for bench/run_all).")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.json:
        import json

        out = {"presets": {}}
        for name in PRESETS:
            params, _, flops = flops_and_params(name)
            out["presets"][name] = {"params": params, "tflop_per_step": None if flops is None else flops / 1e12}
        for name in ("tiny", "small"):
            out["presets"][name]["train_frames_per_s"] = throughput(name, a.steps)[1]
        out["small_vs_tiny_frames_ratio"] = out["presets"]["small"]["train_frames_per_s"] / \
            out["presets"]["tiny"]["train_frames_per_s"]
        print(json.dumps(out, indent=2))
        return
    print(f"threads {a.threads}, cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"{'preset':<7}{'layers':>7}{'width':>7}{'heads':>6}{'history':>8}{'params':>14}{'of which CNN':>14}"
          f"{'TFLOP/step (1×history)':>24}")
    for name, cfg in PRESETS.items():
        params, image, flops = flops_and_params(name)
        f = f"{flops / 1e12:.4f}" if flops is not None else "n/a"
        print(f"{name:<7}{cfg.n_layers:>7}{cfg.d_model:>7}{cfg.n_heads:>6}{cfg.history:>8}{params:>14,}{image:>14,}{f:>24}")
    print()
    print(f"{'preset':<7}{'windows/s':>11}{'frames/s':>10}{'s/step':>8}  (batch 4 × history, fwd+bwd+AdamW)")
    rows = {}
    for name in ("tiny", "small"):
        w, f, s = throughput(name, a.steps)
        rows[name] = f
        print(f"{name:<7}{w:>11.2f}{f:>10.1f}{s:>8.2f}")
    print(f"frames/s ratio tiny/small: {rows['tiny'] / rows['small']:.1f}x; small trains on "
          f"{rows['small'] / 20:.2f} s of 20 Hz gameplay per second")


if __name__ == "__main__":
    main()
