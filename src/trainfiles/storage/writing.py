"""Writing, whatever the backend: atomic replacement of one or several objects,
put-if-absent, copies, deletion, and the store's own clock."""

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from trainfiles.storage.backends import backend
from trainfiles.storage.generic import Target
from trainfiles.storage.urls import join


def write_atomic(
    url: str, data: bytes | Iterable[bytes], create_folder: bool = True, into_special: bool = True
) -> None:
    """Replace `url` with `data` (bytes, or chunks streamed in) all at once.

    A local device or FIFO (`/dev/null`, a named pipe) is written into instead, unless
    `into_special` is false (a store's own objects: such a thing there is replaced);
    without `create_folder`, a local target's folder must exist (NotFound otherwise).
    """
    chunks = [data] if isinstance(data, bytes) else data
    with atomic_writers({url: url}, create_folder, into_special) as writers:
        for chunk in chunks:
            writers[url](chunk)


@contextlib.contextmanager
def atomic_writers(
    targets: Mapping[Any, str], create_folders: bool = True, into_special: bool = True
) -> Iterator[dict[Any, Callable[[bytes], None]]]:
    """Yield a `write(chunk)` per target; each is replaced on a clean exit, none on an error
    while writing. Readers see a target's old content or its new, never part.

    Local: a temporary file beside the target, fsynced, then renamed over it, so memory
    stays flat. S3: one PUT, or a multipart upload streamed part by part, completed at the
    end or aborted. Other object stores: one `pipe_file` per target at the end, so the
    content is held until then.
    """
    pending: dict[Any, Target] = {
        key: backend(url).target(url, create_folders, into_special) for key, url in targets.items()
    }
    try:
        yield {key: target.write for key, target in pending.items()}
        for target in pending.values():
            target.commit()
    except BaseException:
        for target in pending.values():
            target.discard()
        raise


def writable(store: str) -> None:
    """InvalidInput unless `store` can take commits: a local folder or S3, whose writes can be
    conditional (put-if-absent). Any store stays readable."""
    backend(store).writable(store)


def put_if_absent(url: str, data: bytes | Iterable[bytes]) -> bool:
    """Publish `data` (bytes, or chunks of them) at `url` only if nothing is there yet: True
    if we published it, False if the key already existed. Readers see the whole content or
    nothing. A store that cannot write conditionally is refused: two writers could both win.
    """
    return backend(url).put_if_absent(url, [data] if isinstance(data, bytes) else data)


def publish_copy(src: str, dst: str) -> None:
    """Make `dst` hold what `src` holds, replacing it at once (readers see old or new): a
    hard link locally (`src` must never change afterwards), a server-side copy elsewhere."""
    backend(src).publish_copy(src, dst)


def clock(folder: str) -> float:
    """Now by the store's own clock, in seconds since the epoch: the modification time of a
    small object written in `folder` for the purpose (then removed). Ages of objects in a
    store are judged by it, never by this machine's clock, which may be far off."""
    url = join(folder, f".tmp-clock-{os.getpid()}-{os.urandom(4).hex()}")
    write_atomic(url, b"")
    try:
        return backend(url).modified(url)
    finally:
        remove(url)


def remove(url: str) -> None:
    """Delete one object if it exists."""
    backend(url).remove(url)


def remove_empty_folder(url: str) -> None:
    """Remove a local folder if it is empty (object stores have no folders)."""
    backend(url).remove_empty_folder(url)


@contextlib.contextmanager
def removing_new_folders(url: str, always: bool = False) -> Iterator[None]:
    """On an error inside (or `always`), remove the local folders above `url` that did not
    exist before and are empty again, so a failed write leaves no trace (object stores
    have no folders)."""
    new = backend(url).new_folders(url)

    def remove() -> None:
        for folder in new:  # deepest first; one that holds something stays
            with contextlib.suppress(OSError):
                os.rmdir(folder)

    try:
        yield
    except BaseException:
        remove()
        raise
    if always:
        remove()
