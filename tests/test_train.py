"""`contra-bc train` end to end on a real dataset (recorded with the Airstriker bot, built by build-dataset)."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import cli_env, needs_outpost, run_cli, signal_frozen

STEPS = 30
TRAIN = ["--preset", "tiny", "--batch-size", "4", "--window", "8", "--workers", "0", "--no-augment",
         "--lr", "3e-3", "--log-every", "1", "--eval-every", "15", "--save-every", "10", "--seed", "3",
         "--text-encoder", "hashed"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    run_cli("record", "--input", "bot:airstriker", "--game", "Airstriker-Genesis-v0", "--episodes", "2",
            "--workers", "2", "--max-steps", "48", "--episode-until", "never", "--out", root / "recs", check=True)
    run_cli("build-dataset", root / "recs", "--out", root / "ds", "--val-fraction", "0.5", check=True)
    return root / "ds"


@pytest.fixture(scope="module")
def run(dataset):
    out = dataset.parent / "run"
    run_cli("train", dataset, "--out", out, "--max-steps", STEPS, *TRAIN, check=True, timeout=600)
    return out


def metrics(run_dir, kind="train"):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_tiny_overfits_and_writes_a_complete_run(run):
    train = metrics(run)
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    first = sum(r["loss"] for r in train[:3]) / 3
    last = sum(r["loss"] for r in train[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    val = metrics(run, "val")
    assert [r["step"] for r in val] == [15, 30]
    assert {"loss", "ppl/dpad", "acc/B", "precision/B", "recall/B"} <= set(val[-1])
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "last").read_text().strip() == "checkpoints/step-000030"
    ckpt = run / "checkpoints" / "step-000030"
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["format"] == "contra-bc-checkpoint" and cfg["format_version"] == 1
    assert cfg["preset"] == "tiny" and cfg["model"]["history"] == 8
    assert cfg["dataset"]["game"] == "Airstriker-Genesis-v0" and cfg["dataset"]["buttons"][0] == "B"
    assert cfg["text_encoder"] == {"id": "hashed-bow-v1", "dim": 384}
    assert [g["name"] for g in cfg["action_schema"]["groups"]][0] == "dpad"
    for name in ("model.safetensors", "text_table.safetensors", "training_state.safetensors", "training_state.json"):
        assert (ckpt / name).stat().st_size > 0
    assert not list((run / "checkpoints").glob(".*"))  # no temp dirs left behind
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["max_steps"] == STEPS and saved["train"]["lr"] == 3e-3


def test_resume_reproduces_the_uninterrupted_run(run, tmp_path):
    """Resume from the step-20 checkpoint the uninterrupted run wrote; steps 21..30 must match exactly."""
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    for d in (resumed / "checkpoints").iterdir():
        if d.name > "step-000020":
            shutil.rmtree(d)
    (resumed / "last").write_text("checkpoints/step-000020\n")
    (resumed / "metrics.jsonl").write_text("")
    run_cli("train", run.parent / "ds", "--out", resumed, "--resume", check=True, timeout=600)
    a = {r["step"]: r["loss"] for r in metrics(run) if r["step"] > 20}
    b = {r["step"]: r["loss"] for r in metrics(resumed)}
    assert sorted(b) == list(range(21, STEPS + 1))
    assert max(abs(a[s] - b[s]) for s in b) <= 1e-6, [(s, a[s], b[s]) for s in b]


def test_checkpoint_loads_in_a_fresh_process(run):
    code = f"""
import json, torch
from contra_bc.model.policy import load_policy
from contra_bc.dataset.loader import DatasetReader, make_loader
p = load_policy({str(run)!r})
batch = next(iter(make_loader({str(run.parent / 'ds')!r}, split='val', window=8, batch_size=2, shuffle=False, workers=0)))
p.reset()
acts = []
for t in range(8):
    a, info = p.act(batch['frames'][0, t].numpy(), temperature=1.0, generator=torch.Generator().manual_seed(t))
    acts.append(a)
