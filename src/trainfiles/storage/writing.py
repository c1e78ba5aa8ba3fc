"""Writing: atomic replacement (local temporary file and rename; S3 multipart), put-if-absent, server-side copies, deletion."""

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from trainfiles.errors import InvalidInput, NotFound
from trainfiles.storage import filecopy
from trainfiles.storage.filecopy import FileRange
from trainfiles.storage.urls import (
    CHUNK,
    S3_PROTOCOLS,
    UPLOAD_PART,
    WRITE_BEHIND,
    _modified,
    _split_protocol,
    failure,
    is_local,
    join,
    resolve,
)


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
    stays flat. S3: a multipart upload streamed part by part, completed at the end or
    aborted. Other object stores: one `pipe_file` per target at the end, so the content is
    held until then.
    """
    pending = {key: _target(url, create_folders, into_special) for key, url in targets.items()}
    try:
        yield {key: target.write for key, target in pending.items()}
        for target in pending.values():
            target.commit()
    except BaseException:
        for target in pending.values():
            target.discard()
        raise


def _target(url: str, create_folders: bool, into_special: bool):
    if is_local(url):
        return _LocalFile.for_path(url, create_folders) if into_special else _LocalFile(url, create_folders)
    return (_S3Object if _split_protocol(url)[0] in S3_PROTOCOLS else _RemoteObject)(url)


class _LocalFile:
    @staticmethod
    def for_path(path: str, create_folder: bool) -> "_LocalFile":
        try:
            special = not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
        except OSError:
            special = False
        return _InPlace(path) if special else _LocalFile(path, create_folder)

    def __init__(self, path: str, create_folder: bool = True):
        self.path = os.path.abspath(path)
        folder = os.path.dirname(self.path)
        if not create_folder and not os.path.isdir(folder):
            raise NotFound(f"no folder {folder} to write {path} in")
        try:
            os.makedirs(folder, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
        except OSError as e:
            raise failure(path, e) from e
        self.file = os.fdopen(fd, "wb")
        self.written = self.synced = 0

    def write(self, chunk: bytes | FileRange, copied: Callable[[int, int, int], None] | None = None) -> None:
        """Append `chunk`; a FileRange is copied by the kernel, and `copied(fd, offset,
        length)` told of each window written (the fd reads back what this file holds)."""
        if isinstance(chunk, FileRange):
            self._copy(chunk, copied or (lambda fd, offset, length: None))
            return
        try:
            self.file.write(chunk)
            self.written += len(chunk)
            if self.written - self.synced >= WRITE_BEHIND:
                # Written back while the rest is produced, not all at the closing fsync:
                # an output of 500 MB costs half the time, and the same time every run.
                self.file.flush()
                _start_writeback(self.file.fileno(), self.synced, self.written - self.synced)
                self.synced = self.written
        except OSError as e:
            raise failure(self.path, e) from e

    def _copy(self, part: FileRange, copied: Callable[[int, int, int], None]) -> None:
        # The kernel copies without bringing the bytes into this process: with the hashing on
        # another thread, a 513 MB copy took less than half the time of reading, hashing and
        # writing it here.
        try:
            self.file.flush()
            src = os.open(part.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise failure(part.path, e) from e
        out = self.file.fileno()

        def written(offset: int, length: int) -> None:
            _start_writeback(out, offset, length)
            copied(out, offset, length)

        try:
            self.written = self.synced = filecopy.copy(src, part, out, self.written, written)
            self.file.seek(self.written)  # the copy wrote at explicit offsets
        except OSError as e:
            raise failure(self.path, e) from e
        finally:
            os.close(src)

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            # mkstemp creates 0600; give the file the mode a plain open() would.
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
            _fsync_dir(os.path.dirname(self.path))
        except OSError as e:
            raise failure(self.path, e) from e

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            os.unlink(self.tmp)


class _InPlace(_LocalFile):
    """A device or FIFO: opened and written as it is; it has no content to replace."""

    def __init__(self, path: str):
        self.path = path
        self.written = self.synced = 0
        try:
            self.file = open(path, "wb")
        except OSError as e:
            raise failure(path, e) from e

    def commit(self) -> None:
        try:
            self.file.close()
        except OSError as e:
            raise failure(self.path, e) from e

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()


class _RemoteObject:
    """An object written whole at the end: held in memory, then one `pipe_file`."""

    def __init__(self, url: str):
        self.url = url
        self.chunks: list[bytes] = []

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def commit(self) -> None:
        fs, path = resolve(self.url)
        try:
            fs.pipe_file(path, b"".join(self.chunks))
        except Exception as e:
            raise failure(self.url, e) from e

    def discard(self) -> None:
        self.chunks = []


class _S3Object:
    """An S3 object streamed up: parts of UPLOAD_PART bytes go up as they fill, so memory
    holds one part whatever the size; the multipart upload is completed at the end and
    aborted on an error (a small object is one PUT). Never published half written."""

    def __init__(self, url: str):
        self.url = url
        fs, path = resolve(url)
        try:
            self.file = fs.open(path, "wb", block_size=UPLOAD_PART)
        except Exception as e:
            raise failure(url, e) from e

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            for start in range(0, len(view), CHUNK):  # in pieces, so parts stay UPLOAD_PART long
                self.file.write(view[start : start + CHUNK])
        except Exception as e:
            raise failure(self.url, e) from e

    def commit(self) -> None:
        try:
            self.file.close()
        except Exception as e:
            self.discard()
            raise failure(self.url, e) from e

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.file.discard()
        # Closing would publish what was written (fsspec commits on close): never close it.
        self.file.closed = True


def _fsync_dir(folder: str) -> None:
    """Make a rename or link in `folder` survive a power loss."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _writeback_starter() -> Callable[[int, int, int], None]:
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE), which os does not offer: it starts
    writing a range to disk and returns. Elsewhere nothing (the closing fsync does it all)."""
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return lambda fd, offset, length: None
    call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return lambda fd, offset, length: call(fd, offset, length, 2)  # failure is harmless: fsync follows


_start_writeback = _writeback_starter()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def writable(store: str) -> None:
    """InvalidInput unless `store` can take commits: a local folder or S3, whose writes can be
    conditional (put-if-absent). fsspec's generic `mode="create"` checks, then writes: two
    writers could both win. Any store stays readable."""
    protocol = _split_protocol(store)[0]
    if not (is_local(store) or protocol in S3_PROTOCOLS):
        raise InvalidInput(
            f"{store}: trainfiles writes only to local folders and S3 (a {protocol}:// store cannot put-if-absent)"
        )


def put_if_absent(url: str, data: bytes | Iterable[bytes]) -> bool:
    """Publish `data` (bytes, or chunks of them) at `url` only if nothing is there yet: True
    if we published it, False if the key already existed. Readers see the whole content or
    nothing.

    Local: a temporary file written chunk by chunk, fsynced, then `os.link` (which, unlike a
    rename, fails on an existing target). Object stores: a conditional PUT (S3
    `If-None-Match: *`) of the whole content. A store that cannot write conditionally is
    refused: without it two writers could both win.
    """
    chunks = [data] if isinstance(data, bytes) else data
    if is_local(url):
        return _link_if_absent(url, chunks)
    fs, path = resolve(url)
    try:
        fs.pipe_file(path, b"".join(chunks), mode="create")
    except FileExistsError:
        return False
    except (NotImplementedError, TypeError) as e:
        raise InvalidInput(
            f"{url}: this store cannot write conditionally (put-if-absent), so it cannot hold training files"
        ) from e
    except Exception as e:
        raise failure(url, e) from e
    return True


def _link_if_absent(url: str, chunks: Iterable[bytes]) -> bool:
    target = _LocalFile(url)
    try:
        for chunk in chunks:
            target.write(chunk)
        target.file.flush()
        os.fsync(target.file.fileno())
        target.file.close()
        os.chmod(target.tmp, 0o666 & ~_umask())
        try:
            os.link(target.tmp, target.path)
        except FileExistsError:
            return False
        _fsync_dir(os.path.dirname(target.path))
        return True
    except OSError as e:
        raise failure(url, e) from e
    finally:
        target.discard()


def publish_copy(src: str, dst: str) -> None:
    """Make `dst` hold what `src` holds, replacing it at once (readers see old or new).

    Local: a hard link to `src` renamed over `dst`, so no byte is copied; `src` must never
    change afterwards (ours are immutable versions). The folder is not fsynced: the caller's
    next atomic write in it does that for both. Object stores: a server-side copy.
    """
    if is_local(src):
        src, dst = join(src), join(dst)
        tmp = os.path.join(os.path.dirname(dst), f".tmp-{os.getpid()}-{os.urandom(4).hex()}-{os.path.basename(dst)}")
        try:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.link(src, tmp)
            os.replace(tmp, dst)
        except OSError as e:
            raise failure(dst, e) from e
        finally:
            # rename() of one hard link over another of the same file does nothing at all,
            # and leaves `tmp` (archive and unarchive keep their outputs).
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
    fs, path = resolve(src)
    target = resolve(dst)[1]
    try:
        if _split_protocol(src)[0] in S3_PROTOCOLS:  # one request: fs.copy lists and HEADs first
            bucket, key, _ = fs.split_path(path)
            dst_bucket, dst_key, _ = fs.split_path(target)
            fs.call_s3("copy_object", Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": bucket, "Key": key})
        else:
            fs.copy(path, target)
    except Exception as e:
        raise failure(dst, e) from e


def clock(folder: str) -> float:
    """Now by the store's own clock, in seconds since the epoch: the modification time of a
    small object written in `folder` for the purpose (then removed). Ages of objects in a
    store are judged by it, never by this machine's clock, which may be far off."""
    url = join(folder, f".tmp-clock-{os.getpid()}-{os.urandom(4).hex()}")
    write_atomic(url, b"")
    try:
        fs, path = resolve(url)
        info = fs.info(path)
    except Exception as e:
        raise failure(url, e) from e
    finally:
        remove(url)
    return _modified(info)


def remove(url: str) -> None:
    """Delete one object if it exists."""
    fs, path = resolve(url)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as e:
        raise failure(url, e) from e


def remove_empty_folder(url: str) -> None:
    """Remove a local folder if it is empty (object stores have no folders)."""
    if is_local(url):
        with contextlib.suppress(OSError):
            os.rmdir(join(url))


@contextlib.contextmanager
def removing_new_folders(url: str, always: bool = False) -> Iterator[None]:
    """On an error inside (or `always`), remove the local folders above `url` that did not
    exist before and are empty again, so a failed write leaves no trace (object stores
    have no folders)."""
    new = []
    if is_local(url):
        folder = os.path.dirname(join(url))
        while not os.path.exists(folder):
            new.append(folder)
            folder = os.path.dirname(folder)

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
