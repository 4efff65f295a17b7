"""Outcome rules: the rule language, Contra's cases from the disassembly, and the same cases
played on the Outpost cartridge (real emulator): the gate destroyed on the frame the player dies
on the last life, and the attract demo from power-on.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace

import pytest

from conftest import ROOT, needs_outpost
from contra_bc.emulator import classify, game_from_file, get_game, rule_fires, rule_problem
from contra_bc.errors import UserError

# The rules every Contra-Nes/Outpost-Nes file had before issue 22 (flat any-lists).
OLD_RULES = {
    "win": {"any": [["boss_defeated", "==", 1], ["level_routine", "in", [8, 9]]]},
    "death": {"any": [["death_flag", "&", 1], ["player_state", "==", 2]]},
    "game_over": {"any": [["game_over", "==", 1]]},
}
CASES = json.loads((ROOT / "tests" / "data" / "outpost_cases.json").read_text())
START, RIGHT = 1 << 3, 1 << 7
ROUTINE, LIVES, GAME_OVER, P2_GAME_OVER, BOSS, PSTATE, DEATH, DEMO = 0x2C, 0x32, 0x38, 0x39, 0x3B, 0x90, 0xB4, 0x1C


# ---------------------------------------------------------------- the rule language
def test_conditions_nest_and_negate():
    now = {"a": 1, "b": 4, "c": 0}
    assert rule_fires(["a", "==", 1], now, None)
    assert rule_fires({"all": [["a", "==", 1], {"any": [["c", "==", 5], ["b", "&", 4]]}]}, now, None)
    assert not rule_fires({"all": [["a", "==", 1], {"not": ["b", "in", [3, 4]]}]}, now, None)
    assert rule_fires({"any": [{"all": [["a", "==", 0]]}, {"not": {"any": [["c", "!=", 0]]}}]}, now, None)
    assert rule_fires({"decrease": "b"}, now, {"a": 1, "b": 5, "c": 0})
    assert not rule_fires({"decrease": "b"}, now, None)


def test_old_flat_rule_files_stay_valid():
    variables = {name: {} for name in ("boss_defeated", "level_routine", "death_flag", "player_state", "game_over")}
    for rule in OLD_RULES.values():
        assert rule_problem(rule, variables) is None
    assert rule_problem({"all": [["lives", "==", 0], ["game_over", "==", 1]]}, {"lives": {}, "game_over": {}}) is None


@pytest.mark.parametrize("rule, says", [
    ({"any": [["nope", "==", 1]]}, "unknown variable 'nope'"),
    ({"any": [["x", "=~", 1]]}, "unknown operator '=~'"),
    ({"any": [["x", "in", 3]]}, "'in' needs a list of integers"),
    ({"any": [["x", "==", "1"]]}, "needs an integer"),
    ({"any": []}, "needs a non-empty list"),
    ({"any": [["x", "==", 1]], "all": []}, "exactly one of"),
    ({"either": []}, "unknown rule key 'either'"),
    ({"all": [{"not": ["x", "==", 1, 2]}]}, "win.all[0].not: a condition is [variable, operator, value]"),
])
def test_bad_rules_are_named(rule, says):
    assert says in rule_problem(rule, {"x": {}}, "win")


def test_a_game_file_with_a_bad_rule_is_a_user_error(tmp_path):
    spec = json.loads((ROOT / "contra_bc" / "games" / "Outpost-Nes.json").read_text())
    spec["outcome"]["death"] = {"all": [["demo_mode", "==", 0], {"any": [["deth_flag", "&", 1]]}]}
    path = tmp_path / "Outpost-Nes.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"bad outcome rule: death\.all\[1\]\.any\[0\]: unknown variable 'deth_flag'"):
        game_from_file(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        game_from_file(path)


# ---------------------------------------------------------------- Contra's cases, from the disassembly
ONE_PLAYER = {"level": 0, "lives": 2, "game_over": 0, "player_state": 1, "death_flag": 0, "demo_mode": 0,
              "p2_lives": 0, "p2_game_over": 1, "p2_player_state": 0, "p2_death_flag": 0, "boss_defeated": 0,
              "level_routine": 4, "stop_scroll": 0, "screen": 0, "scroll": 0, "score": 0}
TWO_PLAYERS = dict(ONE_PLAYER, p2_lives=2, p2_game_over=0, p2_player_state=1)


@pytest.mark.parametrize("game_name", ["Contra-Nes", "Outpost-Nes"])
@pytest.mark.parametrize("case, variables, outcome", [
    ("playing", {}, "none"),
    ("boss destroyed, player standing", {"boss_defeated": 1}, "win"),
    ("end-of-level sequence ($3B = $81)", {"boss_defeated": 0x81, "player_state": 3, "level_routine": 8}, "win"),
    ("routine 9, end of level", {"level_routine": 9, "player_state": 3}, "win"),
    ("boss destroyed while player 1 dies on the last life",
     {"boss_defeated": 1, "player_state": 2, "death_flag": 1, "lives": 0}, "death"),
    ("routine 8 while player 1 dies", {"boss_defeated": 1, "level_routine": 8, "player_state": 2, "death_flag": 1},
     "death"),
    ("boss destroyed, player respawning (falling in)", {"boss_defeated": 1, "player_state": 0}, "none"),
    ("one player, game over", {"game_over": 1, "player_state": 2, "level_routine": 0x0A}, "game_over"),
    ("attract demo: death", {"demo_mode": 1, "player_state": 2, "death_flag": 1}, "none"),
    ("attract demo: game over", {"demo_mode": 1, "game_over": 1}, "none"),
    ("attract demo: boss destroyed", {"demo_mode": 1, "boss_defeated": 1}, "none"),
])
def test_one_player_cases(game_name, case, variables, outcome):
    game = get_game(game_name)
    assert classify(game, dict(ONE_PLAYER, **variables), ONE_PLAYER) == outcome, case


@pytest.mark.parametrize("case, variables, outcome", [
    ("both playing", {}, "none"),
    ("player 1 game over, player 2 plays on", {"game_over": 1, "player_state": 0}, "none"),
    ("player 1 game over, player 2 dies", {"game_over": 1, "player_state": 2, "p2_player_state": 2,
                                           "p2_death_flag": 1}, "death"),
    ("player 2 dies", {"p2_player_state": 2, "p2_death_flag": 1}, "death"),
    ("both game over", {"game_over": 1, "p2_game_over": 1}, "game_over"),
    ("boss destroyed, player 1 dying, player 2 standing", {"boss_defeated": 1, "player_state": 2,
                                                           "death_flag": 1}, "win"),
    ("boss destroyed, player 1 game over, player 2 dying", {"boss_defeated": 1, "game_over": 1,
                                                            "p2_player_state": 2, "p2_death_flag": 1}, "death"),
])
def test_two_player_cases(case, variables, outcome):
    game = get_game("Contra-Nes")
    assert classify(game, dict(TWO_PLAYERS, **variables), TWO_PLAYERS) == outcome, case


# ---------------------------------------------------------------- the same cases on the Outpost cartridge
def _actions(runs):
    return [action for action, frames in runs for _ in range(frames)]


def _classify_frames(emu, actions) -> tuple[list, list, list]:
    """Per frame: the RAM that matters, the outcome under the current rules, under the old ones."""
    game, old = emu.game, replace(emu.game, outcome_rules=OLD_RULES)
    ram_rows, new_status, old_status = [], [], []
    before = emu.variables()
    for action in actions:
        emu.step(action)
        now = emu.variables()
        ram = emu.ram()
        ram_rows.append(tuple(int(ram[a]) for a in (ROUTINE, LIVES, GAME_OVER, P2_GAME_OVER, BOSS, PSTATE,
                                                   DEATH, DEMO)))
        new_status.append(classify(game, now, before))
        old_status.append(classify(old, now, before))
        before = now
    return ram_rows, new_status, old_status


def cartridge_job() -> dict:
    from contra_bc.emulator import Emulator
    from contra_bc.episode import EpisodeRunner

    emu = Emulator("Outpost-Nes")
    out = {}
    case = CASES["last_life_gate"]
    emu.reset(case["state"])
    out["gate"] = _classify_frames(emu, _actions(case["runs"]))
    # power-on, nothing pressed: title, then the attract demo, then the title again; then START
    emu.reset(emu.power_on_state())
    out["demo"] = _classify_frames(emu, [0] * 900 + [START] + [RIGHT] * 400)
    # the toolkit's episodes from power-on under --episode-until life, current and old rules
    episodes = {}
    for name, game in (("new", emu.game), ("old", replace(emu.game, outcome_rules=OLD_RULES))):
        emu.game = game
        runner = EpisodeRunner(emu, frames_per_step=3, until="life")
        runner.reset(emu.power_on_state())
        while not runner.done and runner.steps < 330:
            runner.step(0, "script")
        episodes[name] = (runner.done, runner.final_outcome(), runner.steps, dict(runner.counts))
    out["episodes"] = episodes
    return out


@pytest.fixture(scope="module")
def cartridge():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(cartridge_job)


FIELDS = {name: i for i, name in enumerate(("routine", "lives", "game_over", "p2_game_over", "boss", "pstate",
                                            "death", "demo"))}


def _col(rows, name):
    return [row[FIELDS[name]] for row in rows]


@needs_outpost
def test_gate_destroyed_as_the_last_life_ends_is_game_over_not_win(cartridge):
    rows, new, old = cartridge["gate"]
    boss, pstate, lives = _col(rows, "boss"), _col(rows, "pstate"), _col(rows, "lives")
    f = boss.index(1)
    assert pstate[f] == 2 and pstate[f - 1] == 1 and lives[f] == 0  # the gate and the player die on one frame
    assert all(b == 1 and p == 2 for b, p in zip(boss[f:f + 60], pstate[f:f + 60]))  # $3B set during the death
    assert rows[f + 60][FIELDS["game_over"]] == 1 and boss[f + 60] == 0 and rows[f + 60][FIELDS["routine"]] == 0x0A
    assert 9 not in _col(rows, "routine") and 8 not in _col(rows, "routine")  # the level never ends
    assert "win" in old[f:]  # the old rules recorded a win
    assert "win" not in new
    assert new[f] == "death" and new[f + 60] == "game_over" and new[-1] == "game_over"


@needs_outpost
def test_attract_demo_has_deaths_but_no_events(cartridge):
    rows, new, old = cartridge["demo"]
    demo, pstate = _col(rows, "demo"), _col(rows, "pstate")
    start, end = demo.index(1), len(demo) - demo[::-1].index(1)
    assert start == 240 and end < 900  # the demo starts after the title wait and ends by itself
    deaths = [f for f in range(start, end) if pstate[f] == 2 and pstate[f - 1] != 2]
    assert len(deaths) == 3 and 1 in _col(rows, "game_over")[start:end]
    assert {"death", "game_over"} <= set(old[start:end])  # the old rules counted the demo
    assert set(new[:900]) == {"none"}
    # START on the title: a real one-player game, whose deaths count
    play = _col(rows, "routine")[900:]
    assert play[0] == 4 and rows[900][FIELDS["p2_game_over"]] == 1 and rows[900][FIELDS["demo"]] == 0
    assert "death" in new[900:]


@needs_outpost
def test_episode_until_life_from_power_on_waits_for_a_player(cartridge):
    episodes = cartridge["episodes"]
    assert episodes["new"] == (False, "none", 330, {"win": 0, "death": 0, "game_over": 0})
    done, outcome, steps, _ = episodes["old"]
    assert done and outcome == "death" and steps < 330
