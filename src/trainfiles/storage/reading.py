"""Reading, whatever the backend: many objects at once (sources within their size limit),
read ahead a window at a time, in chunks or lines, and their digests."""

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from itertools import islice

from trainfiles.errors import NotFound
from trainfiles.storage.backends import backend
from trainfiles.storage.generic import Storage
from trainfiles.storage.urls import READ_CONCURRENCY, Progress, _source_limit, _unlimited, sha256


def read_many(
    urls: Sequence[str], progress: Progress | None = None, sources: bool = True, most: int | None = None
) -> list[bytes | NotFound]:
    """Read every URL concurrently: the bytes, or NotFound for a missing object, in order.
    Local sources must be regular files no larger than a source may be; with `sources`
    false (the store's own records), only regular files, never through a symbolic link,
    and of at most `most` bytes, if given (more is never read, on any backend).

    Any other failure cancels the reads still running and raises StorageUnavailable, so an
    unreachable endpoint costs the time of one request, not of every URL in turn.
    """
    progress = progress or (lambda n: None)
    # read at the first local file, not before
    limit = cache(_source_limit) if sources else (lambda: most) if most is not None else _unlimited
    groups: dict[Storage, list[int]] = {}
    for i, url in enumerate(urls):
        groups.setdefault(backend(url), []).append(i)
    results: list[bytes | NotFound] = [b""] * len(urls)
    for storage, indexes in groups.items():
        found = storage.read_all([urls[i] for i in indexes], progress, limit, follow=sources, most=most)
        for i, data in zip(indexes, found):
            results[i] = data
    return results


def read_each(
    urls: Iterable[str], progress: Progress | None = None, digests: bool = True
) -> Iterator[tuple[str, bytes | NotFound, str | None]]:
    """(URL, its bytes or NotFound, with `digests` its sha256) for each URL, in order, read
    ahead on another thread a window at a time: memory holds two windows, whatever the
    number of URLs (which may come from a listing still under way), and reading and
    hashing (which release the GIL) overlap the caller's work."""
    from trainfiles.storage.ahead import ahead

    def windows() -> Iterator[list]:
        pending = iter(urls)
        while window := list(islice(pending, 2 * READ_CONCURRENCY)):
            contents = read_many(window, progress)
            yield [
                (url, data, sha256(data) if digests and isinstance(data, bytes) else None)
                for url, data in zip(window, contents)
            ]

    for batch in ahead(windows(), depth=2):
        yield from batch


def read(url: str, sources: bool = True) -> bytes:
    """The whole content of one object (a source, unless `sources` is false)."""
    data = read_many([url], sources=sources)[0]
    if isinstance(data, NotFound):
        raise data
    return data


def head(url: str, size: int) -> bytes:
    """The first `size` bytes of one object (fewer if it is shorter): one ranged read."""
    return backend(url).head(url, size)


def chunks(url: str) -> Iterator[bytes]:
    """One object's content in large chunks, for copying files too large to hold."""
    return backend(url).chunks(url)


def lines(url: str) -> Iterator[bytes]:
    """One object's lines (each with its newline but perhaps the last), streamed."""
    rest = b""
    for chunk in chunks(url):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part + b"\n"
    if rest:
        yield rest


def first_line(url: str) -> bytes:
    """An object's first line, read without reading the rest (one ranged read when the
    line is short, as our headers are)."""
    start = head(url, 4096)
    if b"\n" in start or len(start) < 4096:
        return start.split(b"\n", 1)[0] + (b"\n" if b"\n" in start else b"")
    return next(lines(url), b"")


def digest(url: str) -> tuple[str, int]:
    """The sha256 and size of one object, streamed."""
    h, size = hashlib.sha256(), 0
    for chunk in chunks(url):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def exists(url: str) -> bool:
    return backend(url).exists(url)


def signature(url: str) -> tuple[int, int, int] | None:
    """A local file's size, modification time (ns) and inode: what changes when anything
    writes it. None for objects in a store (and missing files)."""
    return backend(url).signature(url)


def sign(url: str, expires: int) -> str:
    """A presigned URL that fetches `url` for `expires` seconds."""
    return backend(url).sign(url, expires)