lp = p.model.action_logprobs(batch)
lp2 = p.model.action_logprobs(batch, frames=batch['frames'].flip(0))
print(json.dumps({{"buttons": p.buttons, "game": p.game, "size": p.frame_size, "history": p.history,
    "acts": acts, "latency": info["latency_ms"], "probs": sorted(info["probs"]),
    "shapes": [list(x.shape) for x in lp], "sum": float(lp[0].exp().sum(-1).mean()),
    "changed": bool((lp[0] - lp2[0]).abs().max() > 0)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["game"] == "Airstriker-Genesis-v0" and r["size"] == 192 and r["history"] == 8
    assert r["buttons"][:2] == ["B", "A"]
    known = sum(1 << i for i, b in enumerate(r["buttons"]) if b)
    assert all(a & ~known == 0 for a in r["acts"])
    assert r["shapes"][0] == [2, 8, 16] and all(s[:2] == [2, 8] for s in r["shapes"])
    assert abs(r["sum"] - 1.0) < 1e-5 and r["changed"]
    assert r["probs"][0] in r["buttons"] or "dpad" in r["probs"]


def test_dataset_actions_round_trip(dataset):
    import torch

    from contra_bc.dataset.loader import DatasetReader, make_loader
    from contra_bc.model.actions import ActionSchema

    schema = ActionSchema.from_buttons(DatasetReader(dataset).info["buttons"])
    seen = set()
    for batch in make_loader(dataset, split=None, window=16, batch_size=8, shuffle=False, workers=0):
        a = batch["actions"][batch["valid"]]
        schema.check_representable(a)
        assert torch.equal(schema.decode_tensor(schema.encode_tensor(a)), a)
        seen |= set(a.tolist())
    assert len(seen) > 3  # the bot really presses several combinations


def test_bad_checkpoints_are_user_errors(run, tmp_path):
    from contra_bc.errors import UserError
    from contra_bc.model.policy import load_policy

    with pytest.raises(UserError, match="does not exist"):
        load_policy(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a checkpoint"):
        load_policy(tmp_path / "empty")
    newer = tmp_path / "newer"
    shutil.copytree(run / "checkpoints" / "step-000030", newer)
    cfg = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(UserError, match="format version 99"):
        load_policy(newer)
    broken = tmp_path / "broken"
    shutil.copytree(run / "checkpoints" / "step-000030", broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="damaged"):
        load_policy(broken)
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / "last").write_text("checkpoints/step-000999\n")
    with pytest.raises(UserError, match="not a checkpoint"):
        load_policy(dangling)
    proc = run_cli("train", run.parent / "ds", "--out", tmp_path / "fresh", "--resume")
    assert proc.returncode == 2 and "no `last`" in proc.stderr
    proc = run_cli("train", run.parent / "ds", "--out", run, "--max-steps", "1")
    assert proc.returncode == 2 and "--resume" in proc.stderr


def test_torchrun_two_processes_with_gloo(dataset, tmp_path):
    out = tmp_path / "ddp"
    import socket

    with socket.socket() as sock:  # a free port: a fixed one can be held by another run on a shared machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "contra_bc", "train", str(dataset), "--out", str(out), "--max-steps", "3", "--batch-size", "2",
           "--window", "4", "--grad-accum", "2", "--workers", "0", "--device", "cpu", "--log-every", "1", "--eval-every", "3",
           "--save-every", "3", "--text-encoder", "hashed", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env({"OMP_NUM_THREADS": "1"}), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])  # rank 0 prints it
    assert summary["step"] == 3 and summary["ranks_agree"] is True  # both ranks hold the same weights
    assert [r["step"] for r in metrics(out)] == [1, 2, 3]  # rank 0 alone writes
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert (out / "checkpoints" / "step-000003" / "model.safetensors").exists()


def test_sigterm_saves_and_a_bare_resume_finishes(dataset, tmp_path):
    """SIGTERM (a scheduler, docker, systemd) stops between steps like Ctrl-C: a checkpoint, exit 130."""
    import signal
    import time

    out = tmp_path / "term"
    args = [sys.executable, "-m", "contra_bc", "train", str(dataset), "--out", str(out), "--max-steps", "60",
            *map(str, TRAIN)]
    proc = subprocess.Popen(args, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").is_file() and len(metrics(out)) >= 3:
            break
        time.sleep(0.02)
    # freeze, queue SIGTERM, thaw: it arrives long before step 60, wherever the loop is
    signal_frozen(proc, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    reached = metrics(out)[-1]["step"]
    assert 3 <= reached < 60 and (out / "last").read_text().strip() == f"checkpoints/step-{reached:06d}"
    run_cli("train", dataset, "--out", out, "--resume", check=True, timeout=600)
    assert [r["step"] for r in metrics(out)] == list(range(1, 61))


def test_stop_at_then_bare_resume_continues_and_an_unstarted_run_restarts(dataset, tmp_path):
    out = tmp_path / "staged"
    run_cli("train", dataset, "--out", out, "--max-steps", 12, "--stop-at", 6, *TRAIN, check=True, timeout=600)
    assert metrics(out)[-1]["step"] == 6
    run_cli("train", dataset, "--out", out, "--resume", check=True, timeout=600)
    assert metrics(out)[-1]["step"] == 12  # the --stop-at of the first call does not stop the second
    # a run folder stopped before its first checkpoint (config.json only) can be started again or resumed
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.json").write_text((out / "config.json").read_text())
    run_cli("train", dataset, "--out", fresh, "--max-steps", 2, *TRAIN, check=True, timeout=600)
    assert (fresh / "last").is_file()
    (tmp_path / "afile").write_text("x")
    onfile = run_cli("train", dataset, "--out", tmp_path / "afile", "--max-steps", 2, *TRAIN)
    assert onfile.returncode == 2 and "is a file" in onfile.stderr and "Traceback" not in onfile.stderr


def test_image_pool_sets_the_encoder_input_and_play_uses_it(dataset, tmp_path):
    """--image-pool k overrides the preset's input pooling (tiny: 4); the checkpoint keeps it, with the
    unshuffled input, and play builds the same encoder from it; a k the frames cannot take is refused."""
    out = tmp_path / "pool2"
    run_cli("train", dataset, "--out", out, "--max-steps", 2, *TRAIN, "--image-pool", 2, "--image-input",
            "unshuffle", check=True, timeout=600)
    model = json.loads((out / "checkpoints" / "step-000002" / "config.json").read_text())["model"]
    assert (model["cnn_input_pool"], model["cnn_input"]) == (2, "unshuffle")
    played = run_cli("play", out, "--game", "Airstriker-Genesis-v0", "--episodes", 1, "--max-steps", 6,
                     "--fast", "--baseline", "none", "--out", tmp_path / "play", "--json", timeout=600)
    assert played.returncode == 0, played.stderr
    assert json.loads(played.stdout.strip().splitlines()[-1])["policies"]["agent"]["episodes"] == 1
    refused = run_cli("train", dataset, "--out", tmp_path / "pool8", "--max-steps", 2, *TRAIN, "--image-pool", 8)
    assert refused.returncode == 2 and "at least 256x256" in refused.stderr, refused.stderr
    assert not (tmp_path / "pool8").exists()
    # fine-tuning keeps the checkpoint's encoder input: another one asked for is refused, not ignored
    for other in (["--image-pool", 4], ["--image-pool", 2, "--image-input", "pool"]):
        refused = run_cli("train", dataset, "--out", tmp_path / "tuned", "--max-steps", 2, *TRAIN, "--init", out, *other)
        assert refused.returncode == 2 and "1/2 its size (unshuffle)" in refused.stderr, refused.stderr
        assert not (tmp_path / "tuned").exists()
    run_cli("train", dataset, "--out", tmp_path / "tuned", "--max-steps", 2, *TRAIN, "--init", out, "--image-pool", 2,
            "--image-input", "unshuffle", check=True, timeout=600)
    tuned = json.loads((tmp_path / "tuned" / "checkpoints" / "step-000002" / "config.json").read_text())["model"]
    assert (tuned["cnn_input_pool"], tuned["cnn_input"]) == (2, "unshuffle")


@needs_outpost
def test_a_run_with_a_change_head_resumes_with_it(tmp_path):
    """--change-horizon adds a head (for the rarely pressed A on Outpost); a resumed run must build it again
    to load its weights."""
    run_cli("record", "--input", "bot:expert-steady", "--game", "Outpost-Nes", "--hz", "20", "--episodes", "2",
            "--workers", "2", "--max-steps", "200", "--out", tmp_path / "recs", check=True)
    dataset = tmp_path / "ds"
    run_cli("build-dataset", tmp_path / "recs", "--out", dataset, "--val-fraction", "0.5", check=True)
    out = tmp_path / "change"
    run_cli("train", dataset, "--out", out, "--max-steps", 6, "--stop-at", 3, "--change-horizon", 4,
            "--change-weight", 0.1, *TRAIN, check=True, timeout=600)
    cfg = json.loads((out / "checkpoints" / "step-000003" / "config.json").read_text())
    assert cfg["model"]["change_horizon"] == 4 and cfg["model"]["change_groups"]
    resumed = run_cli("train", dataset, "--out", out, "--resume", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in metrics(out)] == list(range(1, 7))
    assert all("change" in r for r in metrics(out))  # the auxiliary loss ran before and after the resume
    # fine-tuning from it keeps the weight it was trained with (1, the default, swamps the jumps) unless told
    for extra, weight in (([], 0.1), (["--change-weight", 0.5], 0.5)):
        tuned = tmp_path / f"tuned-{weight}"
        run_cli("train", dataset, "--out", tuned, "--max-steps", 1, "--init", out, *TRAIN, *extra, check=True,
                timeout=600)
        saved = json.loads((tuned / "checkpoints" / "step-000001" / "config.json").read_text())
        assert saved["train"]["change_weight"] == weight and saved["model"]["change_horizon"] == 4
    # an --init run that names no --window (it has its checkpoint's) resumes bare, as the demo's second cycle must
    no_window = [f for i, f in enumerate(TRAIN) if f != "--window" and (i == 0 or TRAIN[i - 1] != "--window")]
    base, cycle = tmp_path / "window4", tmp_path / "cycle"  # tiny's own window is 8
    run_cli("train", dataset, "--out", base, "--max-steps", 1, *no_window, "--window", 4, check=True, timeout=600)
    run_cli("train", dataset, "--out", cycle, "--max-steps", 2, "--stop-at", 1, "--init", base, *no_window, check=True,
            timeout=600)
    resumed = run_cli("train", dataset, "--out", cycle, "--resume", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in metrics(cycle)] == [1, 2]


def test_options_precedence_flags_then_config_file_then_the_resumed_run(tmp_path):
    """A resumed run keeps its saved options (all but --stop-at); --config overrides them, flags override both."""
    from contra_bc.train import config_from_options

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"dataset": "old", "out": "old", "resume": False,
                                                           "stop_at": 5, "lr": 0.5, "seed": 7, "batch_size": 3}}))
    (tmp_path / "c.toml").write_text("[train]\nseed = 8\nbatch_size = 4\n")
    tc = config_from_options({"batch_size": 6, "lr": None}, dataset=tmp_path / "ds", out=run,
                             config_file=tmp_path / "c.toml", resume=True)
    assert (tc.lr, tc.seed, tc.batch_size, tc.stop_at) == (0.5, 8, 6, None)
    assert (tc.dataset, tc.out, tc.resume) == (str(tmp_path / "ds"), str(run), True)
    fresh = config_from_options({}, dataset=tmp_path / "ds", out=run, config_file=None, resume=False)
    assert (fresh.lr, fresh.seed) == (None, 0)  # without --resume the saved options are not read
