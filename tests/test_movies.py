"""Movies in and out, checked against stable-retro's own .bk2 recorder and player.

No emulator runs in this process: our side goes through the CLI in a subprocess,
stable-retro's side through small scripts in another subprocess.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import OUTPOST_ROM, cli_env, needs_outpost, run_cli

AIRSTRIKER = "Airstriker-Genesis-v0"

# stable-retro's side, run in its own process. Prints JSON.
RETRO_PRELUDE = """
import json, sys
import numpy as np
from contra_bc.emulator import _retro, digest64
r = _retro()
"""

RETRO_RECORD = RETRO_PRELUDE + """
game, state, folder, n, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
import os; os.makedirs(folder, exist_ok=True)
env = r.make(game, state=state, inttype=r.data.Integrations.ALL, use_restricted_actions=r.Actions.ALL,
             render_mode=None, record=folder)
env.reset()
buttons = env.unwrapped.buttons
rng = np.random.default_rng(seed)
hashes, actions = [], []
for i in range(n):
    keys = (rng.random(len(buttons)) < 0.25).astype(np.uint8)
    env.step(keys)
    hashes.append(digest64(env.unwrapped.em.get_screen()))
    actions.append(int(sum(int(k) << b for b, k in enumerate(keys))))
env.close()
print(json.dumps({"hashes": hashes, "actions": actions}))
"""

# The same steps as stable_retro/scripts/playback_movie.py (load_movie + playback_movie).
RETRO_PLAYBACK = RETRO_PRELUDE + """
movie = r.Movie(sys.argv[1])
movie.step()
env = r.make(game=movie.get_game(), state=r.State.NONE, inttype=r.data.Integrations.ALL,
             use_restricted_actions=r.Actions.ALL, render_mode=None, players=movie.players)
env.unwrapped.initial_state = movie.get_state()
env.reset()
hashes, actions = [], []
n = env.unwrapped.num_buttons
while movie.step():
    keys = [movie.get_key(i, 0) for i in range(n)]
    env.step(keys)
    hashes.append(digest64(env.unwrapped.em.get_screen()))
    actions.append(int(sum(int(k) << b for b, k in enumerate(keys))))
print(json.dumps({"hashes": hashes, "actions": actions, "game": movie.get_game(),
                  "has_state": bool(movie.get_state())}))
