#!/usr/bin/env python3
"""Where in the level does a policy miss the demonstrator's button presses?

Runs the policy along held-out demonstrations (recordings it was not trained on), conditioned on
the demonstrator's actions (teacher forcing, through the same KV-cached path as `play`), and
prints, per button and per stretch of the level (progress bins), the probability the policy gave
a press at the steps where the demonstrator pressed, and the best within +-3 steps. A stretch
where both are low is a decision the policy has not learned, whatever per-button accuracy says.

    contra-bc record --input bot:expert-steady --game Outpost-Nes --hz 20 --episodes 4 --seed 7000 --out probe
    python examples/press_probe.py demo-out/run probe --button A --bin 32

Use seeds that made no training data (the demo's bots use 1000+ and 2000+).

By sight or by place? `--hide-enemy-bullets` (Outpost-Nes) runs the policy a second time on the same
frames with the two enemy bullets painted over (their x read from the recording's RAM columns) and
adds that column: a press that keeps its probability without the bullet it hops was learned by place.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("run", help="RUN dir or checkpoint")
    ap.add_argument("recordings", nargs="+", help="recordings or folders of them (held out)")
    ap.add_argument("--button", default="A")
    ap.add_argument("--bin", type=int, default=32, help="progress units per stretch (Outpost: 256 per screen)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more than free cores slows everything)")
    ap.add_argument("--hide-enemy-bullets", action="store_true",
                    help="Outpost-Nes: also score the frames with the enemy bullets painted over")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from contra_bc.emulator import get_game, progress_of
    from contra_bc.formats.recording import find_recordings, read_recording
    from contra_bc.model.policy import load_policy
    torch.set_num_threads(args.threads)
    policy = load_policy(args.run)
    if args.button not in policy.buttons:
        sys.exit(f"press_probe: the policy has no button {args.button!r} (it has {[b for b in policy.buttons if b]})")
    position = policy.buttons.index(args.button)
    bit = 1 << position
    at_edge = collections.defaultdict(list)
    quiet = []
    for path in find_recordings([Path(p) for p in args.recordings]):
        rec = read_recording(path)
        game = get_game(rec.meta["game"])
        actions = rec.actions
        variables = {name: rec.column(f"var_{name}") for name in rec.meta["variables"]}
        progress = np.array([progress_of(game, {k: int(v[i]) for k, v in variables.items()})
                             for i in range(rec.n_steps)])
        frames = list(rec.frames())
        p_press = run_policy(policy, frames, actions, position)
        if args.hide_enemy_bullets:
            if not all(f"enemy_bullet_{v}_{k}" in variables for v in ("x", "on") for k in (0, 1)):
                sys.exit(f"press_probe: {path} has no enemy bullet columns (--hide-enemy-bullets is for Outpost-Nes)")
            hidden = [hide_enemy_bullets(frame, [(int(variables[f"enemy_bullet_x_{k}"][i]),
                                                  int(variables[f"enemy_bullet_on_{k}"][i])) for k in (0, 1)])
                      for i, frame in enumerate(frames)]
            p_hidden = run_policy(policy, hidden, actions, position)
        held = (actions & bit) != 0
        edges = np.flatnonzero(held[1:] & ~held[:-1]) + 1
        for e in edges:
            near = slice(max(0, e - 3), e + 4)
            at_edge[int(progress[e]) // args.bin * args.bin].append(
                (p_press[e], p_press[near].max(), p_hidden[near].max() if args.hide_enemy_bullets else None))
        away = np.ones(rec.n_steps, bool)
        for e in edges:
            away[max(0, e - 8):e + 8] = False
        quiet.append(p_press[away].mean() if away.any() else 0.0)
    rows = [{"progress_from": k, "presses": len(v), "p_at_press": round(float(np.mean([a for a, _, _ in v])), 3),
             "p_best_within_3": round(float(np.mean([b for _, b, _ in v])), 3)} for k, v in sorted(at_edge.items())]
    if args.hide_enemy_bullets:
        for row, (_, v) in zip(rows, sorted(at_edge.items())):
            row["p_best_within_3_bullets_hidden"] = round(float(np.mean([c for _, _, c in v])), 3)
    result = {"button": args.button, "p_away_from_presses": round(float(np.mean(quiet)), 4), "stretches": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"P({args.button}) away from the demonstrator's presses: {result['p_away_from_presses']}")
    hide = args.hide_enemy_bullets
    print(f"{'progress':>9} {'presses':>8} {'P at press':>11} {'best +-3':>9}" + (f" {'no bullets':>11}" if hide else ""))
    for r in rows:
        print(f"{r['progress_from']:>9} {r['presses']:>8} {r['p_at_press']:>11.2f} {r['p_best_within_3']:>9.2f}"
              + (f" {r['p_best_within_3_bullets_hidden']:>11.2f}" if hide else ""))


def run_policy(policy, frames, actions, position: int) -> np.ndarray:
    """P(press) at every step, the policy fed the frames and told the recorded (executed) actions."""
    from contra_bc.preprocess import preprocess_frame

    policy.reset()
    p_press = np.zeros(len(frames))
    for i, frame in enumerate(frames):
        _, info = policy.act(preprocess_frame(frame, policy.frame_size))
        policy.observe_action(int(actions[i]))
        p_press[i] = press_probability(policy, info, position)
    return p_press


BULLET_RGB = (216, 40, 0)  # Outpost's enemy bullet (the mines hold this red too: only near the bullet's x is painted)


def hide_enemy_bullets(frame: np.ndarray, bullets) -> np.ndarray:
    """The screen with each active enemy bullet (RAM x, active) painted black, the background behind it.
    A turret's bullet flies at y 202-205 (screen rows 194-199); its 4-px sprite lies within screen
    columns x-9..x+1 of the x in the step's row (x-4..x-1 on the frame the row was read with, x-7..x-4
    on the one before: the box covers both)."""
    out = frame.copy()
    for x, on in bullets:
        if on:
            box = out[186:206, max(0, x - 9):max(0, x + 2)]
            box[(box == BULLET_RGB).all(-1)] = 0
    return out


def press_probability(policy, info, position: int) -> float:
    """P(the button at bit ``position`` is down) from act()'s per-group class probabilities
    (a class is the sub-bitmask of its group's buttons; groups are sampled in order, so this is
    the probability given the groups sampled before it)."""
    for group in policy.schema.groups:
        if position in group.bits:
            j = group.bits.index(position)
            probs = np.asarray(info["probs"][group.name]).reshape(-1)
            return float(sum(p for cls, p in enumerate(probs) if (cls >> j) & 1))
    return 0.0


if __name__ == "__main__":
    main()
