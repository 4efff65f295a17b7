"""Write tests/data/outpost_cases.json: input sequences that make Outpost show Contra's hard cases.

`last_life_gate`: from Level2.state, run right into the first pit twice (the last life), let
`bot:expert` (seed 0) reach the gate screen and kill the turret, dodge its last bullets, stand
under the laser ceiling at x=115 and tap B every 4 frames; the search picks the frame to jump
into the laser so that the gate dies (a shot in flight since 15 frames) on the frame the player
dies. The game then finishes the death and shows GAME OVER, as Contra does.

One frame per action. Deterministic: reruns write the same file. The attract demo needs no
inputs (power-on, nothing pressed). Usage: PYTHONPATH=. python cartridge/make_cases.py
"""
from __future__ import annotations

import json
from pathlib import Path

from contra_bc.bots.expert_outpost import ExpertOutpost
from contra_bc.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "outpost_cases.json"
B, LEFT, RIGHT, A = 1 << 0, 1 << 6, 1 << 7, 1 << 8
LIVES, BOSS, SCREEN, PX, ETYPE, PSTATE, ON_GROUND = 0x32, 0x3B, 0x64, 0x65, 0x40, 0x90, 0x1B
EBX, EBACT = 0x7C, 0x80
STAND_X, MINE_TAKEOFF_X, FIRE_EVERY = 115, 72, 4


def last_life_gate(emu: Emulator) -> list[int]:
    emu.reset("Level2")
    actions: list[int] = []

    def step(action: int) -> None:
        actions.append(action)
        emu.step(action)
        assert emu.ram()[PSTATE] != 2, "the player died before the planned death"

    while not (emu.ram()[LIVES] == 0 and emu.ram()[PSTATE] == 1):
        actions.append(RIGHT)
        emu.step(RIGHT)
    bot = ExpertOutpost(seed=0)
    bot.reset(emu)
    while True:
        ram = emu.ram()
        if ram[SCREEN] == 4 and 2 not in ram[ETYPE:ETYPE + 4] and ram[PSTATE] == 1 and ram[ON_GROUND]:
            break
        step(bot.act(emu))

    def bullet_close() -> bool:
        ram = emu.ram()
        return ram[ON_GROUND] == 1 and any(ram[EBACT + i] and -4 < int(ram[EBX + i]) - int(ram[PX]) < 14
                                           for i in range(2))
    while emu.ram()[EBACT] or emu.ram()[EBACT + 1]:
        step(A if bullet_close() else 0)
    for _ in range(10):
        step(0)
    while emu.ram()[PX] != STAND_X:
        px = emu.ram()[PX]
        action = LEFT if px > STAND_X else RIGHT
        if px == MINE_TAKEOFF_X and action == RIGHT and emu.ram()[ON_GROUND]:
            action |= A  # a 1-frame hop over the mine under the laser
        step(action)
    for _ in range(6):
        step(0)
    standing = emu.get_state()
    fire = [B if t % FIRE_EVERY == 0 else 0 for t in range(200)]
    for jump_at in range(len(fire)):
        emu.set_state(standing)
        tail = []
        for t, action in enumerate(fire):
            action |= A if t >= jump_at else 0
            tail.append(action)
            emu.step(action)
            ram = emu.ram()
            if ram[BOSS] or ram[PSTATE] == 2:
                break
        if ram[BOSS] and ram[PSTATE] == 2:
            return actions + tail + [0] * 200
    raise RuntimeError("no jump frame makes the gate and the player die together")


def run_length(actions: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for action in actions:
        if runs and runs[-1][0] == action:
            runs[-1][1] += 1
        else:
            runs.append([action, 1])
    return runs


def main() -> None:
    emu = Emulator("Outpost-Nes")
    cases = {"format": "[action, frames] runs, one emulator frame per action; see cartridge/make_cases.py",
             "last_life_gate": {"state": "Level2", "runs": run_length(last_life_gate(emu))}}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(cases, separators=(",", ":")) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
