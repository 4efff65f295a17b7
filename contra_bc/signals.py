"""One way to stop: Ctrl-C (SIGINT) and SIGTERM mean the same thing in every process.

Schedulers, docker and systemd send SIGTERM where a person presses Ctrl-C, so both set one
process-wide flag. Code that can stop cleanly runs inside ``StopSignals()`` and checks
``stop.requested`` between units of work (a step, a frame, an episode); it then finishes or
keeps what it wrote and raises ``KeyboardInterrupt``, which the CLI turns into exit 130. Code
outside such a block is unwound with ``KeyboardInterrupt`` at once, as Python does for Ctrl-C.

A signal never unwinds a loop that checks the flag from some arbitrary point inside a library
(a pyarrow destructor swallows the exception and the work would carry on as if nothing had
happened). Worker processes (``contra_bc.parallel``) install the same handlers and also get
SIGTERM when their parent dies, even by kill -9, so none is left running on its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stop = threading.Event()
_cooperative = 0  # how many StopSignals blocks are open: while > 0, a signal only sets the flag
_worker = False   # a spawned worker: a signal only ever sets the flag (its parent decides what stops)


def _handler(signum, frame):
    _stop.set()
    if _cooperative == 0 and not _worker:
        raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM to the shared flag (main thread only; elsewhere a no-op)."""
    try:
        for sig in SIGNALS:
            signal.signal(sig, _handler)
    except ValueError:  # not the main thread
        pass


def stop_requested() -> bool:
    return _stop.is_set()


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent exits (for spawned workers)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def worker_init() -> None:
    """Initializer of every worker process: the same handlers, and no life beyond the parent.

    A worker never unwinds on a signal: Ctrl-C reaches every process of the terminal's group, and
    a worker waiting for its next task would die with a traceback. The flag stops the job in hand
    at its next check; the parent cancels the rest and shuts the pool down."""
    global _worker
    _worker = True
    die_with_parent()
    install()
    threading.Thread(target=_leave_when_orphaned, args=(os.getppid(),), name="orphan-watch", daemon=True).start()


def _leave_when_orphaned(parent: int, grace_s: float = 30.0) -> None:
    """Exit once the parent is gone and the job in hand has closed its files.

    SIGTERM from die_with_parent() stops the job, but the worker would then wait for its next task
    forever: it holds both ends of the task queue, so it never sees end-of-file.
    """
    while os.getppid() == parent:
        time.sleep(0.5)
    _stop.set()
    deadline = time.monotonic() + grace_s
    while _cooperative > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    os._exit(130)


class Interrupted(KeyboardInterrupt):
    """A stop (Ctrl-C, SIGTERM) that ended a batch of jobs; ``results`` holds those that finished (None
    for the others), so a caller can still write its report before exiting 130."""

    def __init__(self, results: list | None = None):
        super().__init__()
        self.results = results


class StopSignals:
    """A block that checks ``requested`` between units of work instead of being unwound mid-write."""

    def __init__(self):
        self._previous = {}

    @property
    def requested(self) -> bool:
        return _stop.is_set()

    def check(self) -> None:
        """Raise KeyboardInterrupt here, at a safe point, if a stop was asked for."""
        if _stop.is_set():
            raise KeyboardInterrupt

    def __enter__(self):
        global _cooperative
        try:
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, _handler)
        except ValueError:  # not the main thread: signals stay as they are
            pass
        _cooperative += 1
        return self

    def __exit__(self, *exc):
        global _cooperative
        _cooperative -= 1
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False
