"""Sticky actions and no-op starts (contra_bc.perturb): the draws, the recordings they leave, what
training learns from them, and play's perturbed evaluation with the expert beside the agent."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from conftest import needs_outpost, run_cli, run_json
from tiny_policy import GAME, tiny_run  # noqa: F401  (session fixture)


def test_sticky_repeats_the_previous_executed_action_at_its_rate():
    from contra_bc.perturb import Perturbation

    spec = Perturbation(sticky=0.25, noop_max=30)
    episode = spec.episode(seed=7)
    chosen = [i % 5 + 1 for i in range(8000)]  # never the no-op, never the same twice running
    executed = [episode.execute(a) for a in chosen]
    n = episode.noop_steps
    assert 0 <= n <= 30 and executed[:n] == [0] * n
    repeats = [t for t in range(n, len(chosen)) if executed[t] != chosen[t]]
    # a changed step runs exactly what ran the step before (a repeat can repeat again)
    assert all(executed[t] == executed[t - 1] for t in repeats)
    assert episode.sticky_steps == len(repeats)
    rate = len(repeats) / (len(chosen) - n)
    assert abs(rate - 0.25) < 0.03, rate  # 8000 draws: the binomial's spread is 0.005
    # the same seed draws the same; another seed draws otherwise; the no-op count spreads over 0..30
    again = spec.episode(seed=7)
    assert [again.execute(a) for a in chosen] == executed
    other = spec.episode(seed=8)
    assert [other.execute(a) for a in chosen] != executed
    counts = {spec.episode(seed=s).noop_steps for s in range(400)}
    assert counts == set(range(31))
    # none: the chosen action runs
    clean = Perturbation().episode(seed=7)
    assert [clean.execute(a) for a in chosen[:50]] == chosen[:50] and not Perturbation().active


def test_bad_perturbations_are_clear_errors(tmp_path):
    for flags, words in ((["--sticky", "1"], "--sticky"), (["--sticky", "-0.1"], "--sticky"),
                         (["--noop-max", "-3"], "--noop-max")):
        proc = run_cli("play", "bot:random", "--game", GAME, "--fast", *flags, "--out", tmp_path / "p")
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    (tmp_path / "a.csv").write_text("action\n0\n1\n")
    proc = run_cli("record", "--input", tmp_path / "a.csv", "--game", GAME, "--sticky", "0.25", "--out",
                   tmp_path / "r")
    assert proc.returncode == 2 and "bot" in proc.stderr and not (tmp_path / "r").exists()
    proc = run_cli("record", "--game", GAME, "--noop-max", "5", "--out", tmp_path / "w")  # the human window
    assert proc.returncode == 2 and "--noop-max" in proc.stderr and not (tmp_path / "w").exists()


@needs_outpost
def test_a_perturbed_demonstration_keeps_both_actions_replays_and_trains_on_the_chosen(tmp_path):
    """record a bot under sticky actions and a no-op start: the recording replays bit for bit from
    its executed actions, keeps the bot's choices beside them, and a dataset built from it teaches
    the choices while its history is what ran."""
    out = tmp_path / "sticky"
    run_cli("record", "--input", "bot:expert-steady", "--game", "Outpost-Nes", "--sticky", "0.25", "--noop-max",
            "30", "--max-steps", 400, "--episodes", 2, "--seed", 11, "--workers", 2, "--out", out, check=True)
    for rec in sorted(out.iterdir()):
        meta = json.loads((rec / "meta.json").read_text())
        p = meta["perturbation"]
        assert p["sticky"] == 0.25 and p["noop_max"] == 30 and 0 <= p["noop_steps"] <= 30
        table = pq.read_table(rec / "steps.parquet")
        action = np.asarray(table.column("action").to_pylist())
        chosen = np.asarray(table.column("chosen_action").to_pylist())
        actors = table.column("actor").to_pylist()
        n = p["noop_steps"]
        assert actors[:n] == ["perturbation"] * n and not action[:n].any() and not chosen[:n].any()
        assert actors[n] == "script"  # the bot starts after the no-op start
        changed = np.flatnonzero(action != chosen)
        assert len(changed) == p["sticky_steps"] > 10
        assert (action[changed] == action[changed - 1]).all()  # what ran is the step before's action
        # once an action has not run, the expert fires by what ran: never B two steps running
        after = np.arange(changed[0] + 1, len(chosen))
        fired = after[(chosen[after] & 1) != 0]
        assert len(fired) > 5 and not (action[fired - 1] & 1).any()
    verify = run_cli("replay-verify", out, "--check-video", "--workers", 2)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    dataset = tmp_path / "dataset"
    run_cli("build-dataset", out, "--out", dataset, "--no-filter", "--workers", 1, check=True)
    from contra_bc.dataset.loader import DatasetReader, WindowDataset

    reader = DatasetReader(dataset)
    assert reader.info["format_version"] == 2
    for learn in ("chosen", "executed"):
        windows = WindowDataset(dataset, split=None, window=400, learn=learn)
        for i in range(len(windows)):
            item = windows[i]
            rec = out / reader.episodes[int(item["episode"])]["name"]
            table = pq.read_table(rec / "steps.parquet")
            n = int(item["valid"].sum())
            assert item["actions"][:n].tolist() == table.column("action").to_pylist()[:n]  # history: what ran
            column = "chosen_action" if learn == "chosen" else "action"
            assert item["targets"][:n].tolist() == table.column(column).to_pylist()[:n]
            assert item["loss_mask"][:n].tolist() == [a != "perturbation" for a in table.column("actor").to_pylist()[:n]]


def test_a_dataset_of_format_v1_still_reads_and_refuses_an_append(tiny_run, tmp_path):
    """Datasets built before chosen_action existed (v1): every step learns the action it executed."""
    import shutil

    from contra_bc.dataset.loader import WindowDataset

    _, built = tiny_run
    old = tmp_path / "v1"
    shutil.copytree(built, old)
    info = json.loads((old / "meta" / "info.json").read_text())
    info["format_version"] = 1
    (old / "meta" / "info.json").write_text(json.dumps(info))
    for shard in (old / "data").rglob("*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.drop_columns(["chosen_action"]), shard)
    windows = WindowDataset(old, split=None, window=16)
    item = windows[0]
    assert item["targets"].tolist() == item["actions"].tolist()
    recs = tmp_path / "more"
    run_cli("record", "--input", "bot:airstriker", "--game", GAME, "--max-steps", 40, "--episode-until", "never",
            "--out", recs, check=True)
    proc = run_cli("build-dataset", recs, "--out", old, "--append", "--no-filter", "--workers", 1)
    assert proc.returncode == 2 and "v1" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((old / "meta" / "info.json").read_text())["counts"] == info["counts"]  # untouched


def test_the_policy_is_told_what_ran(tiny_run):
    """On a sticky step the policy's next decision conditions on the executed action, not its own."""
    from contra_bc.play import PolicyActor, load_checked_policy
    from contra_bc.perturb import Perturbation
    from contra_bc.takeover import take_step

    run, _ = tiny_run
    policy = load_checked_policy(str(run), GAME)

    class Runner:  # the emulator is not needed to see what the policy is told
        frames_per_step = 1

        def step(self, action, actor, lateness_ms=None, chosen=None):
            return {"action": action, "chosen_action": chosen, "actor": actor}

    actor = PolicyActor(policy, temperature=1.0, seed=3, instruction=None)
    actor.reset(None)
    screen = np.zeros((224, 320, 3), np.uint8)
    episode = Perturbation(sticky=0.9, noop_max=3).episode(seed=1)
    rows = [take_step(Runner(), actor, None, None, screen, perturbed=episode) for _ in range(40)]
    n = episode.noop_steps
    assert all(r["actor"] == "perturbation" and r["action"] == 0 for r in rows[:n])
    changed = [r for r in rows[n:] if r["action"] != r["chosen_action"]]
    assert changed and policy._last_action == rows[-1]["action"]
    assert policy._step == 40  # the policy saw every frame, the no-op start's too


