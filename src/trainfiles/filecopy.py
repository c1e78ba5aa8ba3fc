"""Copying a stretch of one local file into another by the kernel (copy_file_range), a
window at a time, each window handed on once written so that the caller hashes the bytes
the new file holds, not a second reading of the old one, and let go of in the old file's
page cache."""

import errno
import os
from collections.abc import Callable
from typing import NamedTuple

from .errors import Conflict

WINDOW = 32 << 20
# Where the kernel will not copy between two files (across filesystems, on other systems,
# in sandboxes that filter the call, on some network filesystems), through memory instead.
_REFUSED = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.EIO)
# What is copied is a version the new one supersedes: its pages are let go window by window,
# so the page cache never holds both copies of a large file and the new version is written
# into the pages just freed. On a VM, memory the guest has not touched lately costs a host
# fault per page: 752 MB copied took 2.0-2.6 s into such memory, 0.9 s into freed pages.
_forget = getattr(os, "posix_fadvise", None)


class FileRange(NamedTuple):
    """Bytes `start` to `end` of a local file, for a local target to copy in the kernel
    instead of reading and writing them."""

    path: str
    start: int
    end: int


def copy(src: int, part: FileRange, out: int, to: int, written: Callable[[int, int], None]) -> int:
    """Copy `part` (open as `src`) into `out` from offset `to`, calling `written(offset,
    length)` after each window, then dropping the window from `src`'s page cache; returns
    the offset just past the copy. Conflict, naming the file, if it ends before the range
    does or changes while it is copied."""
    before = os.fstat(src)
    at, kernel = part.start, hasattr(os, "copy_file_range")
    while at < part.end:
        length, copied = min(WINDOW, part.end - at), 0
        if kernel:
            try:
                copied = os.copy_file_range(src, out, length, at, to)
            except OSError as e:
                if e.errno not in _REFUSED:
                    raise
                kernel = False
        if not kernel:
            data = os.pread(src, min(length, 1 << 20), at)
            copied = os.pwrite(out, data, to) if data else 0
        if not copied:
            raise Conflict(f"{part.path} ends before byte {part.end}, where its commit says: run `trainfiles verify`")
        written(to, copied)
        if _forget:
            _forget(src, at, copied, os.POSIX_FADV_DONTNEED)
        at, to = at + copied, to + copied
    after = os.fstat(src)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise Conflict(f"{part.path} changed while it was copied: run `trainfiles verify`")
    return to


def hash_written(fd: int, offset: int, length: int, h, buffer: bytearray) -> None:
    """Feed `length` bytes of the open file `fd` from `offset` to the hash `h`, read through
    `buffer` (reused, so memory holds one buffer whatever the size)."""
    view = memoryview(buffer)
    end = offset + length
    while offset < end:
        n = os.preadv(fd, [view[: min(len(buffer), end - offset)]], offset)
        if not n:
            raise OSError(errno.EIO, f"{length} bytes written, fewer read back")
        h.update(view[:n])
        offset += n
