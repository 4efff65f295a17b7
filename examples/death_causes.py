"""What killed the agent: replay Outpost-Nes recordings and name the cause of every death.

    python examples/death_causes.py demo-out/eval/agent-*        # one line per recording, then totals
    python examples/death_causes.py demo-out/eval --json

Each recording is replayed from its start state (as replay-verify does) and, on the frame the
player dies, the cartridge's RAM (docs/cartridge.md) says where and how: progress (screen x 256 +
x), the player's top y, the terrain under the player, the enemy bullets near it, and for how many
frames A had been held, which life of the episode it was (0 = the first), and over the LOOKBACK
steps before it how often the actor *chose* A and how often A *ran* (they differ under sticky
actions: a chosen press can be replaced by the previous action). The cause is read in this order:
a laser ceiling (top y < 180 under `=` or `*`), a pit, an enemy bullet within 8 px, a mine, else an
enemy or other.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

A = 1 << 8
SCREEN, PLAYER_X, PLAYER_Y, PLAYER_STATE, TERRAIN = 0x64, 0x65, 0x16, 0x90, 0x300
ENEMY_BULLET_X, ENEMY_BULLET_ACTIVE = 0x7C, 0x80
LOOKBACK = 25  # steps before a death over which chosen and executed presses of A are counted


def causes(path: Path, emu) -> list[dict]:
    from contra_bc.formats.recording import read_recording

    rec = read_recording(path)
    emu.set_state(rec.start_state())
    emu.step(0, int(rec.meta.get("reset_frames", 1)))
    frames = int(rec.meta["frames_per_step"])
    actions, chosen = rec.actions, rec.chosen_actions  # each a column read from steps.parquet
    deaths, held = [], 0
    for i, action in enumerate(actions):
        held = held + 1 if action & A else 0
        alive = emu.ram()[PLAYER_STATE] != 2
        emu.step(int(action), frames)
        ram = emu.ram()
        if not (alive and ram[PLAYER_STATE] == 2):
            continue
        x, top = int(ram[PLAYER_X]), int(ram[PLAYER_Y])
        terrain = chr(ram[TERRAIN + min(31, (x + 4) // 8)])
        bullets = [int(ram[ENEMY_BULLET_X + k]) - x for k in range(2) if ram[ENEMY_BULLET_ACTIVE + k]]
        if top < 180 and terrain in "=*":
            cause = "laser ceiling"
        elif terrain == " ":
            cause = "pit"
        elif any(-8 <= dx <= 8 for dx in bullets):
            cause = "enemy bullet"
        elif terrain in "*^":
            cause = "mine"
        else:
            cause = "enemy or other"
        start = max(0, i + 1 - LOOKBACK)
        deaths.append({"progress": int(ram[SCREEN]) * 256 + x, "top_y": top, "terrain": terrain,
                       "cause": cause, "a_held_frames": held, "life": len(deaths),
                       "a_chosen_steps": int(np.count_nonzero(chosen[start:i + 1] & A)),
                       "a_ran_steps": int(np.count_nonzero(actions[start:i + 1] & A))})
    return deaths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recordings", nargs="+", type=Path, help="Outpost-Nes recordings or folders of them")
    ap.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = ap.parse_args()
    from contra_bc.emulator import Emulator
    from contra_bc.formats.recording import find_recordings

    from contra_bc.errors import UserError

    try:
        paths = find_recordings(args.recordings)
        emu = Emulator("Outpost-Nes")
    except UserError as exc:
        print(f"death_causes: {exc}", file=sys.stderr)
        return 2
    result, totals = {}, collections.Counter()
    for path in paths:
        result[str(path)] = causes(path, emu)
        totals.update(d["cause"] for d in result[str(path)])
        if not args.json:
            print(path.name, ", ".join(f"{d['progress']} {d['cause']} (A held {d['a_held_frames']}; "
                                       f"A chosen {d['a_chosen_steps']}, ran {d['a_ran_steps']} of the last {LOOKBACK} steps)"
                                       for d in result[str(path)]) or "no deaths")
    if args.json:
        print(json.dumps({"recordings": result, "totals": dict(totals)}))
    else:
        print("totals:", ", ".join(f"{k} {v}" for k, v in totals.most_common()) or "no deaths", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
