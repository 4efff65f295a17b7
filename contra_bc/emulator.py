"""The emulator layer: the only module that imports stable-retro.

Each game is data: a JSON file in ``contra_bc/games/`` naming its stable-retro
integration, the RAM variables we read and the rules that turn them into an
outcome. Our own cartridge ships as a custom integration in
``contra_bc/games/integrations/``.

Reset rule (the same as stable-retro's own ``reset``): load the start state,
then run ``RESET_FRAMES`` frame with no button pressed. The screen after that
frame is the first observation; ``set_state`` alone leaves a stale screen.

stable-retro allows one emulator per process; use ``spawn`` workers.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contra_bc.errors import UserError

GAMES_DIR = Path(__file__).parent / "games"
INTEGRATIONS_DIR = GAMES_DIR / "integrations"
RESET_FRAMES = 1
OUTCOMES = ("win", "death", "game_over", "none")


def digest64(buffer) -> int:
    """64-bit BLAKE2b of a buffer, as a signed int (fits parquet int64)."""
    return int.from_bytes(hashlib.blake2b(buffer, digest_size=8).digest(), "little", signed=True)


@dataclass(frozen=True)
class Game:
    """One game as data: integration, buttons, variables, outcome rules."""

    name: str
    title: str
    platform: str
    integration: str  # stable | experimental | custom
    default_state: str
    variables: dict
    outcome_rules: dict
    progress: dict
    rom_sha1: str | None = None
    import_hint: str = ""
    notes: str = ""
    buttons: tuple = field(default=())

    @property
    def button_names(self) -> list[str]:
        """Names of the buttons that exist (the None slots dropped)."""
        return [b for b in self.buttons if b]


def _retro():
    import stable_retro

    stable_retro.data.Integrations.add_custom_path(str(INTEGRATIONS_DIR))
    return stable_retro


def _inttype(retro):
    return retro.data.Integrations.ALL


@functools.lru_cache(maxsize=None)
def _buttons_for(platform: str) -> tuple:
    retro = _retro()
    info = retro.data.EMU_INFO if hasattr(retro.data, "EMU_INFO") else {}
    if platform in info:
        return tuple(info[platform]["buttons"])
    raise UserError(f"stable-retro knows no platform {platform!r}.")


def platform_buttons(platform: str) -> list:
    """stable-retro's button order for a platform (None marks an unused bit)."""
    return list(_buttons_for(platform))


def list_games() -> list[Game]:
    """All games in the registry, sorted by name."""
    return [get_game(p.stem) for p in sorted(GAMES_DIR.glob("*.json"))]


def get_game(name: str) -> Game:
    """The registry entry for ``name``; a UserError naming the choices if unknown."""
    path = GAMES_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(GAMES_DIR.glob("*.json")))
        raise UserError(f"Unknown game {name!r}. Known games: {known}. See `contra-bc games`.")
    return game_from_file(path)


def game_of_recording(meta: dict, where, *, same_rom: bool = True) -> Game:
    """The game a recording's meta.json names, checked against its platform and buttons (a meta.json
    edited to name another game would press that game's buttons with this one's bits) and, with
    ``same_rom``, the ROM it was made with against the installed one (inputs replay only on their ROM)."""
    game = get_game(meta["game"])
    if meta.get("platform") != game.platform or list(meta["buttons"]) != list(game.buttons):
        raise UserError(f"{where}/meta.json names the game {game.name} ({game.platform}, buttons "
                        f"{[b for b in game.buttons if b]}) but holds platform {meta.get('platform')!r} and buttons "
                        f"{[b for b in meta['buttons'] if b]}: the file was edited or comes from another recording. "
                        f"Restore it, or record the episode again.")
    expected = expected_rom_sha1(game) if same_rom else "unknown"
    if meta.get("rom_sha1") and expected != "unknown" and meta["rom_sha1"] != expected:
        raise UserError(f"{where} was recorded with ROM SHA-1 {meta['rom_sha1']}, but the {game.name} installed here "
                        f"is {expected}. Its inputs replay only on the ROM they were made on: import that ROM "
                        f"(`python -m stable_retro.import DIR`), or record the run again with this one.")
    return game


