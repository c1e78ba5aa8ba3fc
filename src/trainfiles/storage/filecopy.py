"""Copying a stretch of one local file into another by the kernel (copy_file_range), a
window at a time, each window handed on once written so that the caller hashes the bytes
the new file holds, not a second reading of the old one, then let go of in the old file's
page cache."""

import contextlib
import errno
import os
from collections.abc import Callable
from typing import NamedTuple

from trainfiles.errors import Conflict

WINDOW = 32 << 20
# Where the kernel will not copy between two files (across filesystems, on other systems,
# in sandboxes that filter the call, on some network filesystems), through memory instead.
_REFUSED = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.EIO)
# What is copied is a version the new one supersedes: the kernel is asked to drop its pages
# window by window (where the filesystem honours it), so the page cache need not hold both
# copies of a large file, and the new version is likely written into the pages just freed.
# On a VM, memory the guest has not touched lately costs a host fault per page: an add of
# 80 to 10,000 conversations (752 MB copied) took 0.74-1.75 s without this, 0.71-0.85 s with.
_advise = getattr(os, "posix_fadvise", None)


class FileRange(NamedTuple):
    """Bytes `start` to `end` of a local file, for a local target to copy in the kernel
    instead of reading and writing them."""

    path: str
    start: int
    end: int


def copy(src: int, part: FileRange, out: int, to: int, written: Callable[[int, int], None]) -> int:
    """Copy `part` (open as `src`) into `out` from offset `to`, calling `written(offset,
    length)` after each window, then asking the kernel to drop the window from `src`'s page
    cache; returns the offset just past the copy. Conflict, naming the file, if it ends
    before the range does or changes while it is copied."""
    before = os.fstat(src)
    at, kernel, previous = part.start, hasattr(os, "copy_file_range"), part.start
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
        # From the window before: a large folio across their boundary is dropped only whole.
        _let_go(src, previous, at + copied)
        previous, at, to = at, at + copied, to + copied
    after = os.fstat(src)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise Conflict(f"{part.path} changed while it was copied: run `trainfiles verify`")
    return to


def _let_go(fd: int, start: int, end: int) -> None:
    """Advise the kernel that bytes `start` to `end` of `fd` will not be read again: only
    advice, so a refusal (a sandbox's filter, an old kernel) changes nothing."""
    if _advise:
        with contextlib.suppress(OSError):
            _advise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


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
