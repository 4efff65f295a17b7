"""A frame-precise expert for the Outpost-Nes cartridge.

Rules read the level from RAM and propose short moves (run, hop, full jump, wait, back off);
a depth-first search over exact save states keeps only moves the player survives, looking a
margin beyond what it commits to so it never walks into a death it cannot escape. Fire is a
pattern of 1-2 frame B taps every 3-4 frames, which the gate's regenerating HP requires.
The seed picks fire rhythm, run lengths, jump holds and take-off points: different runs,
all valid.

    emu = Emulator("Outpost-Nes"); emu.reset("Level1")
    bot = ExpertOutpost(seed=3)
    bot.reset(emu)
    while not done:
        emu.step(bot.act(emu))

`emu` is a contra_bc.emulator.Emulator (anything with ram(), get_state(), set_state(),
step(action, frames)); the search always restores the state it started from.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Callable, Optional

B, SELECT, START, UP, DOWN, LEFT, RIGHT, A = 1 << 0, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8

# RAM addresses (see docs/cartridge.md)
LEVEL_ROUTINE, BOSS_DEFEATED, SCREEN, PLAYER_X, PLAYER_STATE = 0x2C, 0x3B, 0x64, 0x65, 0x90
ENEMY_BULLET_X, ENEMY_BULLET_ACTIVE = 0x7C, 0x80  # two enemy bullets: x, and 1 while in flight
FIRE_COOLDOWN = 0x20  # frames until B may fire again (decremented before the press is read)
DEATH_FLAG, PLAYER_Y, ON_GROUND, TERRAIN = 0xB4, 0x16, 0x1B, 0x300

COMMIT_FRAMES = 60      # frames of plan handed out per search
MARGIN_FRAMES = 60      # the plan must also survive this far beyond the committed part
MAX_SIMULATIONS = 400   # candidate moves tried per search before settling for the longest

Move = Callable[[int, "object"], Optional[int]]


def _run(n: int, direction: int = RIGHT) -> Move:
    return lambda i, ram: direction if i < n else None


def _jump(lead: int, hold: int, direction: int = RIGHT) -> Move:
    """Run `lead` frames, press A for `hold` frames, keep running until landed."""
    def move(i, ram):
        if i < lead:
            return direction
        if i < lead + hold:
            return direction | A
        if ram[ON_GROUND] == 1 or i > lead + hold + 90:
            return None
        return direction
    return move


TAP_HOLDS = (1, 2)  # frames of A for a low hop (a mine under a laser ceiling: 3 frames rise into the laser)

# Where a steady expert takes off: px from the player's centre to the hazard's first column.
# (A pit is cleared by a full jump from 0-15 px before it, a mine under a laser by a tap from 0-8.)
STEADY_TAKEOFF = {" ": 8, "*": 3, "^": 4}


class ExpertOutpost:
    """``steady=False``: each move is drawn from all that survive (take-off points spread evenly over
    everything that works). ``steady=True``: the same search, but moves are tried nearest first to one
    take-off point per hazard kind (STEADY_TAKEOFF, moved by -1..1 px per seed), as a practised player
    jumps where the screen says to, so the timing of a jump is something a policy can see."""

    def __init__(self, seed: int, game=None, steady: bool = False):
        self.seed = seed
        self.steady = steady
        self.rng = random.Random(seed)
        self.fire_period = self.rng.choice([3, 4])
        self.fire_press = self.rng.choice([1, 2]) if self.fire_period == 4 else 1
        self.fire_phase = self.rng.randrange(self.fire_period)
        self.frame = 0
        self.plan: deque = deque()
        self.tap_holds = TAP_HOLDS
        self.sticky = False  # has an action of ours not run? then tap short and fire by the cooldown
        self.previous = 0    # the action that ran last step

    def reset(self, emu) -> None:
        self.rng = random.Random(self.seed)
        self.frame = 0
        self.plan.clear()
        self.tap_holds = TAP_HOLDS
        self.sticky = False
        self.previous = 0

    # -- per-frame decision ---------------------------------------------------------------
    def act(self, emu) -> int:
        ram = emu.ram()
        frame = self.frame
        self.frame += 1
        if ram[LEVEL_ROUTINE] != 4 or ram[PLAYER_STATE] != 1 or ram[BOSS_DEFEATED]:
            self.plan.clear()
            self.previous = 0
            return 0
        if self.plan and self.plan[0][1] != self._where(ram):
            self.plan.clear()  # someone else moved the game: plan again from here
        if not self.plan:
            self.plan.extend(self._search(emu, frame))
        if not self.plan:
            action = RIGHT | self._fire(frame, ram, self.previous)
        else:
            action = self.plan.popleft()[0]
            if self.sticky:  # the shot follows what really ran, not the plan's guess of it
                action = (action & ~B) | self._fire(frame, ram, self.previous)
        self.previous = action
        return action

    def observe_executed(self, action: int, chosen: int) -> None:
        """The emulator ran another action than the one handed out (sticky actions): plan again from
        where the game is now, as a player who feels the jump did not start presses again. From then
        on taps are one frame: a repeated release makes a tap a frame longer, and a 3-frame hop under
        a laser ceiling dies, so only the shortest tap leaves room for one repeat."""
        if (action ^ chosen) & ~B:  # where only a shot's timing changed, the course is the same
            self.plan.clear()
        self.tap_holds = (1,)
        self.sticky = True
        self.previous = action

    def _fire(self, frame: int, ram, previous: int) -> int:
        """B or 0 for this frame. A steady rhythm (taps every 3 or 4 frames, seeded) while every action
        runs as chosen; once one has not, a tap whenever it fires at once: B was up the frame before and
        the cooldown ends this frame. Under sticky controls a rhythm drifts from what the shots really
        were; this rule reads it off the game, and a policy can read it off the executed actions."""
        if self.sticky:
            return B if not previous & B and ram[FIRE_COOLDOWN] <= 1 else 0
        return B if (frame - self.fire_phase) % self.fire_period < self.fire_press else 0

    @staticmethod
    def _where(ram):
        return int(ram[SCREEN]), int(ram[PLAYER_X]), int(ram[PLAYER_Y])

    # -- search ----------------------------------------------------------------------------
    def _search(self, emu, frame0: int) -> list:
        start = emu.get_state()
        target = COMMIT_FRAMES + MARGIN_FRAMES
        budget = [MAX_SIMULATIONS]
        best: list = []

        def dfs(state, steps):
            nonlocal best
            if len(steps) > len(best):
                best = steps
            if len(steps) >= target or (steps and steps[-1][2]):
                return steps
            emu.set_state(state)
            ram = emu.ram()
            for move in self._candidates(ram):
                if budget[0] <= 0:
                    return None
                budget[0] -= 1
                emu.set_state(state)
                seg = self._simulate(emu, move, frame0 + len(steps), steps[-1][0] if steps else self.previous)
                if seg is None:
                    continue
                found = dfs(emu.get_state(), steps + seg)
                if found is not None:
                    return found
            return None

        found = dfs(start, [])
        emu.set_state(start)
        steps = found if found is not None else best
        if steps and steps[-1][2]:
            return [(a, w) for a, w, _ in steps]
        return [(a, w) for a, w, _ in steps[:COMMIT_FRAMES]]

    def _simulate(self, emu, move: Move, frame: int, previous: int):
        """Play one move; None if the player dies, else [(action, where_before, won)]."""
        seg = []
        ram = emu.ram()
        i = 0
        while True:
            base = move(i, ram)
            if base is None:
                return seg
            action = base | self._fire(frame + i, ram, previous)
            previous = action
            where = self._where(ram)
            emu.step(action)
            ram = emu.ram()
            if ram[PLAYER_STATE] == 2 or ram[DEATH_FLAG] & 1:
                return None
            won = bool(ram[BOSS_DEFEATED])
            seg.append((action, where, won))
            if won:
                return seg
            i += 1

    def _candidates(self, ram) -> list:
        """Moves to try, best first: rules for the next hazard, then seeded fallbacks."""
        rng = self.rng
        centre = int(ram[PLAYER_X]) + 4
        terrain = bytes(ram[TERRAIN:TERRAIN + 32])
        hazard, distance = None, 999
        for col in range(32):
            code = chr(terrain[col])
            if code in " ^*" and col * 8 + 8 > centre:
                hazard, distance = code, col * 8 - centre
                break
        moves: list = []

        def order(leads):
            rng.shuffle(leads)
            if self.steady:  # nearest first to this expert's take-off point for the hazard
                target = distance - (STEADY_TAKEOFF[hazard] + self.seed % 3 - 1)
                leads.sort(key=lambda k: abs(k - target))
            return leads

        if distance > 56:
            moves.append(_run(rng.randint(8, min(28, distance - 44))))
        elif hazard == " ":
            leads = order(list(range(0, max(1, distance - 1))))
            moves += [_jump(k, rng.randint(18, 20) if self.steady else rng.randint(16, 20)) for k in leads[:6]]
        elif hazard == "*":  # a mine under a laser ceiling: only a low hop fits
            leads = order(list(range(0, max(1, distance + 2))))
            moves += [_jump(k, rng.choice(self.tap_holds)) for k in leads[:6]]
        else:  # an open mine field: any jump that is long enough
            leads = order(list(range(0, max(1, distance + 2))))
            moves += [_jump(k, rng.choice([*self.tap_holds, rng.randint(3, 20)])) for k in leads[:8]]
        fallbacks = [
            _run(rng.randint(4, 12)),
            _jump(rng.randint(0, 8), rng.choice(self.tap_holds)),
            _jump(rng.randint(0, 8), rng.choice(self.tap_holds)),
            _jump(rng.randint(0, 6), rng.randint(16, 20)),
            _run(rng.randint(4, 10), direction=LEFT),
            _run(rng.randint(4, 16), direction=0),
            _jump(0, rng.choice(self.tap_holds), direction=0),
        ]
        return moves + fallbacks


# Mistakes a policy makes, as (buttons, steps): stop, run without firing, walk back, a stray short
# hop, a held fire button, a late or early jump (a stray full jump).
PERTURBATIONS = [(0, (2, 8)), (RIGHT, (3, 10)), (LEFT, (2, 6)), (RIGHT | A, (1, 3)), (RIGHT | B, (3, 8)),
                 (RIGHT | A, (8, 20)), (A, (1, 4))]


class SteadyExpertOutpost(ExpertOutpost):
    """``bot:expert-steady``: the expert with steady take-off points (see ExpertOutpost)."""

    def __init__(self, seed: int, game=None):
        super().__init__(seed, game, steady=True)


class NoisyExpertOutpost(ExpertOutpost):
    """The steady expert with injected mistakes, and its recoveries from them (DART-style data).

    Each step in play, with probability ``rate``, a seeded mistake from PERTURBATIONS starts
    and runs for its few steps; those steps carry ``actor = "perturbation"`` (build-dataset
    masks them out of the loss), then the expert plans again from wherever the mistake left
    the player. The policy thus learns the expert's way back from states the clean expert
    never visits. A mistake can kill; the expert then goes on from the respawn.
    """

    def __init__(self, seed: int, game=None, rate: float = 0.02, steady: bool = True):
        super().__init__(seed, game, steady=steady)
        self.rate = rate
        self.noise = random.Random(seed ^ 0x51DE)
        self.mistake: list = []
        self.actor = "script"

    def reset(self, emu) -> None:
        super().reset(emu)
        self.noise = random.Random(self.seed ^ 0x51DE)
        self.mistake = []
        self.actor = "script"

    def act(self, emu) -> int:
        ram = emu.ram()
        playing = ram[LEVEL_ROUTINE] == 4 and ram[PLAYER_STATE] == 1 and not ram[BOSS_DEFEATED]
        if not self.mistake and playing and self.noise.random() < self.rate:
            buttons, (lo, hi) = self.noise.choice(PERTURBATIONS)
            self.mistake = [buttons] * self.noise.randint(lo, hi)
        if self.mistake and playing:
            self.frame += 1
            self.plan.clear()  # the state is no longer the one the plan was searched from
            self.actor = "perturbation"
            self.previous = self.mistake.pop()
            return self.previous
        self.mistake = []
        self.actor = "script"
        return super().act(emu)


DRILL_WAIT_STEPS = 90  # the turret fires every 90 frames: a wait drawn from 0..89 meets its bullet at any phase


class DrillExpertOutpost(NoisyExpertOutpost):
    """``bot:expert-drill``: the noisy steady expert after a seeded wait, for drills from a mid-level
    start state (``--state Level1Turret``). The wait (0 to DRILL_WAIT_STEPS-1 steps standing still,
    marked ``perturbation`` and so never trained on) puts the turret's bullet at a different place in
    every drill, so where to hop has to be read off the screen, not learned by place."""

    def __init__(self, seed: int, game=None):
        super().__init__(seed, game)
        self.wait = random.Random(seed ^ 0xD811).randrange(DRILL_WAIT_STEPS)
        self.waited = 0

    def reset(self, emu) -> None:
        super().reset(emu)
        self.waited = 0

    def act(self, emu) -> int:
        if self.waited < self.wait:
            self.waited += 1
            self.frame += 1
            self.plan.clear()
            self.actor = "perturbation"
            self.previous = 0
            return 0
        return super().act(emu)


TURRET_SCREEN = 1     # Level 1's screen with the turret, where a first death sends the player back
WALK_INTO_PX = 40     # how near the turret's bullet has to be before the first life stops dodging it


class RespawnExpertOutpost(NoisyExpertOutpost):
    """``bot:expert-respawn``: expert-noisy that loses its first life to the turret's bullet on purpose
    and plays on from the respawn. A first death on the turret's screen sends the player back to the
    screen's start, falling in, with the screen's enemies back: the bullet then meets it ~18 px before
    the place of the first approach, a moment the other demonstrations hardly ever show (an agent that
    dies there once never hops there again: docs/experiments.md). The whole first life and the death
    are marked ``perturbation``, so no step teaches walking into the bullet (the expert never learns the
    miss, only the way on from the respawn)."""

    def __init__(self, seed: int, game=None):
        super().__init__(seed, game)
        self.life = "first"

    def reset(self, emu) -> None:
        super().reset(emu)
        self.life = "first"

    def act(self, emu) -> int:
        ram = emu.ram()
        if self.life == "first" and ram[PLAYER_STATE] == 2:
            self.life = "dying"
        elif self.life == "dying" and ram[PLAYER_STATE] != 2:
            self.life = "respawned"
        if self.life == "respawned":
            return super().act(emu)
        x = int(ram[PLAYER_X])
        bullet_ahead = any(ram[ENEMY_BULLET_ACTIVE + k] and 0 <= int(ram[ENEMY_BULLET_X + k]) - x <= WALK_INTO_PX
                           for k in range(2))
        if self.life == "first" and ram[SCREEN] == TURRET_SCREEN and ram[PLAYER_STATE] == 1 and bullet_ahead:
            self.frame += 1
            self.plan.clear()
            self.previous = RIGHT
            action = RIGHT  # into the bullet
        else:
            action = super().act(emu)
        self.actor = "perturbation"
        return action
