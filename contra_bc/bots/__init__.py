"""Scripted players for `record --input bot:NAME`.

A bot is created with a seed and asked for one action per step:

    bot = make_bot("random", game, seed=0)
    bot.reset(emu)
    action = bot.act(emu)       # int bitmask over game.buttons

Bots may read the emulator (RAM, screen) and may search ahead with
``emu.get_state()`` / ``emu.set_state()`` as long as they restore the state.
"""

from __future__ import annotations

from contra_bc.errors import UserError


def _registry():
    from contra_bc.bots import basic

    bots = {
        "random": (basic.RandomMomentum, "seeded random buttons held for random stretches (any game)"),
        "airstriker": (basic.AirstrikerHeuristic, "sweeps the ship side to side and taps fire (Airstriker)"),
    }
    try:
        from contra_bc.bots import expert_outpost

        bots["expert"] = (expert_outpost.ExpertOutpost, "wins Outpost-Nes levels at per-frame control")
        bots["expert-steady"] = (expert_outpost.SteadyExpertOutpost,
                                 "the expert taking off at the same point before each kind of hazard")
        bots["expert-noisy"] = (expert_outpost.NoisyExpertOutpost,
                                "the steady expert with injected mistakes (steps marked `perturbation`, not "
                                "trained on) and its recoveries")
        bots["expert-respawn"] = (expert_outpost.RespawnExpertOutpost,
                                  "expert-noisy that walks into Level 1's turret bullet once (its first life, "
                                  "not trained on) and plays on from the respawn")
        bots["expert-drill"] = (expert_outpost.DrillExpertOutpost,
                                "expert-noisy after a seeded 0-89 step wait (not trained on): drills from a "
                                "mid-level state such as Level1Turret")
    except ImportError:
        pass
    return bots


def make_bot(name: str, game, seed: int):
    bots = _registry()
    if name not in bots:
        raise UserError(f"Unknown bot {name!r}. Bots: {', '.join(sorted(bots))} (use --input bot:NAME).")
    cls = bots[name][0]
    return cls(seed=seed, game=game)
