"""The scripted corrector of `play --corrector`: when it takes over, what it leaves behind."""

from __future__ import annotations

from conftest import needs_outpost

RIGHT = 1 << 7


def _episode(emu, corrector, steps=700):
    """An 'agent' that only runs right (it never jumps), with or without a corrector; returns the rows."""
    from contra_bc.episode import EpisodeRunner
    from contra_bc.takeover import take_step

    class RunRight:
        name = "agent"
        overrides = 0

        def act(self, emu, screen):
            return RIGHT

        def observe_override(self, action):
            self.overrides += 1

    runner = EpisodeRunner(emu, frames_per_step=1, until="level")
    screen = runner.reset("Level1")
    if corrector:
        corrector.reset(emu)
    agent, rows = RunRight(), []
    for _ in range(steps):
        rows.append(take_step(runner, agent, corrector, emu, screen))
        screen = emu.screen()
        if runner.done:
            break
    return rows, agent


@needs_outpost
def test_the_corrector_takes_over_only_where_the_agents_course_dies():
    from contra_bc.bots import make_bot
    from contra_bc.emulator import Emulator
    from contra_bc.takeover import CorrectorTakeover

    emu = Emulator("Outpost-Nes")
    alone, _ = _episode(emu, None)
    assert any(r["event"] == "death" for r in alone)  # running right into Level 1 dies
    corrector = CorrectorTakeover(make_bot("expert-steady", emu.game, 5), lookahead=20, hold=20)
    rows, agent = _episode(emu, corrector)
    actors = [r["actor"] for r in rows]
    assert corrector.takeovers > 0 and corrector.steps == actors.count("corrector")
    # the agent is told every step whose action was not its own (it would have run right)
    assert agent.overrides == sum(r["actor"] == "corrector" and r["action"] != RIGHT for r in rows) > 0
    assert not any(r["event"] == "death" for r in rows)  # the corrector saved every one
    # each takeover began where running right on would have died within the look-ahead ...
    starts = [i for i, a in enumerate(actors) if a == "corrector" and (i == 0 or actors[i - 1] != "corrector")]
    assert len(starts) == corrector.takeovers
    # ... and the agent drove, unchanged, until then: the same rows as without the corrector
    first = starts[0]
    assert [r["frame_hash"] for r in rows[:first]] == [r["frame_hash"] for r in alone[:first]]
    death = next(i for i, r in enumerate(alone) if r["event"] == "death")
    assert first <= death < first + 20 + 1
    # every takeover lasts at least `hold` steps, unless the level ended
    runs = [len(run) for run in "".join("c" if a == "corrector" else "." for a in actors).split(".") if run]
    assert all(n >= 20 for n in runs[:-1])


@needs_outpost
def test_the_look_ahead_leaves_the_emulator_exactly_as_it_was():
    from contra_bc.bots import make_bot
    from contra_bc.emulator import Emulator
    from contra_bc.takeover import CorrectorTakeover

    emu = Emulator("Outpost-Nes")
    rows, _ = _episode(emu, None)
    death = next(i for i, r in enumerate(rows) if r["event"] == "death")  # step `death` is the first dead one
    emu.reset("Level1")
    for _ in range(death - 30):
        emu.step(RIGHT)
    before = (emu.ram_hash(), emu.get_state())
    bot = make_bot("expert-steady", emu.game, 0)
    assert CorrectorTakeover(bot, lookahead=31, hold=5).course_dies(emu, RIGHT, 1)
    assert not CorrectorTakeover(bot, lookahead=30, hold=5).course_dies(emu, RIGHT, 1)
    assert (emu.ram_hash(), emu.get_state()) == before
    emu.step(RIGHT)  # and the next real frame is the one of a run that never looked ahead
    assert emu.frame_hash() == rows[death - 30]["frame_hash"]


@needs_outpost
def test_play_with_a_corrector_records_its_steps_trains_on_them_and_replays(tmp_path):
    """`play --corrector`: an agent that learned only to run right dies fast; the expert takes over."""
    import json

    import numpy as np
    import pyarrow.parquet as pq

    from conftest import run_cli, run_json

    recs, data, run = tmp_path / "recs", tmp_path / "data", tmp_path / "run"
    actions = tmp_path / "right.csv"
    actions.write_text("buttons\n" + "RIGHT\n" * 200)
    run_cli("record", "--input", actions, "--game", "Outpost-Nes", "--episode-until", "never", "--out", recs,
            check=True)
    run_cli("build-dataset", recs, "--out", data, "--val-fraction", 0, "--no-filter", "--workers", 1, check=True)
    run_cli("train", data, "--out", run, "--preset", "tiny", "--max-steps", 12, "--batch-size", 2, "--window", 8,
            "--workers", 0, "--no-augment", "--lr", "3e-3", "--text-encoder", "hashed", check=True, timeout=600)
    rc, report = run_json("play", run, "--game", "Outpost-Nes", "--episodes", 1, "--max-steps", 500, "--corrector",
                      "bot:expert-steady", "--lookahead", 20, "--hold", 10, "--baseline", "none",
                      "--out", tmp_path / "play")
    assert rc == 0
    agent = report["policies"]["agent"]
    assert report["corrector"] == {"bot": "bot:expert-steady", "lookahead": 20, "hold": 10}
    rec = tmp_path / "play" / "agent-0000"
    actors = pq.read_table(rec / "steps.parquet").column("actor").to_pylist()
    assert agent["takeovers"] > 0 and agent["corrector_steps"] == actors.count("corrector") > 0
    assert "agent" in actors  # and it handed back
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["corrector"]["bot"] == "bot:expert-steady" and meta["corrector_steps"] == agent["corrector_steps"]
    rc, verify = run_json("replay-verify", rec)
    assert rc == 0 and verify[0]["status"] == "verified"
    # build-dataset trains on the corrector's steps and on nothing the agent did
    run_cli("build-dataset", rec, "--out", tmp_path / "corrected", "--no-filter", "--workers", 1, check=True)
    shard = next((tmp_path / "corrected" / "data").rglob("*.parquet"))
    mask = np.asarray(pq.read_table(shard, columns=["loss_mask"]).column("loss_mask").to_pylist())
    assert mask.tolist() == [a == "corrector" for a in actors]
    # training reads only the windows that hold one of the corrector's steps
    from contra_bc.dataset.loader import WindowDataset

    windows = WindowDataset(tmp_path / "corrected", split=None, window=16).windows
    assert windows and all(mask[s:s + 16].any() for _, s in windows)
    assert len(windows) < -(-len(actors) // 16)  # the agent's stretches are left out


def test_a_corrector_needs_a_bot_and_a_checkpoint(tmp_path):
    from conftest import run_cli

    for args, words in ((["bot:random", "--corrector", "bot:expert-steady", "--episodes", 2], "CHECKPOINT"),):
        proc = run_cli("play", *args, "--game", "Outpost-Nes", "--out", tmp_path / "x")
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
