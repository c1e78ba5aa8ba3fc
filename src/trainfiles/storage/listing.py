"""Listing, whatever the backend: a folder's names after a key, every object under a URL,
the enriched files a scan reads, uploads never finished."""

from collections.abc import Iterator
from functools import cache

from trainfiles.core.text import encodes, printable
from trainfiles.storage.backends import backend
from trainfiles.storage.urls import _source_limit


def names_after(folder: str, after: str | None) -> list[str]:
    """The names of the objects directly in `folder` that sort after `after`, in order.

    On S3 one listing request (`StartAfter`) however long the folder; locally one
    directory read. A folder that does not exist has no names.
    """
    return backend(folder).names_after(folder, after)


def listing(url: str) -> list[dict]:
    """Every object under `url` (recursively): `{"url", "size", "modified"}` with the
    modification time in seconds since the epoch. Local temporary files are included."""
    return backend(url).listing(url)


def find_json(url: str) -> Iterator[tuple[str, str | None]]:
    """Every `.json` file under `url` (or `url` itself if it is a file) as (URL, None), or
    (URL, reason) for one not to read: a path that is not UTF-8, not a regular file (a FIFO
    would hang the scan), a symlink leading out of `url`, or larger than a source may be.

    A local folder's files come as they are found, so reading can start before the walk
    ends; other stores are one recursive listing, sorted. NotFound when there is nothing.
    """
    limit = cache(_source_limit)  # read at the first file that needs it
    for found, reason in backend(url).find_json(url, limit):
        if not encodes(found):  # bytes the OS could not decode: no catalog can hold the path
            yield printable(found), "the path is not valid UTF-8"
        else:
            yield found, reason


def unfinished_uploads(folder: str, started_before: float, abort: bool) -> list[str]:
    """The keys of multipart uploads under a folder URL started before `started_before`
    (seconds since the epoch), aborted when `abort`: what a process killed while writing a
    large object left behind. Stores without uploads have none."""
    return backend(folder).unfinished_uploads(folder, started_before, abort)
