"""Write the Outpost-Nes start states Level1.state and Level2.state.

Boots the cartridge from power-on, pokes the level variable ($30) on the title screen
(Level2 only), presses START and saves the emulator state on the first frame of play
($2C == 04). Deterministic: rerunning writes the same bytes.
Usage: PYTHONPATH=. python cartridge/make_states.py
"""
import gzip
import os

import numpy as np
import stable_retro as retro

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATIONS = os.path.join(HERE, "..", "contra_bc", "games", "integrations")
START = 1 << 3


def main():
    retro.data.Integrations.add_custom_path(os.path.abspath(INTEGRATIONS))
    env = retro.make("Outpost-Nes", state=retro.State.NONE, inttype=retro.data.Integrations.ALL,
                     use_restricted_actions=retro.Actions.ALL, render_mode=None)
    em = env.unwrapped.em
    env.reset()
    boot = em.get_state()
    for level in (0, 1):
        em.set_state(boot)
        for _ in range(10):
            env.step(_buttons(0))
        env.unwrapped.set_value("level", level)
        _, _, _, _, info = env.step(_buttons(START))
        for _ in range(600):
            if info["level_routine"] == 4:
                break
            _, _, _, _, info = env.step(_buttons(0))
        else:
            raise RuntimeError("play did not start")
        path = os.path.join(INTEGRATIONS, "Outpost-Nes", f"Level{level + 1}.state")
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(em.get_state())
        print("wrote", path)
    env.close()


def _buttons(action):
    return np.array([(action >> i) & 1 for i in range(9)], dtype=np.int8)


if __name__ == "__main__":
    main()