"""


def retro(script: str, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], env=cli_env(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli(*args, expect: int = 0) -> subprocess.CompletedProcess:
    done = run_cli(*args)
    assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def steps_of(recording: Path):
    table = pq.read_table(recording / "steps.parquet")
    return table.column("action").to_pylist(), table.column("frame_hash").to_pylist()


def meta_of(recording: Path) -> dict:
    return json.loads((recording / "meta.json").read_text())


def test_stable_retro_bk2_imports_with_the_frames_of_its_own_playback(tmp_path):
    recorded = retro(RETRO_RECORD, AIRSTRIKER, "Level1", tmp_path / "movies", 150, 1)
    (movie,) = (tmp_path / "movies").glob("*.bk2")
    played = retro(RETRO_PLAYBACK, movie)
    assert played["actions"] == recorded["actions"]
    assert played["hashes"] == recorded["hashes"]  # stable-retro agrees with itself

    cli("record", "--input", movie, "--out", tmp_path / "rec")
    actions, hashes = steps_of(tmp_path / "rec")
    assert actions == played["actions"]
    assert hashes == played["hashes"]
    meta = meta_of(tmp_path / "rec")
    assert meta["game"] == AIRSTRIKER and meta["source"] == "script"
    assert movie.name in meta["source_detail"]
    assert meta["start"] == "state" and meta["movie"]["frames_total"] == 151
    assert abs(meta["hz"] - 59.92) < 0.01
    with zipfile.ZipFile(movie) as zf:  # the start state is the movie's own Core.bin
        assert meta["start_state_sha1"] == hashlib.sha1(zf.read("Core.bin")).hexdigest()
    cli("replay-verify", tmp_path / "rec", "--report-dir", tmp_path / "report", "--workers", "1")


def test_exported_bk2_plays_back_in_stable_retro_with_identical_frames(tmp_path):
    rng = np.random.default_rng(7)
    with open(tmp_path / "actions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["action"])
        for a in rng.integers(0, 1 << 12, 80):
            writer.writerow([int(a) & ~(1 << 3)])  # no START: keep the game unpaused
    cli("record", "--input", tmp_path / "actions.csv", "--game", AIRSTRIKER, "--frames-per-step", 3,
        "--out", tmp_path / "rec")
    cli("export", tmp_path / "rec", "--to", tmp_path / "out.bk2")
    actions, hashes = steps_of(tmp_path / "rec")

    played = retro(RETRO_PLAYBACK, tmp_path / "out.bk2")
    assert played["game"] == AIRSTRIKER and played["has_state"]
    assert len(played["hashes"]) == 3 * len(actions)
    assert played["actions"] == list(np.repeat(actions, 3))
    assert played["hashes"][2::3] == hashes  # the screen after each step's last frame

    with zipfile.ZipFile(tmp_path / "out.bk2") as zf:
        header = dict(line.split(" ", 1) for line in zf.read("Header.txt").decode().splitlines())
        log = zf.read("Input Log.txt").decode().splitlines()
        core = zf.read("Core.bin")
    assert header["Platform"] == "GEN" and header["GameName"] == AIRSTRIKER
    assert header["SHA1"].lower() == meta_of(tmp_path / "rec")["rom_sha1"]
    assert log[0] == "[Input]" and log[2].startswith("LogKey:#Reset|Power|#P1 Up|P1 Down|P1 Left|P1 Right|")
    assert log[-1] == "[/Input]" and len(log) == 3 + 1 + 3 * len(actions) + 1
    assert hashlib.sha1(core).hexdigest() == meta_of(tmp_path / "rec")["start_state_sha1"]

    # Our own importer reads our export back into the same recording.
    cli("record", "--input", tmp_path / "out.bk2", "--frames-per-step", 3, "--out", tmp_path / "again")
    assert steps_of(tmp_path / "again") == (actions, hashes)
    cli("export", tmp_path / "rec", "--to", tmp_path / "out.bk2", expect=2)  # never overwrites


def _power_on_bk2(path: Path, frames: list[str], game=AIRSTRIKER, sha1="?"):
    """A power-on movie in stable-retro's own layout (no Core.bin: stable-retro boots the ROM)."""
    log = ["[Input]", "P1 Z|P1 X|P1 Y|P1 C|P1 Right|P1 Left|P1 Down|P1 Up|P1 Start|P1 Mode|P1 A|P1 B|"]
    log += [f"|..|{f}|" for f in frames] + ["[/Input]"]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Header.txt", f"MovieVersion Retro\nPlatform GEN\nGameName {game}\nSHA1 {sha1}\n")
        zf.writestr("Input Log.txt", "\n".join(log))


# stable-retro's env booted from power-on (State.NONE) and stepped with the given actions.
RETRO_POWER_ON = RETRO_PRELUDE + """
game, actions = sys.argv[1], json.loads(open(sys.argv[2]).read())
env = r.make(game, state=r.State.NONE, inttype=r.data.Integrations.ALL, use_restricted_actions=r.Actions.ALL,
             render_mode=None)
env.reset()
n = env.unwrapped.num_buttons
hashes = []
for a in actions:
    env.step(np.array([(a >> b) & 1 for b in range(n)], np.uint8))
    hashes.append(digest64(env.unwrapped.em.get_screen()))
print(json.dumps({"hashes": hashes}))
"""


def test_power_on_bk2_matches_stable_retro_and_exports_a_playable_movie(tmp_path):
    rng = np.random.default_rng(3)
    frames = ["............"] + ["".join(c if rng.random() < 0.3 else "." for c in "ZXYCRLDUSMAB")
                                 for _ in range(200)]
    _power_on_bk2(tmp_path / "boot.bk2", frames)
    cli("record", "--input", tmp_path / "boot.bk2", "--out", tmp_path / "rec", "--episode-until", "never")
    actions, hashes = steps_of(tmp_path / "rec")
    (tmp_path / "actions.json").write_text(json.dumps(actions))
    assert retro(RETRO_POWER_ON, AIRSTRIKER, tmp_path / "actions.json")["hashes"] == hashes
    assert meta_of(tmp_path / "rec")["start"] == "power-on"
    cli("replay-verify", tmp_path / "rec", "--report-dir", tmp_path / "report", "--workers", "1")

    # stable-retro's player needs a Core.bin, so the export carries the power-on state and
    # marks it power-on (no StartsFromSavestate: BizHawk boots the ROM).
    cli("export", tmp_path / "rec", "--to", tmp_path / "out.bk2")
    with zipfile.ZipFile(tmp_path / "out.bk2") as zf:
        header = zf.read("Header.txt").decode()
    assert "StartsFromSavestate" not in header and "ContraBcStartState power-on" in header
    played = retro(RETRO_PLAYBACK, tmp_path / "out.bk2")
    assert played["hashes"] == hashes and played["actions"] == actions
    cli("record", "--input", tmp_path / "out.bk2", "--out", tmp_path / "again", "--episode-until", "never")
    assert meta_of(tmp_path / "again")["start"] == "power-on"
    assert steps_of(tmp_path / "again") == (actions, hashes)
    cli("export", tmp_path / "rec", "--to", tmp_path / "out.fm2", expect=2)  # .fm2 is NES only


