"""Forked worker processes, one per core, for work that holds the GIL (parsing, checks,
rendering): from how many files they are worth it, how many, and how each starts."""

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from trainfiles.core import enriched

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

PARALLEL_FROM = 500  # local files; fewer are not worth starting processes for


def cores() -> int:
    """The cores this process may run on: a container may allow fewer than the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pool(start: Callable[..., None] | None = None, args: tuple = ()) -> "ProcessPoolExecutor":
    """A pool of forked workers, one per core; each runs `start(*args)` first."""
    import multiprocessing  # not on the start-up path of commands that never fork
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        cores(), mp_context=multiprocessing.get_context("fork"), initializer=_started, initargs=(start, args)
    )


def _started(start: Callable[..., None] | None, args: tuple) -> None:
    if start is not None:  # first: what it makes, a command that fails early still removes
        start(*args)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the process that forked us
    enriched.prepare()