def game_from_file(path: Path) -> Game:
    """A game entry read from its JSON file, its outcome rules checked; UserError if malformed."""
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"The game file {path} is not valid JSON: {exc}.") from exc
    variables = spec.get("variables", {})
    for outcome, rule in spec.get("outcome", {}).items():
        problem = rule_problem(rule, variables, outcome)
        if outcome not in OUTCOMES[:-1] or problem:
            raise UserError(f"The game file {path} has a bad outcome rule: "
                            f"{problem or f'unknown outcome {outcome!r} (outcomes: win, death, game_over)'}. "
                            f"The rule language is in docs/formats.md, 'Game variables and outcomes'.")
    return Game(
        name=spec["name"],
        title=spec.get("title", spec["name"]),
        platform=spec["platform"],
        integration=spec["integration"],
        default_state=spec["default_state"],
        variables=variables,
        outcome_rules=spec.get("outcome", {}),
        progress=spec.get("progress", {}),
        rom_sha1=spec.get("rom_sha1"),
        import_hint=spec.get("import_hint", ""),
        notes=spec.get("notes", ""),
        buttons=_buttons_for(spec["platform"]),
    )


def rom_path(game: Game) -> Path | None:
    """Where stable-retro finds this game's ROM, or None if it is not imported."""
    retro = _retro()
    try:
        return Path(retro.data.get_romfile_path(game.name, _inttype(retro)))
    except FileNotFoundError:
        return None


def expected_rom_sha1(game: Game) -> str:
    """The ROM SHA-1 the integration expects (NES: without the 16-byte header)."""
    retro = _retro()
    try:
        sha_file = retro.data.get_file_path(game.name, "rom.sha", _inttype(retro))
    except FileNotFoundError:
        sha_file = None
    if sha_file and os.path.exists(sha_file):
        return Path(sha_file).read_text().split()[0].strip()
    return game.rom_sha1 or "unknown"


def list_states(game: Game) -> list[str]:
    retro = _retro()
    return list(retro.data.list_states(game.name, _inttype(retro)))


def describe_games() -> list[dict]:
    """What `contra-bc games` lists: per game its ROM (present? the SHA-1 it needs, how to import it),
    start states and buttons."""
    rows = []
    for g in list_games():
        rom = rom_path(g)
        rows.append({"game": g.name, "title": g.title, "platform": g.platform, "integration": g.integration,
                     "rom_present": rom is not None, "rom_sha1": expected_rom_sha1(g),
                     "states": list_states(g), "buttons": g.button_names,
                     "import": None if rom else (g.import_hint or "python -m stable_retro.import DIR")})
    return rows


def missing_rom_error(game: Game) -> UserError:
    hint = game.import_hint or "python -m stable_retro.import DIR_WITH_THE_ROM"
    return UserError(
        f"The ROM for {game.name} ({game.title}) is not imported into stable-retro. "
        f"It must have SHA-1 {expected_rom_sha1(game)} (for NES files: the SHA-1 of the file "
        f"without its 16-byte header). Import the ROM you own with `{hint}`, then check with "
        f"`contra-bc games`. To try the toolkit without it, use --game Outpost-Nes."
    )


def load_state_file(game: Game, state: str) -> bytes:
    """The raw emulator state bytes of a named start state of ``game``."""
    retro = _retro()
    name = state if state.endswith(".state") else state + ".state"
    try:
        path = retro.data.get_file_path(game.name, name, _inttype(retro))
    except FileNotFoundError:
        path = None
    if not path or not os.path.exists(path):
        states = ", ".join(list_states(game)) or "none"
        raise UserError(f"Game {game.name} has no start state {state!r}. Its states: {states}.")
    with gzip.open(path, "rb") as fh:
        return fh.read()


OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "&", "in")


def _check(value: int, op: str, ref) -> bool:
    if op == "==":
        return value == ref
    if op == "!=":
        return value != ref
    if op == ">=":
        return value >= ref
    if op == "<=":
        return value <= ref
    if op == ">":
        return value > ref
    if op == "<":
        return value < ref
    if op == "&":
        return bool(value & ref)
    if op == "in":
        return value in ref
    raise ValueError(f"unknown operator {op!r} in game rules")


