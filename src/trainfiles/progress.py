"""Progress bars and notes on standard error: bars only to a person at a terminal and only for
long work; notes always (standard output is for data)."""

import contextlib
import sys
from collections.abc import Callable, Iterator

MIN_ITEMS = 50


@contextlib.contextmanager
def bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; draws a transient bar when stderr is a terminal and the total is
    large or not known yet (None: work found as it is done)."""
    if (total is not None and total < MIN_ITEMS) or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def note(message: str) -> None:
    """A line for the person (or the CI log) that is neither data nor an error."""
    print(message, file=sys.stderr)
