#!/usr/bin/env python3
"""The play loop's decision latency, and the KV cache against full recompute.

Measures, in one process on this CPU (torch with 1 thread, as `contra-bc play` runs):

1. The full play loop of `contra_bc.play` (emulator step + preprocess_frame + Policy.act with
   its KV cache) for the `small` preset: decision latency p50/p99 (preprocess + act) and the
   whole step. Goal: decision p99 < 50 ms (a 20 Hz agent).
2. At history 200 (the paper's), once the cache holds a full window: one cached decision
   against recomputing the window from scratch (the same model's teacher-forced forward over
   the last 200 steps, image encoder included, which is what a policy without a cache does).
   Reported as a speedup ratio, both measured here.

Weights are random (latency does not depend on them); frames come from the real emulator.

    python bench/play_latency.py [--game Outpost-Nes] [--steps 200] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_checkpoint(run: Path, game_name: str, preset: str, history: int | None = None) -> Path:
    import torch

    from contra_bc.emulator import get_game
    from contra_bc.formats.checkpoint import save_checkpoint
    from contra_bc.model.actions import ActionSchema
    from contra_bc.model.model import PRESETS, build_model
    from contra_bc.model.text import HASHED_ID

    game = get_game(game_name)
    cfg = dataclasses.replace(PRESETS[preset], **({"history": history} if history else {}))
    schema = ActionSchema.from_buttons(game.buttons)
    torch.manual_seed(0)
    model = build_model(cfg, schema)
    save_checkpoint(run, 0, {"model": dataclasses.asdict(cfg), "action_schema": schema.to_json(),
                             "dataset": {"game": game.name, "hz": 20.0, "frames_per_step": 1},
                             "text_encoder": {"id": HASHED_ID, "dim": 384}, "texts": []},
                    {"model": model.state_dict(), "text_table": {"embeddings": torch.zeros(0, 384)}}, {})
    return run


def pct(xs, q):
    import numpy as np

    return round(float(np.percentile(np.asarray(xs), q)), 2)


def play_loop(checkpoint: Path, game_name: str, steps: int) -> dict:
    """The loop of contra_bc.play.play_episode, timed per part."""
    from contra_bc.emulator import get_game
    from contra_bc.episode import EpisodeRunner
    from contra_bc.parallel import shared_emulator
    from contra_bc.play import PolicyActor, load_checked_policy

    game = get_game(game_name)
    policy = load_checked_policy(str(checkpoint), game_name)
    actor = PolicyActor(policy, temperature=1.0, seed=0, instruction=None)
    runner = EpisodeRunner(shared_emulator(game), frames_per_step=1, until="never")
    screen = runner.reset(game.default_state)
    actor.reset(runner.emu)
    whole = []
    for _ in range(steps):
        t0 = time.perf_counter()
        action = actor.act(runner.emu, screen)
        runner.step(action, "agent")
        screen = runner.emu.screen()
        whole.append((time.perf_counter() - t0) * 1000.0)
    warm = 10  # the first decisions allocate the cache
    lat = actor.latencies_ms[warm:]
    return {"decision_ms_p50": pct(lat, 50), "decision_ms_p99": pct(lat, 99),
            "step_ms_p50": pct(whole[warm:], 50), "step_ms_p99": pct(whole[warm:], 99),
            "history": policy.history, "steps": steps}


def cache_vs_full(checkpoint: Path, game_name: str, repeats: int) -> dict:
    """One cached act() against a full teacher-forced forward over `history` steps."""
    import numpy as np
    import torch

    from contra_bc.emulator import get_game
    from contra_bc.parallel import shared_emulator
    from contra_bc.play import load_checked_policy
    from contra_bc.preprocess import preprocess_frame

    game = get_game(game_name)
    policy = load_checked_policy(str(checkpoint), game_name)
    emu = shared_emulator(game)
    emu.reset(game.default_state)
    history = policy.history
    frames, actions = [], []
    rng = np.random.default_rng(0)
    for _ in range(history):
        frames.append(preprocess_frame(emu.screen(), policy.frame_size))
        action = int(rng.integers(0, 1 << 8)) & policy.schema.known_mask
        actions.append(action)
        emu.step(action)
    policy.reset()
    for f, a in zip(frames, actions):  # fill the cache with a full window
        policy.act(f)
        policy.observe_action(a)
    cached = []
    for i in range(repeats * 5):
        t0 = time.perf_counter()
        _, _ = policy.act(frames[i % history])
        cached.append((time.perf_counter() - t0) * 1000.0)
        policy.observe_action(actions[i % history])
    batch = {"frames": torch.from_numpy(np.stack(frames))[None], "actions": torch.tensor([actions]),
             "text": torch.full((1, history), -1), "valid": torch.ones(1, history, dtype=torch.bool),
             "loss_mask": torch.ones(1, history, dtype=torch.bool)}
    full = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            policy.model.action_logits(batch)
            full.append((time.perf_counter() - t0) * 1000.0)
    return {"history": history, "cached_ms_p50": pct(cached, 50), "full_recompute_ms_p50": pct(full, 50),
            "cache_speedup": round(float(np.median(full) / np.median(cached)), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--game", default=None, help="default: Outpost-Nes if its ROM is built, else Airstriker")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from contra_bc.emulator import get_game, rom_path

    if args.game is None:
        args.game = "Outpost-Nes" if rom_path(get_game("Outpost-Nes")) else "Airstriker-Genesis-v0"
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        small = make_checkpoint(Path(tmp) / "small", args.game, "small")
        small200 = make_checkpoint(Path(tmp) / "small-h200", args.game, "small", history=200)
        loop = play_loop(small, args.game, args.steps)
        loop200 = play_loop(small200, args.game, args.steps)
        compare = cache_vs_full(small200, args.game, args.repeats)
    result = {
        "game": args.game,
        "machine_threads": torch.get_num_threads(),
        "small": loop,
        "small_history200": loop200,
        "cache_vs_full_h200": compare,
        "decision_p99_goal_ms": 50.0,
        "decision_p99_ms": loop["decision_ms_p99"],
        "cache_speedup": compare["cache_speedup"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"small preset (history {loop['history']}), full play loop on {args.game}, {args.steps} steps:")
    print(f"  decision (preprocess + act) p50 {loop['decision_ms_p50']} ms, p99 {loop['decision_ms_p99']} ms "
          f"(goal p99 < 50 ms); whole step p50 {loop['step_ms_p50']} ms, p99 {loop['step_ms_p99']} ms")
    print(f"small at history 200: decision p50 {loop200['decision_ms_p50']} ms, p99 {loop200['decision_ms_p99']} ms")
    print(f"history 200: cached step {compare['cached_ms_p50']} ms vs full recompute "
          f"{compare['full_recompute_ms_p50']} ms -> SPEEDUP {compare['cache_speedup']}x")


if __name__ == "__main__":
    main()
