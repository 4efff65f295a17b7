"""Terminal output shared by the commands.

stdout carries data, stderr what people read. On a terminal, tables and summaries are printed
to stdout (`out`); when stdout is a pipe or a file, they go to stderr and stdout gets only data:
JSON Lines with --json (`emit`, `print_json`), else the paths a command wrote or checked, one per
line (`print_paths`), so `contra-bc record ... | contra-bc replay-verify -` chains.
"""

from __future__ import annotations

import json
import sys

from rich.console import Console

QUIET = False   # -q/--quiet: no progress lines or bars


class _DataOrPeople(Console):
    """stdout when it is a terminal (people are reading it), else stderr (stdout is data)."""

    @property
    def file(self):
        return sys.stdout if sys.stdout.isatty() else sys.stderr

    @file.setter
    def file(self, value):  # rich assigns None in __init__
        pass


err = Console(stderr=True)
people = _DataOrPeople()  # stdout on a terminal, else stderr: what people read


def stdout_is_data() -> bool:
    return not sys.stdout.isatty()


def emit(obj) -> None:
    """One JSON Lines record on stdout, flushed at once (so `jq` can follow a long run)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


# The last line of every --json output: the command's result.
print_json = emit


def print_paths(paths) -> None:
    """Paths a command wrote or checked, one per line on stdout, when stdout is not a terminal."""
    if stdout_is_data():
        for p in paths:
            sys.stdout.write(f"{p}\n")
        sys.stdout.flush()


def progress(**kwargs):
    """A progress bar on a terminal; without one (a log file, CI), plain lines (PlainProgress)."""
    if QUIET:
        kwargs["disable"] = True
    if not err.is_terminal:
        return PlainProgress(disable=kwargs.get("disable", False))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False, **kwargs)


class PlainProgress:
    """What a log reads when stderr is not a terminal: one line per task at most every
    ``CONTRA_BC_PROGRESS_SECONDS`` (default 10) seconds, ``description: done/total (pct) rate/s
    ETA m:ss``, and a last line when the task ends; long work never looks hung in CI.
    The subset of rich.progress.Progress the commands use."""

    def __init__(self, disable: bool = False):
        import os
        import time

        self.disable = disable
        self.every = float(os.environ.get("CONTRA_BC_PROGRESS_SECONDS", "10"))
        self._clock = time.monotonic
        self.tasks: dict[int, dict] = {}
        self.live = self  # rich's `bar.live.is_started`
        self.is_started = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self) -> None:
        self.is_started = True

    def stop(self) -> None:
        if self.is_started:
            for task in self.tasks.values():
                if task["printed"] != task["completed"]:
                    self._print(task)
        self.is_started = False

    def add_task(self, description: str, total=None, **_) -> int:
        now = self._clock()
        task_id = len(self.tasks)
        self.tasks[task_id] = {"description": description, "total": total, "completed": 0, "started": None,
                               "last": now, "printed": 0}
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self.tasks[task_id]["completed"] + advance)

    def update(self, task_id: int, completed=None, total=None, description=None, **_) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task["completed"] = completed
        if total is not None:
            task["total"] = total
        if description is not None:
            task["description"] = description
        now = self._clock()
        if task["started"] is None:  # the rate counts from the first update (setup time is not work)
            task["started"], task["base"] = now, task["completed"]
        done = task["total"] is not None and task["completed"] >= task["total"]
        if now - task["last"] >= self.every or (done and task["printed"] != task["completed"]):
            task["last"] = now
            self._print(task)

    def _print(self, task: dict) -> None:
        task["printed"] = task["completed"]
        if self.disable:
            return
        done, total = task["completed"], task["total"]
        elapsed = self._clock() - task["started"] if task["started"] is not None else 0.0
        rate = (done - task.get("base", 0)) / elapsed if elapsed > 0 else 0.0
        line = f"{task['description']}: {done:g}"
        speed = f"{rate:.2f}/s" if rate > 0 else "?/s"  # no rate before the second update
        if total:
            left = (total - done) / rate if rate > 0 else None
            eta = f"{int(left // 60)}:{int(left % 60):02d}" if left is not None else "?"
            line += f"/{total:g} ({100.0 * done / total:.0f}%) {speed} ETA {eta}"
        else:
            line += f" {speed}"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def table(rows: list[dict], title: str) -> None:
    """One rich table of ``rows`` (the first row's keys are the columns); nothing when there are none."""
    from rich.table import Table

    if not rows:
        return
    t = Table(title=title)
    for k in rows[0]:
        t.add_column(k)
    for r in rows:
        t.add_row(*[str(v) for v in r.values()])
    people.print(t)


def stdin_paths(paths: list) -> list:
    """``-`` among the paths: read more paths from stdin, one per line (blank lines and # comments skipped),
    so `find runs -name meta.json -printf '%h\\n' | contra-bc replay-verify -` works."""
    from pathlib import Path

    from contra_bc.errors import UserError

    if not any(str(p) == "-" for p in paths):
        return paths
    if sys.stdin is None or sys.stdin.isatty():
        raise UserError("`-` reads recording paths from stdin, one per line, but stdin is a terminal. Pipe them "
                        "in, e.g. `find sessions -name meta.json -printf '%h\\n' | contra-bc replay-verify -`.")
    listed = [line.strip() for line in sys.stdin.read().splitlines()]
    listed = [Path(line) for line in listed if line and not line.startswith("#")]
    expanded = [q for p in paths for q in (listed if str(p) == "-" else [p])]
    if not expanded:
        raise UserError("`-` read no paths from stdin (blank lines and # comments are skipped).")
    return expanded


def stdin_path(path, what: str):
    """``-`` as a single DATASET / RUN / RECORDING argument: the one path on stdin, so
    `contra-bc build-dataset ... | contra-bc train - --out runs/a` works."""
    from pathlib import Path

    from contra_bc.errors import UserError

    if path is None or str(path) != "-":
        return path
    listed = stdin_paths([Path("-")])
    if len(listed) != 1:
        raise UserError(f"`-` as the {what} reads one path from stdin, but {len(listed)} were given: "
                        f"{', '.join(map(str, listed[:3]))}{' ...' if len(listed) > 3 else ''}.")
    return listed[0]