def _fm2(header: dict, lines: list[str]) -> str:
    head = {"version": "3", "emuVersion": "20604", "romFilename": "Outpost-Nes", "palFlag": "0", "FDS": "0",
            "fourscore": "0", "port0": "1", "port1": "0", "port2": "0",
            "romChecksum": "base64:" + base64.b64encode(b"\0" * 16).decode(), "guid": "X"}
    head.update(header)
    return "".join(f"{k} {v}\n" for k, v in head.items() if v is not None) + "".join(l + "\n" for l in lines)


def _bad_bk2(path: Path, header: str, log: str):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Header.txt", header)
        zf.writestr("Input Log.txt", log)


GOOD_LOG = "[Input]\nLogKey:#Reset|Power|#P1 Up|P1 Down|P1 Left|P1 Right|P1 A|P1 B|P1 C|P1 Start|P1 X|P1 Y|P1 Z|P1 Mode|\n"


@pytest.mark.parametrize("name, build, message", [
    ("bad-header.bk2", lambda p: _bad_bk2(p, "hello\n", GOOD_LOG + "|..|............|\n[/Input]\n"),
     "no Platform line"),
    ("width.bk2", lambda p: _bad_bk2(p, f"Platform GEN\nGameName {AIRSTRIKER}\n",
                                     GOOD_LOG + "|..|............|\n|..|.......|\n[/Input]\n"),
     "line 4 field"),
    ("unknown.bk2", lambda p: _bad_bk2(p, f"Platform GEN\nGameName {AIRSTRIKER}\n",
                                       "[Input]\nLogKey:#Reset|Power|#P1 Up|P1 Turbo|\n|..|..|\n[/Input]\n"),
     "'P1 Turbo' names a button"),
    ("truncated.bk2", lambda p: (_power_on_bk2(p.with_suffix(".tmp"), ["." * 12] * 50),
                                 p.write_bytes(p.with_suffix(".tmp").read_bytes()[:150])),
     "not a readable zip"),
    ("rom.bk2", lambda p: _power_on_bk2(p, ["." * 12] * 5, sha1="0" * 40), "SHA-1 " + "0" * 40),
    ("no-end.bk2", lambda p: _bad_bk2(p, f"Platform GEN\nGameName {AIRSTRIKER}\n", GOOD_LOG + "|..|............|\n"),
     "truncated"),
    ("bizhawk-state.bk2", lambda p: _bad_bk2(p, "MovieVersion BizHawk v2.0.0\nPlatform GEN\nGameName X\n"
                                                "StartsFromSavestate True\n", GOOD_LOG + "[/Input]\n"),
     "BizHawk savestate"),
    ("header.fm2", lambda p: p.write_text("hello world\n|0|........|||\n"), "version 3"),
    ("savestate.fm2", lambda p: p.write_text(_fm2({"savestate": "base64:AAAA"}, ["|0|........|||"])),
     "FCEUX savestate"),
    ("width.fm2", lambda p: p.write_text(_fm2({}, ["|0|........|||", "|0|.....|||"])), "line 13"),
    ("bars.fm2", lambda p: p.write_text(_fm2({}, ["|0|........||"])), "5 bars"),
    ("zapper.fm2", lambda p: p.write_text(_fm2({"port1": "2"}, ["|0|........|||"])), "zapper"),
    ("rom.fm2", lambda p: p.write_text(_fm2({}, ["|0|........|||", "|0|R.......|||"])), "MD5 " + "0" * 32),
])
def test_malformed_movies_exit_2_with_a_clear_message(tmp_path, name, build, message):
    path = tmp_path / name
    build(path)
    done = cli("record", "--input", path, "--out", tmp_path / "rec", expect=2)
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "rec").exists()


