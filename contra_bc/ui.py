"""Terminal output shared by the commands: rich on stderr, results on stdout."""

from __future__ import annotations

import json
import sys

from rich.console import Console

err = Console(stderr=True)
out = Console()


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def progress(**kwargs):
    """A progress bar on a terminal; without one (a log file, CI), plain lines (PlainProgress)."""
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
