"""Quality filter for episodes, after P2P appendix A.3, adapted to a console game.

P2P drops videos where one key is held for more than 60% of frames. In a
side-scroller holding RIGHT for most of a run is normal play, so here the
direction pad is exempt from the hold rule; what we catch is stuck input (a
non-direction button never released for most of the episode, or the very same
action for the whole episode) and too little interaction (few action changes
per minute). Defaults and the data behind them: docs/formats.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from contra_bc.config import BuildConfig

DIRECTIONS = ("UP", "DOWN", "LEFT", "RIGHT")


@dataclass(frozen=True)
class QualityFilter:
    max_hold_fraction: float = BuildConfig.max_hold_fraction  # longest unbroken hold of a non-direction button / steps
    min_changes_per_minute: float = BuildConfig.min_changes_per_minute
    min_steps: int = BuildConfig.filter_min_steps  # shorter episodes are not judged (too little evidence)
    enabled: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def longest_run(bits: np.ndarray) -> int:
    """Length of the longest run of True values."""
    if not bits.any():
        return 0
    padded = np.concatenate([[False], bits, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def measure(actions: np.ndarray, buttons: list, hz: float) -> dict:
    """Per-episode input statistics the filter decides on."""
    actions = np.asarray(actions, dtype=np.int64)
    n = len(actions)
    changes = int((actions[1:] != actions[:-1]).sum()) if n > 1 else 0
    minutes = n / hz / 60.0 if n else 0.0
    holds = {}
    for i, name in enumerate(buttons):
        if name:
            holds[name] = longest_run(((actions >> i) & 1).astype(bool)) / n if n else 0.0
    stuck = {k: v for k, v in holds.items() if k.upper() not in DIRECTIONS}
    worst = max(stuck, key=stuck.get) if stuck else None
    return {
        "steps": n,
        "action_changes": changes,
        "changes_per_minute": round(changes / minutes, 2) if minutes else 0.0,
        "constant_action": bool(n > 0 and changes == 0),
        "longest_hold_button": worst,
        "longest_hold_fraction": round(stuck[worst], 4) if worst else 0.0,
        "hold_fraction_by_button": {k: round(v, 4) for k, v in holds.items()},
    }


def judge(stats: dict, qf: QualityFilter, buttons: list, actions: np.ndarray) -> str | None:
    """The reason to drop an episode, or None to keep it."""
    if not qf.enabled or stats["steps"] < qf.min_steps:
        return None
    if stats["constant_action"]:
        names = "+".join(b for i, b in enumerate(buttons) if b and (int(actions[0]) >> i) & 1) or "nothing"
        return f"stuck input: the same action ({names}) for all {stats['steps']} steps"
    if stats["longest_hold_fraction"] > qf.max_hold_fraction:
        return (f"stuck input: {stats['longest_hold_button']} held without release for "
                f"{stats['longest_hold_fraction']:.0%} of the episode (limit {qf.max_hold_fraction:.0%})")
    if stats["changes_per_minute"] < qf.min_changes_per_minute:
        return (f"too little interaction: {stats['changes_per_minute']:.1f} action changes per minute "
                f"(minimum {qf.min_changes_per_minute:g})")
    return None