def test_movie_game_and_options_must_agree(tmp_path):
    _power_on_bk2(tmp_path / "boot.bk2", ["." * 12] * 10)
    done = cli("record", "--input", tmp_path / "boot.bk2", "--game", "Contra-Nes", "--out", tmp_path / "a", expect=2)
    assert "--game" in done.stderr
    done = cli("record", "--input", tmp_path / "boot.bk2", "--state", "Level1", "--out", tmp_path / "b", expect=2)
    assert "drop --state" in " ".join(done.stderr.split())
    frames = ["." * 12] + ["...." + "R" + "......."] * 2 + ["." * 12] * 3
    _power_on_bk2(tmp_path / "uneven.bk2", frames)
    done = cli("record", "--input", tmp_path / "uneven.bk2", "--frames-per-step", 3, "--out", tmp_path / "c",
               expect=2)
    assert "inside step 0" in " ".join(done.stderr.split())


@needs_outpost
def test_fm2_round_trip_on_the_cartridge(tmp_path):
    rom = OUTPOST_ROM.read_bytes()
    md5 = hashlib.md5(rom[16 + (512 if rom[6] & 4 else 0):]).digest()
    rng = np.random.default_rng(11)
    lines = ["|0|........|||"] + ["|0|" + "".join(c if rng.random() < 0.2 else "." for c in "RLDUTSBA") + "|||"
                                  for _ in range(400)]
    (tmp_path / "run.fm2").write_text(_fm2({"romChecksum": "base64:" + base64.b64encode(md5).decode()}, lines))
    cli("record", "--input", tmp_path / "run.fm2", "--out", tmp_path / "rec", "--episode-until", "never")
    assert meta_of(tmp_path / "rec")["start"] == "power-on"
    cli("export", tmp_path / "rec", "--to", tmp_path / "out.fm2")
    exported = [l for l in (tmp_path / "out.fm2").read_text().splitlines() if l.startswith("|")]
    assert exported == lines
    cli("record", "--input", tmp_path / "out.fm2", "--out", tmp_path / "again", "--episode-until", "never")
    assert steps_of(tmp_path / "again") == steps_of(tmp_path / "rec")
    cli("replay-verify", tmp_path / "rec", tmp_path / "again", "--report-dir", tmp_path / "report", "--workers", "1")
    # stable-retro's own player agrees with the NES power-on import too (via our .bk2 export).
    cli("export", tmp_path / "rec", "--to", tmp_path / "out.bk2")
    assert retro(RETRO_PLAYBACK, tmp_path / "out.bk2")["hashes"] == steps_of(tmp_path / "rec")[1]


def test_the_movie_files_read_back_what_was_written_without_the_emulator(tmp_path):
    """formats/movies.py alone: the writers' bytes parse back to the same frames, in a process that
    never imports the emulator layer (stable-retro's button order is passed in as data)."""
    check = textwrap.dedent("""
        import json, sys
        import numpy as np
        from contra_bc.formats.movies import read_movie, write_bk2, write_fm2
        nes = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]  # stable-retro's NES order
        frames = np.array([0, 1 << 7, (1 << 7) | 1, 0, (1 << 8) | (1 << 4), 1 << 3], np.int64)
        folder = sys.argv[1]
        write_fm2(folder + "/run.fm2", rom_filename="Outpost-Nes", rom_md5="0" * 32, buttons=nes, frames=frames)
        write_bk2(folder + "/run.bk2", game_name="Outpost-Nes", platform="Nes", rom_sha1="ab" * 20, buttons=nes,
                  frames=frames, start_state=b"state", power_on=False)
        fm2, bk2 = (read_movie(folder + "/run." + kind, lambda platform: nes) for kind in ("fm2", "bk2"))
        print(json.dumps({"fm2": fm2.frames.tolist(), "bk2": bk2.frames.tolist(), "state": bk2.start_state.decode(),
                          "sha1": bk2.rom_sha1, "md5": fm2.rom_md5, "expected": frames.tolist(),
                          "layers": sorted(m for m in sys.modules if m in ("stable_retro", "torch", "contra_bc.emulator"))}))
    """)
    done = subprocess.run([sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True,
                          env=cli_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["fm2"] == got["bk2"] == got["expected"]
    assert (got["state"], got["sha1"], got["md5"]) == ("state", "ab" * 20, "0" * 32)
    assert got["layers"] == []
