"""`contra-bc import`: folders in the Super Mario Bros. gameplay dataset's exact format (made here: the
real dataset cannot be downloaded), and frames + an actions CSV, as recordings that train."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import run_cli, run_json

NES = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]
SMB_BITS = ("A", "UP", "LEFT", "B", "START", "RIGHT", "DOWN", "SELECT")  # the dataset's byte, MSB to LSB
LIVES, WORLD, STAGE, PAGE, X = 1882, 1887, 1884, 109, 134


def chunk(key: str, value: bytes, windows_text_mode: bool) -> bytes:
    """A text chunk as the dataset's collector appends it after IEND: length, tEXt, key, NUL, value, and a
    fake CRC of four zero bytes. In text mode on Windows every 0x0A it writes becomes 0x0D 0x0A."""
    body = b"tEXt" + key.encode() + b"\x00" + value
    raw = struct.pack(">I", len(key) + 1 + len(value)) + body + b"\x00\x00\x00\x00"
    return raw.replace(b"\n", b"\r\n") if windows_text_mode else raw


def smb_episode(root: Path, episode: int, outcome: str, n: int, *, seed: int, windows_text_mode: bool = False,
                user: str = "rafael", session: str = "ab12cd34") -> dict:
    """An episode folder in the dataset's layout; returns the pictures, action bytes and RAMs written."""
    rng = np.random.default_rng(seed)
    folder = root / f"{user}_{session}_e{episode}_1-1_{outcome}"
    folder.mkdir(parents=True)
    palette = rng.integers(0, 256, (64, 3), dtype=np.uint8)  # NES-like: 64 colours
    pictures, actions, rams = [], [], []
    for f in range(1, n + 1):
        index = rng.integers(0, 64, (240, 256), dtype=np.uint8)
        image = Image.fromarray(index, mode="P")
        image.putpalette(palette.flatten().tolist())
        action = int(rng.integers(0, 256))
        ram = bytearray(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
        ram[LIVES], ram[WORLD], ram[STAGE], ram[PAGE], ram[X] = 2, 0, 0, f // 3, (7 * f) % 256
        ram[10] = 0x0A  # a newline byte in the RAM: what the collector's text-mode write doubled
        name = f"{user}_{session}_e{episode}_1-1_f{f}_a{action}_2021-03-04_10-20-{f % 60:02d}.{outcome}.png"
        path = folder / name
        image.save(path)
        with open(path, "ab") as fh:
            fh.write(chunk("RAM", bytes(ram), windows_text_mode))
            fh.write(chunk("BP1", bytes([action]), windows_text_mode))
            fh.write(chunk("OUTCOME", bytes([2 if outcome == "win" else 1]), windows_text_mode))
        pictures.append(np.asarray(image.convert("RGB")))
        actions.append(action)
        rams.append(bytes(ram))
    return {"folder": folder, "pictures": pictures, "actions": actions, "rams": rams}


def nes_bits(byte: int) -> int:
    index = {b: i for i, b in enumerate(NES) if b}
    return sum(1 << index[name] for k, name in enumerate(SMB_BITS) if (byte >> (7 - k)) & 1)


def test_smb_episodes_round_trip_verify_as_unprovable_and_train(tmp_path):
    data = tmp_path / "data-smb"
    won = smb_episode(data, 0, "win", 40, seed=1, windows_text_mode=True)
    lost = smb_episode(data, 1, "fail", 30, seed=2)
    out = tmp_path / "recordings"
    code, metas = run_json("import", "smb", data, "--out", out)
    assert code == 0, metas
    assert sorted(Path(m["path"]).name for m in metas) == sorted([won["folder"].name, lost["folder"].name])
    from contra_bc.formats.recording import read_recording

    for ep, outcome, repaired in ((won, "win", 40), (lost, "death", 0)):
        rec = read_recording(out / ep["folder"].name)
        n = len(ep["pictures"])
        assert rec.n_steps == n - 1 and rec.meta["outcome"] == outcome and rec.meta["hz"] == 60.0
        assert rec.meta["game"] == "SuperMarioBros-Nes-v0" and rec.meta["start_state_sha1"] is None
        assert rec.meta["import"]["ram_repaired"] == repaired  # every frame of the Windows-written episode
        frames = list(rec.frames())
        assert all(np.array_equal(a, b) for a, b in zip(frames, ep["pictures"][:-1]))  # the PNGs' pixels, exactly
        assert rec.actions.tolist() == [nes_bits(a) for a in ep["actions"][1:]]      # the names' bits
        assert rec.column("var_x").tolist() == [(7 * f) % 256 for f in range(2, n + 1)]  # RAM after each step
        assert rec.column("var_lives").tolist() == [2] * (n - 1)
        events = rec.column("event").tolist()
        assert events[-1] == outcome and set(events[:-1]) == {"none"}
    # A = 128, RIGHT = 4 in the dataset's byte: A and RIGHT on the NES
    assert nes_bits(128 | 4) == (1 << 8) | (1 << 7) and nes_bits(16 | 2) == (1 << 0) | (1 << 5)

    proc = run_cli("replay-verify", out, "--workers", 1, "--junit", tmp_path / "v.xml")
    assert proc.returncode == 3, proc.stdout + proc.stderr  # no divergence, but nothing could be proved
    assert "unverifiable" in proc.stderr and "no emulator start state" in " ".join(proc.stderr.split())
    assert 'skipped="2"' in (tmp_path / "v.xml").read_text()

    dataset = tmp_path / "dataset"
    code, built = run_json("build-dataset", out, "--out", dataset, "--no-filter", "--val-fraction", 0.5,
                           "--workers", 1)
    assert code == 0 and built["episodes_total"] == 2
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["game"] == "SuperMarioBros-Nes-v0" and info["hz"] == 60.0
    code, summary = run_json("train", dataset, "--out", tmp_path / "run", "--preset", "tiny", "--max-steps", 3,
                             "--batch-size", 2, "--window", 8, "--workers", 0, "--text-encoder", "hashed",
                             timeout=600)
    assert code == 0 and summary["step"] == 3


BAD_EPISODES = {
    "a PNG without its chunks": "no tEXtRAM or tEXtBP1 chunk",
    "a name that does not parse": "does not parse as an smbdataset frame name",
    "a missing frame": "frames are missing after frame 4",
    "an action outside the byte": "is outside a byte",
    "two episodes in one folder": "mixes frames of 2 episodes",
}


@pytest.mark.parametrize("damage", list(BAD_EPISODES))
def test_bad_smb_folders_are_refused_and_nothing_is_written(tmp_path, damage):
    data = tmp_path / "data-smb"
    ep = smb_episode(data, 0, "win", 8, seed=3)
    files = sorted(ep["folder"].iterdir(), key=lambda p: int(p.name.split("_f")[1].split("_")[0]))
    if damage == "a PNG without its chunks":
        raw = files[2].read_bytes()
        files[2].write_bytes(raw[:raw.index(b"IEND") + 8])
    elif damage == "a name that does not parse":
        files[3].rename(files[3].with_name("frame-0003.png"))
    elif damage == "a missing frame":
        files[4].unlink()
    elif damage == "an action outside the byte":
        files[5].rename(files[5].with_name(files[5].name.replace(f"_a{ep['actions'][5]}_", "_a300_")))
    else:
        other = smb_episode(tmp_path / "other", 7, "win", 2, seed=4)
        for p in other["folder"].iterdir():
            p.rename(ep["folder"] / p.name)
    out = tmp_path / "recordings"
    proc = run_cli("import", "smb", ep["folder"], "--out", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert BAD_EPISODES[damage] in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_folder_of_frames_and_an_actions_csv(tmp_path):
    rng = np.random.default_rng(5)
    frames = tmp_path / "frames"
    frames.mkdir()
    pictures = []
    for i in range(12):  # names sort as numbers, not as text (frame2 before frame10)
        picture = rng.integers(0, 256, (224, 240, 3), dtype=np.uint8)
        Image.fromarray(picture).save(frames / f"frame{i}.png")
        pictures.append(picture)
    buttons = ["RIGHT", "RIGHT+A", "", "B", "LEFT+B", "A"] * 2
    (tmp_path / "actions.csv").write_text("buttons\n" + "\n".join(buttons) + "\n")
    out = tmp_path / "rec"
    code, meta = run_json("import", "frames", frames, "--actions", tmp_path / "actions.csv", "--game", "Outpost-Nes",
                          "--hz", 20, "--outcome", "win", "--out", out)
    assert code == 0, meta
    from contra_bc.formats.actions import action_from_names
    from contra_bc.formats.recording import read_recording

    rec = read_recording(out)
    assert rec.n_steps == 11 and rec.meta["hz"] == 20.0 and rec.meta["outcome"] == "win"
    assert all(np.array_equal(a, b) for a, b in zip(rec.frames(), pictures))
    assert rec.actions.tolist() == [action_from_names(NES, b.split("+")) for b in buttons[:11]]
    table = pq.read_table(out / "steps.parquet")
    assert table.column("actor").to_pylist() == ["human"] * 11  # trained on
    # refused: JPEG frames (lossy), too few actions
    Image.fromarray(pictures[0]).save(frames / "frame12.jpg")
    proc = run_cli("import", "frames", frames, "--actions", tmp_path / "actions.csv", "--game", "Outpost-Nes",
                   "--out", tmp_path / "jpeg")
    assert proc.returncode == 2 and "JPEG" in proc.stderr and not (tmp_path / "jpeg").exists()
    (frames / "frame12.jpg").unlink()
    (tmp_path / "short.csv").write_text("action\n0\n128\n")
    proc = run_cli("import", "frames", frames, "--actions", tmp_path / "short.csv", "--game", "Outpost-Nes",
                   "--out", tmp_path / "short")
    assert proc.returncode == 2 and "2 action rows for 12 frames" in proc.stderr and not (tmp_path / "short").exists()