def rule_fires(rule, now: dict, before: dict | None) -> bool:
    """Evaluate one outcome rule: a condition ``[variable, op, value]``, ``{"any": [rules]}``,
    ``{"all": [rules]}``, ``{"not": rule}`` or ``{"decrease": variable}``; any and all nest."""
    if isinstance(rule, (list, tuple)):
        name, op, ref = rule
        return _check(now[name], op, ref)
    if "decrease" in rule:
        name = rule["decrease"]
        return before is not None and now[name] < before[name]
    if "any" in rule:
        return any(rule_fires(part, now, before) for part in rule["any"])
    if "all" in rule:
        return all(rule_fires(part, now, before) for part in rule["all"])
    if "not" in rule:
        return not rule_fires(rule["not"], now, before)
    raise ValueError(f"bad outcome rule {rule!r}")


def rule_problem(rule, variables: dict, where: str = "rule") -> str | None:
    """Why ``rule`` is not a valid outcome rule over ``variables`` (None when it is)."""
    if isinstance(rule, (list, tuple)):
        if len(rule) != 3:
            return f"{where}: a condition is [variable, operator, value], got {rule!r}"
        name, op, ref = rule
        if name not in variables:
            return f"{where}: unknown variable {name!r} (variables: {', '.join(variables) or 'none'})"
        if op not in OPERATORS:
            return f"{where}: unknown operator {op!r} (operators: {' '.join(OPERATORS)})"
        if op == "in":
            if not isinstance(ref, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in ref):
                return f"{where}: 'in' needs a list of integers, got {ref!r}"
        elif not isinstance(ref, int) or isinstance(ref, bool):
            return f"{where}: {op!r} needs an integer, got {ref!r}"
        return None
    if not isinstance(rule, dict) or len(rule) != 1:
        return (f"{where}: a rule is a condition [variable, op, value] or an object with exactly one of "
                f"any, all, not, decrease; got {rule!r}")
    (key, body), = rule.items()
    if key == "decrease":
        return None if body in variables else f"{where}: decrease of unknown variable {body!r}"
    if key == "not":
        return rule_problem(body, variables, f"{where}.not")
    if key in ("any", "all"):
        if not isinstance(body, list) or not body:
            return f"{where}.{key}: needs a non-empty list of rules, got {body!r}"
        for i, part in enumerate(body):
            problem = rule_problem(part, variables, f"{where}.{key}[{i}]")
            if problem:
                return problem
        return None
    return f"{where}: unknown rule key {key!r} (use any, all, not or decrease)"


def classify(game: Game, now: dict, before: dict | None) -> str:
    """The outcome that holds at this step: game_over beats win beats death."""
    for outcome in ("game_over", "win", "death"):
        rule = game.outcome_rules.get(outcome)
        if rule and rule_fires(rule, now, before):
            return outcome
    return "none"


PROGRESS_PER_LEVEL = 256 * 256  # progress_of's number for one level (256 screens of 256)


