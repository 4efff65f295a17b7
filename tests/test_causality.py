"""causality-score: the toy problem of P2P §5.1.1 and the score of §5.2 on a real tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, run_json
from tiny_policy import tiny_run  # noqa: F401  (session fixture)


# ---------------------------------------------------------------- toy problem


def test_toy_linear_stalls_and_deeper_networks_get_causal_faster(tmp_path):
    from contra_bc.causality import ToyConfig, toy_experiment

    result = toy_experiment(ToyConfig(seed=0, steps=3000))
    final = result["final_c"]
    # the brake light agrees with the optimal action on ~90% of steps: the trap is real
    assert 0.8 < result["light_agrees_with_action"] < 0.95
    auc = {name: float(np.mean([c for _, c in pts])) for name, pts in result["curves"].items()}
    assert final["linear"] < 1.5, final
    for name in ("mlp-1", "mlp-2", "mlp-3", "mlp-4"):
        assert final[name] > 2 * final["linear"], final
    assert min(final["mlp-2"], final["mlp-3"], final["mlp-4"]) > final["mlp-1"], final
    assert auc["linear"] < auc["mlp-1"] < max(auc["mlp-3"], auc["mlp-4"]), auc


def test_toy_cli_draws_png_and_json(tmp_path):
    png = tmp_path / "toy.png"
    code, result = run_json("causality-score", "--toy", "--toy-steps", 300, "--plot", png)
    assert code == 0
    assert set(result["curves"]) == {"linear", "mlp-1", "mlp-2", "mlp-3", "mlp-4"}
    assert result["curves"]["linear"][-1][0] == 300
    from PIL import Image

    assert Image.open(png).size[0] >= 600


# ---------------------------------------------------------------- the score's building blocks


def test_scored_positions_are_the_last_valid_step_of_each_chunk():
    from contra_bc.causality import scored_positions

    valid = np.ones((2, 12), bool)
    valid[1, 7:] = False  # window 1 ends (padding) inside chunk 1 of 3
    got = scored_positions(valid, 3)
    assert got == [(0, 0, 3), (0, 1, 7), (0, 2, 11), (1, 0, 3), (1, 1, 6)]


def test_perturbation_takes_donors_from_other_scenes_only():
    from contra_bc.causality import perturb_frames

    rng = np.random.default_rng(0)
    b, t = 3, 20
    frames = np.zeros((b, t, 2, 2, 3), np.uint8)
    for i in range(b):
        for j in range(t):
            frames[i, j] = i * 50 + j  # each position has its own colour
    valid = np.ones((b, t), bool)
    episode = np.array([0, 0, 1])
    start = np.array([0, 5, 0])  # windows 0 and 1 overlap in episode 0
    out, replaced = perturb_frames(frames, valid, episode, start, 1.0, 10, rng)
    assert replaced.all()
    for i in range(b):
        for j in range(t):
            src = np.argwhere((frames == out[i, j]).all(axis=(2, 3, 4)))[0]
            same_episode = episode[src[0]] == episode[i]
            assert not same_episode or abs((start[src[0]] + src[1]) - (start[i] + j)) >= 10
    none, replaced0 = perturb_frames(frames, valid, episode, start, 0.0, 10, rng)
    assert not replaced0.any() and np.array_equal(none, frames)


# ---------------------------------------------------------------- on a real tiny checkpoint


def test_score_is_zero_at_p0_and_grows_with_p(tiny_run):
    run, dataset = tiny_run
    common = ["--chunks", 2, "--batch", 4, "--batches", 1, "--seed", 3]
    code0, r0 = run_json("causality-score", run, dataset, "--p", 0, *common)
    code1, r1 = run_json("causality-score", run, dataset, "--p", 0.3, *common)
    code2, r2 = run_json("causality-score", run, dataset, "--p", 1.0, *common, "--repeats", 2)
    assert (code0, code1, code2) == (0, 0, 0)
    assert r0["score"] == 0.0
    assert r0["scored_position"] == "the last valid step of each chunk"
    assert 0 < r1["score"] < r2["score"], (r1["score"], r2["score"])
    assert r2["replaced_fraction"] > 0.9 and 0.1 < r1["replaced_fraction"] < 0.6
    assert r2["chunks_scored"] == 2 * 4
    assert len(r2["repeats"]) == 2 and r2["spread"] >= 0
    assert r2["mean_per_chunk"] == pytest.approx(sum(x["score"] for x in r2["repeats"]) / (2 * 8))


def test_score_is_measured_at_the_documented_positions(tiny_run):
    """Perturbing only frames AFTER a chunk's scored step cannot change the score; before it, it does."""
    import torch

    from contra_bc.causality import CausalityConfig, chunk_batch, group_logprobs, iterate_batches, kl_at, scored_positions
    from contra_bc.model.policy import load_policy

    run, dataset = tiny_run
    policy = load_policy(run)
    cfg = CausalityConfig(chunks=2, batch=2, batches=1, p=1.0)
    batch = next(iterate_batches(dataset, cfg, policy.history * 2, 0))
    valid = batch["valid"].numpy()
    positions = scored_positions(valid, 2)
    length = batch["actions"].shape[1] // 2
    chunked = chunk_batch(batch, 2)
    rows = torch.tensor([b * 2 + c for b, c, _ in positions])
    cols = torch.tensor([t - c * length for _, c, t in positions])
    flipped = 255 - chunked["frames"]  # every frame changed
    with torch.no_grad():
        base = group_logprobs(policy.model, chunked)
        after = chunked["frames"].clone()
        before = chunked["frames"].clone()
        for r, c in zip(rows.tolist(), cols.tolist()):
            after[r, c + 1:] = flipped[r, c + 1:]
            before[r, :c + 1] = flipped[r, :c + 1]
        kl_after = kl_at(base, group_logprobs(policy.model, chunked, after), rows, cols)
        kl_before = kl_at(base, group_logprobs(policy.model, chunked, before), rows, cols)
    # frames after the scored step are invisible to it (causal mask): bit-identical output
    assert float(kl_after.abs().max()) < 1e-12
    assert float(kl_before.min()) > 0


