"""Work moved to another thread, a bounded number of items away: an iterator's items
produced ahead of their consumer (`ahead`), or items consumed behind their producer
(`Behind`).

Reading files, hashing and writing release the GIL: with the producer on one thread and the
consumer on another, both cores work, and memory holds at most `depth` items.
"""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


def ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """The same items in the same order; the producer's exceptions are raised here. A
    consumer that stops early stops the producer too."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as e:  # handed to the consumer
            offer(e)

    threading.Thread(target=produce, daemon=True).start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class Behind(Generic[T]):
    """Items `put` here are handed to `consume` on another thread, in order, at most `depth`
    behind. The consumer's exception is raised by the next `put` or by `close`, which waits
    for every item to be consumed."""

    def __init__(self, consume: Callable[[T], None], depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        # Started by the first item: a process may still fork workers before then.
        self._thread = threading.Thread(target=self._run, args=(consume,), daemon=True)

    def _run(self, consume: Callable[[T], None]) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:  # after a failure the rest are dropped, so put never blocks
                try:
                    consume(item)
                except BaseException as e:  # handed to the producer
                    self._error = e

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive():
            self._thread.start()
        self._queue.put(item)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error