def level_start(progress: list) -> int:
    """The progress number where the level of the lowest of ``progress`` begins (0 for an empty list):
    what counts from the start of the level played, for shares and chart axes."""
    return (int(min(progress)) // PROGRESS_PER_LEVEL) * PROGRESS_PER_LEVEL if progress else 0


def progress_of(game: Game, variables: dict) -> int:
    """One number that grows as the player gets further: level, screen, offset."""
    spec = game.progress
    level = variables.get(spec.get("level", ""), 0)
    screen = variables.get(spec.get("screen", ""), 0)
    offset = variables.get(spec.get("offset", ""), 0)
    return level * PROGRESS_PER_LEVEL + screen * 256 + offset


class Emulator:
    """One stable-retro emulator for one game. One per process."""

    def __init__(self, game: Game | str):
        self.game = get_game(game) if isinstance(game, str) else game
        if rom_path(self.game) is None:
            raise missing_rom_error(self.game)
        retro = _retro()
        try:
            self._env = retro.make(
                self.game.name,
                state=retro.State.NONE,
                inttype=_inttype(retro),
                use_restricted_actions=retro.Actions.ALL,
                render_mode=None,
            )
        except RuntimeError as exc:
            if "one" in str(exc).lower() and "emulator" in str(exc).lower():
                raise RuntimeError(
                    "stable-retro allows one emulator per process; use spawn workers"
                ) from exc
            raise
        self._em = self._env.unwrapped.em
        self._data = self._env.unwrapped.data
        for name, spec in self.game.variables.items():
            self._data.set_variable(name, dict(spec))
        self.buttons = list(self.game.buttons)
        # Captured before any frame runs: the start of power-on movies (.fm2, BizHawk .bk2).
        self._power_on_state = self._em.get_state()
        self._mask = np.zeros(len(self.buttons), np.uint8)
        self.frames = 0

    # -- state -------------------------------------------------------------
    def reset(self, state: str | bytes | None = None) -> bytes:
        """Load a named start state or raw state bytes; returns the bytes loaded."""
        if state is None:
            state = self.game.default_state
        raw = load_state_file(self.game, state) if isinstance(state, str) else bytes(state)
        try:
            loaded = self._em.set_state(raw)
        except Exception as exc:  # the core rejects bytes it cannot parse
            raise UserError(f"The start state could not be loaded into {self.game.name}: {exc}") from exc
        # the core returns False for a cut-off state, but may take random bytes of the right length without
        # a word: a state of this core also starts with the core's own header (e.g. "FCS", "GENPLUS-GX")
        if not loaded or raw[:8] != self._power_on_state[:8]:
            raise UserError(f"The start state ({len(raw)} bytes) is not a state of {self.game.name}'s emulator "
                            f"core: it is cut off or damaged (a movie's Core.bin, a recording's start_state.gz). "
                            f"Use an undamaged copy, or start from a named state (`contra-bc games` lists them).")
        self._data.reset()
        for _ in range(RESET_FRAMES):
            self.step(0)
        self.frames = 0
        return raw

    def get_state(self) -> bytes:
        return self._em.get_state()

    def power_on_state(self) -> bytes:
        """The state right after power-on, before any frame (``reset`` it to boot the game)."""
        return self._power_on_state

    @property
    def frame_rate(self) -> float:
        """Frames per second of the console (NES ~60.1, Genesis ~59.92)."""
        return float(self._em.get_screen_rate())

    def set_state(self, raw: bytes) -> None:
        """Restore exact emulator state (the screen stays stale until the next step)."""
        self._em.set_state(raw)
        self._data.update_ram()

    # -- stepping ----------------------------------------------------------
    def mask_array(self, action: int) -> np.ndarray:
        mask = self._mask
        for i in range(len(mask)):
            mask[i] = (action >> i) & 1
        return mask

    def step(self, action: int, frames: int = 1) -> None:
        """Hold the buttons of ``action`` (bit i = button i) for ``frames`` frames."""
        self._em.set_button_mask(self.mask_array(action), 0)
        for _ in range(frames):
            self._em.step()
        self._data.update_ram()
        self.frames += frames

    # -- observation -------------------------------------------------------
    def screen(self) -> np.ndarray:
        """The current screen, H×W×3 uint8."""
        return self._em.get_screen()

    def ram(self) -> np.ndarray:
        blocks = self._data.memory.blocks
        return np.concatenate([np.frombuffer(blocks[k], dtype=np.uint8) for k in sorted(blocks)])

    def variables(self) -> dict[str, int]:
        return {name: int(self._data.lookup_value(name)) for name in self.game.variables}

    def frame_hash(self) -> int:
        return digest64(self._em.get_screen())

    def ram_hash(self) -> int:
        return digest64(self.ram())

    def close(self) -> None:
        self._env.close()


def variables_from_ram(game: Game, ram: bytes) -> dict[str, int]:
    """The game's variables read from a RAM snapshot without an emulator (a NES's 2 KiB, addressed as the
    CPU sees it): for imported recordings, whose RAM came with the frames. Types as stable-retro writes
    them: byte order (| < >), kind (u unsigned, i signed) and size in bytes."""
    out = {}
    for name, spec in game.variables.items():
        kind = spec["type"]
        order, sign, size = kind[0], kind[1], int(kind[2:])
        address = int(spec["address"])
        if sign not in "ui" or order not in "|<>" or address + size > len(ram):
            raise UserError(f"{game.name}'s variable {name} ({kind} at {address}) cannot be read from a RAM snapshot "
                            f"of {len(ram)} bytes; imported recordings support u and i types within the 2 KiB RAM.")
        out[name] = int.from_bytes(ram[address:address + size], "big" if order == ">" else "little",
                                   signed=sign == "i")
    return out


def action_names(buttons: list, action: int) -> list[str]:
    return [b for i, b in enumerate(buttons) if b and (action >> i) & 1]