@needs_outpost
def test_perturbed_evaluation_plays_agent_random_and_expert_on_the_same_draws(tmp_path):
    out = tmp_path / "eval"
    code, report = run_json("play", "bot:random", "--game", "Outpost-Nes", "--expert", "bot:expert-steady",
                            "--episodes", 2, "--workers", 2, "--max-steps", 300, "--sticky", "0.25",
                            "--noop-max", "30", "--out", out)
    assert code == 0, report
    assert report["perturbation"] == {"sticky": 0.25, "noop_max": 30}
    assert set(report["policies"]) == {"random", "expert"} and report["expert_policy"] == "bot:expert-steady"
    by = {name: {e["episode"]: e for e in rows} for name, rows in report["episodes_detail"].items()}
    for i in (0, 1):  # episode i of each policy met the same no-op start (drawn from seed + i)
        assert by["random"][i]["noop_steps"] == by["expert"][i]["noop_steps"]
        assert by["expert"][i]["seed"] == 1_000_000 + i
        meta = json.loads((out / f"expert-{i:04d}" / "meta.json").read_text())
        assert meta["perturbation"]["noop_steps"] == by["expert"][i]["noop_steps"]
        assert meta["perturbation"]["sticky_steps"] == by["expert"][i]["sticky_steps"] > 0
    # the expert gets further than random buttons under the same perturbation
    assert report["policies"]["expert"]["progress_mean"] > report["policies"]["random"]["progress_mean"]
    assert json.loads((out / "evaluation.json").read_text())["perturbation"]["sticky"] == 0.25
    verify = run_cli("replay-verify", out, "--workers", 2)
    assert verify.returncode == 0, verify.stdout + verify.stderr
