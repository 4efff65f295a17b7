"""contra-bc play: a real tiny checkpoint in the real emulator (subprocesses / spawn workers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import cli_env, run_cli, run_json
from tiny_policy import GAME, tiny_run  # noqa: F401  (session fixture)

FIELDS = ("episodes", "win_rate", "progress_mean", "progress_max", "score_mean", "deaths_mean", "steps_mean",
          "latency_ms_p50", "latency_ms_p99")


def test_play_writes_a_recording_that_replay_verifies(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "play"
    code, report = run_json("play", run, "--game", GAME, "--fast", "--baseline", "none", "--max-steps", 40,
                            "--seed", 5, "--instruction", "dodge the bullets", "--out", out)
    assert code == 0, report
    rec = out / "agent-0000"
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["source"] == "agent" and meta["steps"] == 40 and meta["complete"]
    assert meta["instruction"] == "dodge the bullets" and meta["checkpoint"] == str(run)
    import pyarrow.parquet as pq

    steps = pq.read_table(rec / "steps.parquet")
    assert set(steps.column("actor").to_pylist()) == {"agent"}
    assert len(set(steps.column("action").to_pylist())) > 1  # sampled, not a constant
    verify = run_cli("replay-verify", out, "--check-video", "--workers", 1)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # same seed, same actions: sampling is reproducible
    code, _ = run_json("play", run, "--game", GAME, "--fast", "--baseline", "none", "--max-steps", 40,
                       "--seed", 5, "--instruction", "dodge the bullets", "--out", tmp_path / "again")
    again = pq.read_table(tmp_path / "again" / "agent-0000" / "steps.parquet")
    assert again.column("action").to_pylist() == steps.column("action").to_pylist()


def test_evaluation_with_two_workers_reports_every_field_and_the_baseline(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "eval"
    code, report = run_json("play", run, "--game", GAME, "--episodes", 2, "--workers", 2, "--max-steps", 30,
                            "--out", out)
    assert code == 0, report
    assert set(report["policies"]) == {"agent", "random"}
    for name, summary in report["policies"].items():
        for key in FIELDS:
            assert summary[key] is not None, (name, key)
        assert summary["episodes"] == 2 and summary["steps_mean"] == 30
    assert report["policies"]["agent"]["latency_ms_p99"] >= report["policies"]["agent"]["latency_ms_p50"] > 0
    assert "RandomMomentum" in report["baseline_policy"]
    assert report["hz"] == 20.0 and report["frames_per_step"] == 1  # from the checkpoint's dataset
    assert sorted(p.name for p in out.iterdir()) == ["agent-0000", "agent-0001", "evaluation.json",
                                                     "random-0000", "random-0001"]
    # episode i uses seed+i: the two agent episodes differ
    import pyarrow.parquet as pq

    a0 = pq.read_table(out / "agent-0000" / "steps.parquet").column("action").to_pylist()
    a1 = pq.read_table(out / "agent-0001" / "steps.parquet").column("action").to_pylist()
    assert a0 != a1
    assert json.loads((out / "evaluation.json").read_text())["policies"] == report["policies"]


def test_checkpoint_for_other_buttons_is_refused(tiny_run, tmp_path):
    run, _ = tiny_run
    proc = run_cli("play", run, "--game", "Outpost-Nes", "--fast", "--out", tmp_path / "x")
    assert proc.returncode == 2
    assert "Airstriker-Genesis-v0" in proc.stderr and "Outpost-Nes" in proc.stderr and "buttons" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_bad_checkpoint_and_options_are_clear_errors(tmp_path):
    proc = run_cli("play", tmp_path / "missing", "--game", GAME, "--fast")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_cli("play", "bot:random", "--game", GAME, "--fast", "--episode-until", "forever")
    assert proc.returncode == 2 and "--episode-until" in proc.stderr


def test_incremental_policy_matches_full_recompute(tiny_run):
    """act() with its KV cache (past the sliding window) gives the teacher-forced distribution."""
    import torch

    from contra_bc.dataset.loader import make_loader
    from contra_bc.model.policy import load_policy

    run, dataset = tiny_run
    policy = load_policy(run)
    steps = policy.history + 6  # runs past the window: the cache must slide like the training mask
    batch = next(iter(make_loader(dataset, "train", window=steps, batch_size=1, shuffle=False, workers=0)))
    assert bool(batch["valid"].all())
    with torch.no_grad():
        full = [torch.log_softmax(lg.double(), -1) for lg in policy.model.action_logits(batch)]
    policy.reset()
    first = policy.model.schema.groups[0].name
    for t in range(steps):
        _, info = policy.act(batch["frames"][0, t].numpy(), temperature=1.0)
        policy.observe_action(int(batch["actions"][0, t]))  # teacher forcing, as a human takeover does
        cached = torch.from_numpy(np.asarray(info["probs"][first], np.float64))
        assert torch.allclose(cached, full[0][0, t].exp(), atol=2e-4), t
