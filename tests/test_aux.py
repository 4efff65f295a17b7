"""The auxiliary loss end to end: `build-dataset --aux` stores game variables per frame, `train`
teaches the image encoder to read them off the screen, `play` loads the run as any other.

Real Outpost recordings (the steady expert meets the turret's bullets), real shards, real torch.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import last_json, needs_outpost, run_cli

AUX = "enemy_bullet_x_0,enemy_bullet_on_0"
TRAIN = ["--preset", "tiny", "--batch-size", "4", "--window", "8", "--workers", "0", "--no-augment",
         "--lr", "3e-3", "--log-every", "1", "--eval-every", "20", "--save-every", "20", "--seed", "3",
         "--text-encoder", "hashed"]


def variables_before_each_step(path: str) -> list[dict]:
    """Spawn worker: the game variables as the screen of each step shows them (replayed)."""
    from contra_bc.emulator import Emulator
    from contra_bc.formats.recording import read_recording

    rec = read_recording(Path(path))
    emu = Emulator(rec.meta["game"])
    emu.reset(rec.start_state())
    seen = [emu.variables()]
    for a in rec.actions[:-1]:
        emu.step(int(a), int(rec.meta["frames_per_step"]))
        seen.append(emu.variables())
    return seen


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    root = tmp_path_factory.mktemp("aux")
    run_cli("record", "--input", "bot:expert-steady", "--game", "Outpost-Nes", "--hz", "20", "--episodes", "2",
            "--seed", "1000", "--workers", "2", "--max-steps", "300", "--episode-until", "never",
            "--out", root / "recs", check=True)
    return root


@pytest.fixture(scope="module")
def built(recs):
    run_cli("build-dataset", recs / "recs", "--out", recs / "ds", "--aux", AUX, "--val-fraction", "0.5",
            "--no-filter", check=True)
    return recs / "ds"


@needs_outpost
def test_the_aux_column_holds_the_variables_each_frame_shows(recs, built):
    from contra_bc.dataset.loader import DatasetReader

    ds = DatasetReader(built)
    assert ds.info["aux"]["variables"] == AUX.split(",") and ds.aux_variables == AUX.split(",")
    for e in ds.episodes:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            seen = pool.apply(variables_before_each_step, (e["source"],))
        expected = np.array([[v["enemy_bullet_x_0"], v["enemy_bullet_on_0"]] for v in seen], np.float32)
        got = ds.aux(e["episode_index"])
        assert np.array_equal(got, expected)
        assert np.array_equal(ds.read(e["episode_index"], 0, e["length"])["aux"], expected)
        assert got[:, 1].sum() > 10  # the turret fired: there is something to see
    item = __import__("contra_bc.dataset.loader", fromlist=["WindowDataset"]).WindowDataset(built, "train", 32)[0]
    assert item["aux"].shape == (32, 2) and item["aux"].dtype == torch.float32


@needs_outpost
def test_aux_mistakes_are_clear_errors_and_an_append_keeps_the_columns(recs, built, tmp_path):
    from contra_bc.dataset.loader import DatasetReader

    bad = run_cli("build-dataset", recs / "recs", "--out", tmp_path / "x", "--aux", "enemy_bullet_x_0,nope")
    assert bad.returncode == 2 and "does not record nope" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
    copy = tmp_path / "ds"
    import shutil

    shutil.copytree(built, copy)
    clash = run_cli("build-dataset", recs / "recs", "--out", copy, "--append", "--aux", "enemy_bullet_x_0")
    assert clash.returncode == 2 and "--aux enemy_bullet_x_0,enemy_bullet_on_0" in clash.stderr
    run_cli("record", "--input", "bot:expert-steady", "--game", "Outpost-Nes", "--hz", "20", "--seed", "1010",
            "--max-steps", "150", "--episode-until", "never", "--out", tmp_path / "more", check=True)
    appended = run_cli("build-dataset", tmp_path / "more", "--out", copy, "--append", "--no-filter", check=True)
    said = " ".join(appended.stderr.split())  # piped: the table and the summary go to stderr, the path to stdout
    assert "1 episode(s) have no annotations" in said and "more" in said
    assert f"{copy}: 3 episodes" in said and "(1 episodes / 150 frames added)" in said
    assert appended.stdout.strip() == str(copy)
    ds = DatasetReader(copy)
    assert len(ds.episodes) == 3 and ds.aux(2).shape == (150, 2)


@needs_outpost
def test_the_aux_head_teaches_the_encoder_and_the_run_plays(built, tmp_path):
    from contra_bc.dataset.loader import DatasetReader
    from contra_bc.model.policy import load_policy

    run = tmp_path / "run"
    run_cli("train", built, "--out", run, "--max-steps", "40", *TRAIN, check=True, timeout=600)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("aux" in r for r in rows) and len(rows) == 42
    policy = load_policy(run)  # play never feeds aux: the head is only there to be trained
    model = policy.model
    ds = DatasetReader(built)
    e = ds.split_episodes("train")[0]
    rows = ds.read(e["episode_index"], 0, e["length"])
    with torch.no_grad():
        pred = model.aux_head(model.image.feature_map(torch.from_numpy(rows["frame"])))
    target = (torch.from_numpy(rows["aux"]) - model.aux_mean) / model.aux_std
    mse = float((pred - target).pow(2).mean())
    assert mse < 0.8, mse  # predicting the mean scores 1.0 (measured: 0.56 after 40 steps)
    config = json.loads((run / "last").read_text() and (run / (run / "last").read_text().strip() / "config.json")
                        .read_text())
    assert config["aux_variables"] == AUX.split(",") and config["model"]["aux_outputs"] == 2
    assert policy.model.aux_head.out_features == 2
    played = run_cli("play", run, "--game", "Outpost-Nes", "--fast", "--max-steps", "20", "--json",
                     "--out", tmp_path / "eval")
    assert played.returncode == 0, played.stderr
    assert last_json(played.stdout)["episodes"] == 1

    off = tmp_path / "off"  # --aux-weight 0: the same dataset trains without the head
    run_cli("train", built, "--out", off, "--max-steps", "2", "--aux-weight", "0", *TRAIN, check=True, timeout=600)
    assert not any("aux" in json.loads(line) for line in (off / "metrics.jsonl").read_text().splitlines())


def test_the_aux_loss_reaches_the_image_encoder_only_through_its_head():
    """With aux_weight the encoder's gradient changes (the token projection's does not: the head reads the
    feature map); the aux targets never touch the action loss."""
    from contra_bc.model.actions import ActionSchema
    from contra_bc.model.model import PRESETS, PolicyModel
    import dataclasses

    schema = ActionSchema.from_buttons(["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"])
    cfg = dataclasses.replace(PRESETS["tiny"], frame_size=64, cnn_input_pool=1, aux_outputs=2)
    torch.manual_seed(0)
    model = PolicyModel(cfg, schema)
    gen = torch.Generator().manual_seed(1)
    batch = {"frames": torch.randint(0, 256, (2, 4, 64, 64, 3), generator=gen, dtype=torch.uint8),
             "actions": torch.randint(0, 2, (2, 4), generator=gen), "text": torch.full((2, 4), -1),
             "loss_mask": torch.ones(2, 4, dtype=torch.bool), "valid": torch.ones(2, 4, dtype=torch.bool),
             "aux": torch.rand(2, 4, 2, generator=gen) * 200}

    def grads(weight):
        model.zero_grad()
        loss, stats = model.loss(batch, aux_weight=weight)
        loss.backward()
        return loss.detach(), stats, model.image.squeeze[0].weight.grad.clone(), model.image.proj.weight.grad.clone()

    plain, stats0, g0, p0 = grads(0.0)
    with_aux, stats1, g1, p1 = grads(1.0)
    assert torch.allclose(with_aux - plain, stats1["aux"]) and float(stats1["aux"]) > 0
    assert not torch.allclose(g0, g1) and torch.equal(p0, p1)
    shifted = dict(batch, aux=batch["aux"] + 50)  # other targets: other aux loss, the same action loss
    model.zero_grad()
    _, stats2 = model.loss(shifted, aux_weight=0.0)
    assert torch.equal(torch.stack(stats2["nll"]), torch.stack(stats0["nll"])) and stats2["aux"] != stats0["aux"]
