"""Action tokenisation: a button bitmask <-> one token per button group.

The platform's buttons are split into groups. A group of k buttons is one token
with 2**k classes: the class is the sub-bitmask of that group's buttons, so
every combination, including the odd ones a human can press on a pad (UP+DOWN,
LEFT+RIGHT), has its own class and round-trips exactly.

Groups are derived from the button list, never from the game name:
  - "dpad": UP, DOWN, LEFT, RIGHT together (16 classes: 9 directions + 7 opposed combos),
  - every other named button on its own (2 classes: released / pressed).
For NES: dpad, B, SELECT, START, A -> 5 tokens per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from contra_bc.errors import UserError

DPAD = ("UP", "DOWN", "LEFT", "RIGHT")


@dataclass(frozen=True)
class ActionGroup:
    name: str
    bits: tuple[int, ...]  # bit positions in the platform bitmask, in class-bit order

    @property
    def classes(self) -> int:
        return 1 << len(self.bits)


@dataclass(frozen=True)
class ActionSchema:
    buttons: tuple  # platform button names, None for empty slots
    groups: tuple[ActionGroup, ...]

    @classmethod
    def from_buttons(cls, buttons) -> "ActionSchema":
        buttons = tuple(buttons)
        names = {b.upper(): i for i, b in enumerate(buttons) if b}
        groups = []
        if all(d in names for d in DPAD):
            groups.append(ActionGroup("dpad", tuple(names[d] for d in DPAD)))
        for i, b in enumerate(buttons):
            if b and not (b.upper() in DPAD and groups and groups[0].name == "dpad"):
                groups.append(ActionGroup(b, (i,)))
        if not groups:
            raise UserError(f"the dataset's button list {list(buttons)} names no buttons; rebuild the dataset "
                            "from recordings whose meta.json lists the platform buttons.")
        return cls(buttons, tuple(groups))

    @property
    def vocab(self) -> list[int]:
        return [g.classes for g in self.groups]

    @property
    def known_mask(self) -> int:
        return sum(1 << b for g in self.groups for b in g.bits)

    def encode(self, action: int) -> list[int]:
        """Bitmask -> one class per group."""
        return [sum(((action >> b) & 1) << j for j, b in enumerate(g.bits)) for g in self.groups]

    def decode(self, tokens) -> int:
        """One class per group -> bitmask."""
        return sum(((int(c) >> j) & 1) << b for g, c in zip(self.groups, tokens) for j, b in enumerate(g.bits))

    def encode_tensor(self, actions):
        """int64 bitmask tensor [...] -> int64 tokens [..., G]."""
        import torch

        cols = []
        for g in self.groups:
            cls = torch.zeros_like(actions)
            for j, b in enumerate(g.bits):
                cls |= ((actions >> b) & 1) << j
            cols.append(cls)
        return torch.stack(cols, dim=-1)

    def decode_tensor(self, tokens):
        """int64 tokens [..., G] -> int64 bitmask [...]."""
        import torch

        out = torch.zeros(tokens.shape[:-1], dtype=torch.int64, device=tokens.device)
        for gi, g in enumerate(self.groups):
            for j, b in enumerate(g.bits):
                out |= ((tokens[..., gi] >> j) & 1) << b
        return out

    def check_representable(self, actions) -> None:
        """UserError if any action sets a bit that belongs to no button (an empty slot)."""
        import torch

        stray = torch.as_tensor(actions) & ~self.known_mask
        if bool(stray.any()):
            bad = int(torch.as_tensor(actions).flatten()[stray.flatten().nonzero()[0, 0]])
            raise UserError(f"action bitmask {bad} sets a bit with no button name in {list(self.buttons)}; "
                            "the dataset is inconsistent with its button list. Rebuild it with "
                            "`contra-bc build-dataset` from verified recordings.")

    def to_json(self) -> dict:
        return {"buttons": list(self.buttons),
                "groups": [{"name": g.name, "bits": list(g.bits), "classes": g.classes,
                            "buttons": [self.buttons[b] for b in g.bits]} for g in self.groups]}

    @classmethod
    def from_json(cls, obj: dict) -> "ActionSchema":
        return cls(tuple(obj["buttons"]), tuple(ActionGroup(g["name"], tuple(g["bits"])) for g in obj["groups"]))
