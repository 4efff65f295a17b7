"""Write the Outpost-Nes start states (Level1.state, Level2.state, Level1Turret.state) and the docs screenshot.

Boots the cartridge from power-on, presses SELECT on the title screen once per level to
skip (SELECT picks the starting level), presses START and saves the emulator state on the
first frame of play ($2C == 04). Level1Turret.state is the first frame of Level 1's screen 1
(the turret under the laser ceiling) as the steady expert (seed 0) reaches it: a start state
for drills of the level's hardest stretch. Then the expert plays Level 1 for a while and the screen
is saved, scaled 3x, as docs/cartridge-level1.png. Deterministic: reruns write the same bytes.

Usage: PYTHONPATH=. python cartridge/make_states.py
"""
from __future__ import annotations

import gzip
from pathlib import Path

from PIL import Image

from contra_bc.emulator import Emulator, INTEGRATIONS_DIR

ROOT = Path(__file__).resolve().parents[1]
SELECT, START = 1 << 2, 1 << 3
SCREENSHOT_FRAME = 300


def start_state(emu: Emulator, boot: bytes, level: int) -> bytes:
    emu.set_state(boot)
    emu.step(0, 10)
    for _ in range(level):
        emu.step(SELECT)
        emu.step(0)
    emu.step(START)
    for _ in range(600):
        if emu.ram()[0x2C] == 4:
            return emu.get_state()
        emu.step(0)
    raise RuntimeError("play did not start")


def screen_state(emu: Emulator, bot, screen: int) -> bytes:
    """The state on the first frame the bot's player stands on ``screen`` of Level 1."""
    emu.reset("Level1")
    bot.reset(emu)
    for _ in range(20000):
        ram = emu.ram()
        if ram[0x64] == screen and ram[0x90] == 1:
            return emu.get_state()
        emu.step(bot.act(emu))
    raise RuntimeError(f"the bot did not reach screen {screen}")


def main() -> None:
    emu = Emulator("Outpost-Nes")
    boot = emu.get_state()
    for level in (0, 1):
        path = INTEGRATIONS_DIR / "Outpost-Nes" / f"Level{level + 1}.state"
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(start_state(emu, boot, level))
        print("wrote", path)

    from contra_bc.bots.expert_outpost import ExpertOutpost, SteadyExpertOutpost
    path = INTEGRATIONS_DIR / "Outpost-Nes" / "Level1Turret.state"
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(screen_state(emu, SteadyExpertOutpost(seed=0), screen=1))
    print("wrote", path)

    emu.reset("Level1")
    bot = ExpertOutpost(seed=0)
    bot.reset(emu)
    for _ in range(SCREENSHOT_FRAME):
        emu.step(bot.act(emu))
    shot = Image.fromarray(emu.screen())
    out = ROOT / "docs" / "cartridge-level1.png"
    out.parent.mkdir(exist_ok=True)
    shot.resize((shot.width * 3, shot.height * 3), Image.NEAREST).save(out, optimize=False)
    print("wrote", out)


if __name__ == "__main__":
    main()
