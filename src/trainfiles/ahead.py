"""An iterator's items produced on another thread, a bounded number ahead of the consumer.

Reading files, hashing and writing release the GIL: with the producer on one thread and the
consumer on another, both cores work, and memory holds at most `depth` items.
"""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

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
