"""The Outpost-Nes cartridge on the real emulator: mechanics, RAM contract, expert, pooling.

All emulator work runs in two spawn workers (one emulator per process), once per module.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, needs_outpost

pytestmark = needs_outpost

EXPERT_RUNS = [("Level1", 0), ("Level1", 1), ("Level1", 2), ("Level2", 3)]
B, RIGHT, A = 1 << 0, 1 << 7, 1 << 8
LIMIT = 3000
# RAM (docs/cartridge.md)
ROUTINE, LEVEL, LIVES, GAME_OVER, BOSS, STOP_SCROLL, PSTATE, DEATH, PY, SHOTS, PLAYER_X = (
    0x2C, 0x30, 0x32, 0x38, 0x3B, 0x58, 0x90, 0xB4, 0x16, 0x1F, 0x65)
WATCH = (PSTATE, DEATH, LIVES, GAME_OVER, ROUTINE, LEVEL, BOSS)


def max_pool(actions: list[int], window: int = 3) -> list[int]:
    """The product's pooling (what downsample-check replays): a button pressed in any frame of a window
    is held for the whole window."""
    from contra_bc.downsample import pool_actions

    return [int(a) for a in pool_actions(actions, window, "max")]


def _open(state: str):
    from contra_bc.emulator import Emulator
    emu = Emulator("Outpost-Nes")
    emu.reset(state)
    return emu


def _watch(emu) -> tuple:
    ram = emu.ram()
    return tuple(int(ram[a]) for a in WATCH)


def expert_job(state: str, seed: int) -> dict:
    from contra_bc.bots.expert_outpost import ExpertOutpost
    emu = _open(state)
    start = emu.get_state()
    bot = ExpertOutpost(seed=seed)
    bot.reset(emu)
    actions, won, gate_screen = [], False, None
    for _ in range(LIMIT):
        if gate_screen is None and emu.ram()[STOP_SCROLL] == 0xFF and emu.ram()[PLAYER_X] >= 140:
            gate_screen = emu.get_state()
        action = bot.act(emu)
        actions.append(action)
        emu.step(action)
        if emu.ram()[BOSS]:
            won = True
            break
        if emu.ram()[PSTATE] == 2:
            break
    after = [_watch(emu)]
    for _ in range(140):
        emu.step(0)
        after.append(_watch(emu))
    emu.set_state(start)
    pooled_won = False
    for action in max_pool(actions):
        emu.step(action)
        pooled_won = pooled_won or bool(emu.ram()[BOSS])
    gate = {}
    for name, pattern in (("tap3", lambda t: B if t % 3 == 0 else 0), ("tap5", lambda t: B if t % 5 == 0 else 0),
                          ("hold", lambda t: B)):
        for pooled in (False, True):
            emu.set_state(gate_screen)
            steps = [RIGHT | pattern(t) for t in range(240)]
            destroyed = False
            for action in (max_pool(steps) if pooled else steps):
                emu.step(action)
                destroyed = destroyed or bool(emu.ram()[BOSS])
            gate[f"{name}{'-pooled' if pooled else ''}"] = destroyed
    return {"won": won, "actions": actions, "after_win": after, "pooled_won": pooled_won, "gate": gate}


def mechanics_job() -> dict:
    emu = _open("Level1")
    emu.step(0, 40)  # the player falls in, then stands
    standing = emu.get_state()
    rise = {}
    for hold in (1, 2, 3, 20):
        emu.set_state(standing)
        lowest = 255
        for t in range(70):
            emu.step(A if t < hold else 0)
            lowest = min(lowest, int(emu.ram()[PY]))
        rise[hold] = 192 - lowest
    shots = {}
    for name, pattern in (("alternate", lambda t: B if t % 2 == 0 else 0), ("hold", lambda t: B)):
        emu.set_state(standing)
        first = int(emu.ram()[SHOTS])
        for t in range(40):
            emu.step(pattern(t))
        shots[name] = (int(emu.ram()[SHOTS]) - first) % 256
    # walk right until the game is over, watching the RAM contract every frame
    emu.reset("Level1")
    timeline = [_watch(emu)]
    for _ in range(1500):
        emu.step(RIGHT)
        timeline.append(_watch(emu))
    randoms = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        emu.reset("Level1")
        won = False
        for action in rng.integers(0, 512, size=LIMIT):
            emu.step(int(action) & ~0b1100)  # no START/SELECT
            won = won or bool(emu.ram()[BOSS])
        randoms.append(won)
    return {"rise": rise, "shots": shots, "timeline": timeline, "random_won": randoms}


def _dispatch(job):
    if job[0] == "mechanics":
        return mechanics_job()
    return expert_job(*job[1:])


@pytest.fixture(scope="module")
def results():
    jobs = [("mechanics",)] + [("expert", state, seed) for state, seed in EXPERT_RUNS]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        out = pool.map(_dispatch, jobs, chunksize=1)
    return {"mechanics": out[0], "experts": dict(zip(EXPERT_RUNS, out[1:]))}


def test_tapped_jump_is_lower_than_held(results):
    rise = results["mechanics"]["rise"]
    assert rise == {1: 9, 2: 11, 3: 13, 20: 47}  # docs/cartridge.md
    assert rise[1] < rise[3] < rise[20]


def test_alternating_b_fires_more_than_holding(results):
    shots = results["mechanics"]["shots"]
    assert shots["hold"] == 1
    assert shots["alternate"] >= 4


def test_death_lives_and_game_over_timing(results):
    timeline = results["mechanics"]["timeline"]
    index = {a: i for i, a in enumerate(WATCH)}
    deaths = [f for f in range(1, len(timeline))
              if timeline[f][index[PSTATE]] == 2 and timeline[f - 1][index[PSTATE]] != 2]
    assert len(deaths) == 3
    for n, f in enumerate(deaths):
        assert timeline[f][index[DEATH]] & 1 and not timeline[f - 1][index[DEATH]] & 1
        lives = timeline[f][index[LIVES]]
        assert lives == 2 - n
        assert all(timeline[g][index[LIVES]] == lives for g in range(f, f + 60))
        if lives:
            assert timeline[f + 60][index[LIVES]] == lives - 1  # lives drop at respawn
            assert timeline[f + 60][index[PSTATE]] == 0
            assert timeline[f + 60][index[GAME_OVER]] == 0
        else:
            assert timeline[f + 59][index[GAME_OVER]] == 0 and timeline[f + 59][index[ROUTINE]] == 4
            assert timeline[f + 60][index[GAME_OVER]] == 1 and timeline[f + 60][index[ROUTINE]] == 0x0A
            assert timeline[f + 150][index[ROUTINE]] == 0x05
    assert timeline[-1][index[GAME_OVER]] == 1 and timeline[-1][index[LEVEL]] == 0


def test_expert_wins_for_several_seeds(results):
    for (state, seed), run in results["experts"].items():
        assert run["won"], f"expert seed {seed} did not win {state}"
    level1 = [tuple(run["actions"]) for (state, _), run in results["experts"].items() if state == "Level1"]
    assert len(set(level1)) == len(level1)  # seeds give different runs


def test_level_end_sequence(results):
    index = {a: i for i, a in enumerate(WATCH)}
    for (state, _), run in results["experts"].items():
        after = run["after_win"]  # after[0] is the frame the gate died
        level = 0 if state == "Level1" else 1
        assert after[0][index[BOSS]] == 1 and after[0][index[ROUTINE]] == 4
        assert after[1][index[ROUTINE]] == 8 and after[1][index[PSTATE]] == 3
        assert after[60][index[ROUTINE]] == 8 and after[61][index[ROUTINE]] == 9
        assert after[120][index[LEVEL]] == level and after[121][index[LEVEL]] == level + 1
        assert after[121][index[ROUTINE]] == 5
        assert after[122][index[ROUTINE]] == 4 and after[122][index[BOSS]] == 0
        assert after[122][index[PSTATE]] == 0


def test_random_player_does_not_win(results):
    assert results["mechanics"]["random_won"] == [False, False, False]


def test_max_pooled_expert_runs_do_not_win(results):
    for (state, seed), run in results["experts"].items():
        assert run["won"] and not run["pooled_won"], f"pooled replay of seed {seed} on {state} still wins"


def test_gate_needs_rapid_taps(results):
    """The gate's HP refills after 5 frames without a hit: taps 3 frames apart kill it;
    taps 5 apart, a held B, and any pooled pattern do not."""
    for run in results["experts"].values():
        assert run["gate"] == {"tap3": True, "tap3-pooled": False, "tap5": False, "tap5-pooled": False,
                               "hold": False, "hold-pooled": False}


def test_max_pool_semantics():
    assert max_pool([B, 0, 0, 0, A, 0, 0]) == [B, B, B, A, A, A, 0]
    assert max_pool([B, A, 0, RIGHT]) == [B | A] * 3 + [RIGHT]


@pytest.mark.skipif(shutil.which("ca65") is None or shutil.which("ld65") is None, reason="cc65 not installed")
def test_fresh_build_is_byte_identical(tmp_path):
    work = tmp_path / "cartridge"
    shutil.copytree(ROOT / "cartridge", work, ignore=shutil.ignore_patterns("build"))
    subprocess.run(["make", "-s", "build/outpost.nes"], cwd=work, check=True, capture_output=True)
    built = (work / "build" / "outpost.nes").read_bytes()
    integration = ROOT / "contra_bc" / "games" / "integrations" / "Outpost-Nes"
    assert built == (integration / "rom.nes").read_bytes()
    import hashlib
    assert hashlib.sha1(built[16:]).hexdigest() == (integration / "rom.sha").read_text().strip()


def test_integration_files():
    integration = ROOT / "contra_bc" / "games" / "integrations" / "Outpost-Nes"
    for name in ("rom.nes", "rom.sha", "data.json", "scenario.json", "metadata.json", "Level1.state",
                 "Level2.state"):
        assert (integration / name).is_file(), name
    rom = (integration / "rom.nes").read_bytes()
    assert rom[:4] == b"NES\x1a" and rom[4] == 2 and rom[5] == 1 and rom[6] >> 4 == 0  # NROM-256
    assert len(rom) == 16 + 32768 + 8192
    assert Path(ROOT / "docs" / "cartridge-level1.png").is_file()
