"""Run one function over many inputs in spawn worker processes (one emulator each).

stable-retro allows one emulator per process and breaks after fork, so workers
are spawned. A worker keeps its emulator between tasks of the same game.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator

_EMULATORS: dict = {}


def shared_emulator(game):
    """This process's emulator for ``game`` (created on first use)."""
    from contra_bc.emulator import Emulator, get_game

    name = game if isinstance(game, str) else game.name
    if name not in _EMULATORS:
        if _EMULATORS:
            raise RuntimeError("this process already holds an emulator for another game")
        _EMULATORS[name] = Emulator(get_game(name))
    return _EMULATORS[name]


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def run_many(fn: Callable, items: list, *, workers: int, games: Iterable[str] = (),
             on_result: Callable | None = None) -> list:
    """``[fn(item) for item in items]``, in parallel when workers > 1; order kept.

    Runs in this process when ``workers`` is 1 and at most one game is involved.
    ``on_result(index, result)`` is called as each result arrives (for progress).
    """
    from contra_bc import signals
    from contra_bc.signals import Interrupted, StopSignals, stop_requested

    games = set(games)
    results: list = [None] * len(items)
    if workers <= 1 and len(games) <= 1 and not (_EMULATORS and games - set(_EMULATORS)):
        try:
            for i, item in enumerate(items):
                if stop_requested():  # a job stopped early for Ctrl-C or SIGTERM: start no more
                    raise Interrupted(results)
                results[i] = fn(item)
                if on_result:
                    on_result(i, results[i])
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted(results) from None
        if stop_requested():
            raise Interrupted(results)
        return results
    ctx = multiprocessing.get_context("spawn")
    per_child = 1 if len(games) > 1 else None
    with StopSignals() as stop, ProcessPoolExecutor(max_workers=max(1, min(workers, len(items))), mp_context=ctx,
                                                    max_tasks_per_child=per_child,
                                                    initializer=signals.worker_init) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    results[i] = fut.result()
                    if on_result:
                        on_result(i, results[i])
                if stop.requested and pending:
                    # Ctrl-C reaches the workers from the terminal, SIGTERM to this process does not:
                    # pass it on, let running tasks finish their files, start no more
                    _signal_workers(pool)
                    pool.shutdown(wait=True, cancel_futures=True)
                    for fut in pending:  # what the running tasks finished with
                        if fut.done() and not fut.cancelled() and fut.exception() is None:
                            results[futures[fut]] = fut.result()
                    raise Interrupted(results)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        if stop.requested:
            raise Interrupted(results)
    return results


def run_with_progress(fn: Callable, items: list, *, workers: int, games, label: str,
                      each: Callable | None = None) -> list:
    """`run_many` under a progress bar named ``label``; ``workers`` 0 means `default_workers()`;
    ``each(index, result)`` as each one finishes."""
    from contra_bc.ui import progress

    workers = workers or default_workers()

    def done(i, r):
        bar.advance(task)
        if each is not None:
            each(i, r)

    with progress() as bar:
        task = bar.add_task(label, total=len(items))
        return run_many(fn, items, workers=min(workers, len(items)),
                        games=games if isinstance(games, (set, list)) else [games], on_result=done)


def _signal_workers(pool) -> None:
    import signal

    for proc in list(getattr(pool, "_processes", {}).values()):
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, OSError):
            pass


def prefetch(items: Iterable, depth: int = 8) -> Iterator:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead of the consumer.

    For producers that release the GIL (video decoding) feeding consumers that do too
    (numpy, parquet), so the two overlap on separate cores. The producer's exceptions are
    raised in the consumer, in order; leaving the loop early stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