def test_bad_inputs_give_clear_errors(tiny_run, tmp_path):
    run, dataset = tiny_run
    proc = run_cli("causality-score", run, tmp_path / "nope")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "build-dataset" in proc.stderr
    proc = run_cli("causality-score", run, dataset, "--p", 1.5)
    assert proc.returncode == 2 and "[0, 1]" in proc.stderr
    proc = run_cli("causality-score", run, dataset, "--split", "nosuch")
    assert proc.returncode == 2 and "split" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_trace_over_checkpoints_draws_score_and_val_loss(tiny_run, tmp_path):
    run, dataset = tiny_run
    png = tmp_path / "over.png"
    code, result = run_json("causality-score", "--over", run, dataset, "--p", 0.5, "--chunks", 2,
                            "--batch", 2, "--batches", 1, "--plot", png)
    assert code == 0, result
    steps = [p["step"] for p in result["points"]]
    assert len(steps) >= 2 and steps == sorted(steps)
    assert all(p["score"] > 0 for p in result["points"])
    assert png.is_file()


def test_checkpoint_and_dataset_of_different_games_is_refused(tiny_run, tmp_path):
    """A dataset whose info says another game (here: the tiny dataset relabelled as Outpost-Nes)."""
    import shutil

    run, dataset = tiny_run
    other = tmp_path / "other-game"
    shutil.copytree(dataset, other)
    info_path = other / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["game"] = "Outpost-Nes"
    info_path.write_text(json.dumps(info))
    proc = run_cli("causality-score", run, other, "--batches", 1)
    assert proc.returncode == 2, proc.stderr
    assert "Airstriker-Genesis-v0" in proc.stderr and "Outpost-Nes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_score_on_another_dataset_uses_that_datasets_texts(tiny_run, tmp_path):
    """A dataset's text_index values index its own texts, not the checkpoint's. A run trained on
    annotated recordings is copied with its text table numbered the other way round (as a run
    trained on a dataset that met the texts in the other order would have it); scored on the same
    dataset, both copies must give the same score, bit for bit. Indexing the copy's own table with
    the dataset's indices would swap the two instructions and change the score."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    _, dataset = tiny_run
    recs = tmp_path / "recordings"
    shutil.copytree(dataset.parent / "recordings", recs)
    table = tmp_path / "table.md"
    table.write_text("| Start | End | Text |\n|---|---|---|\n| 00:00 | 00:03 | Sweep left and shoot |\n"
                     "| 00:03 | | Dodge to the right |\n")
    for rec in sorted(recs.iterdir()):
        run_cli("annotate", rec, "--from-table", table, check=True)
    texts = tmp_path / "with-texts"
    run_cli("build-dataset", recs, "--out", texts, "--val-fraction", 0.5, "--no-filter", "--workers", 1, check=True)
    run = tmp_path / "run"
    run_cli("train", texts, "--out", run, "--preset", "tiny", "--max-steps", 12, "--batch-size", 2, "--window", 8,
            "--workers", 0, "--no-augment", "--lr", "3e-3", "--text-dropout", 0, "--seed", 0,
            "--text-encoder", "hashed", check=True, timeout=600)
    swapped = tmp_path / "swapped"
    shutil.copytree(run, swapped)
    ckpt = swapped / "checkpoints" / Path((run / "last").read_text().strip()).name
    config = json.loads((ckpt / "config.json").read_text())
    assert len(config["texts"]) == 2
    config["texts"] = config["texts"][::-1]
    (ckpt / "config.json").write_text(json.dumps(config))
    original_table = load_file(ckpt / "text_table.safetensors")["embeddings"]
    save_file({"embeddings": original_table.flip(0).contiguous()}, ckpt / "text_table.safetensors")
    # the two instructions embed differently, so swapping the table is a real change the score must see through
    assert not torch.allclose(original_table[0], original_table[1])
    args = (texts, "--p", 1.0, "--chunks", 2, "--batch", 4, "--batches", 1, "--seed", 1)
    code, original = run_json("causality-score", run, *args)
    code2, other = run_json("causality-score", swapped, *args)
    assert (code, code2) == (0, 0), (original, other)
    assert original["score"] > 0 and other["score"] == original["score"]
