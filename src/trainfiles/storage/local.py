"""`LocalStorage`: local paths (and `file://` URLs) through the os module, never fsspec's
import on the way: reads that refuse what a source must not be, temporary files renamed
into place, hard links for put-if-absent and for copies."""

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator

from trainfiles.errors import InvalidInput, NotFound
from trainfiles.storage import filecopy
from trainfiles.storage.filecopy import FileRange
from trainfiles.storage.generic import Storage
from trainfiles.storage.urls import (
    CHUNK,
    WRITE_BEHIND,
    Progress,
    _missing_or_raise,
    _plain,
    _too_large,
    _under,
    failure,
    join,
    resolve,
)


class LocalStorage(Storage):
    """Files on this machine's disks."""

    def path(self, url: str) -> str:
        """The os path of a local URL (fsspec's rule for `file://`, `file:` and `local:`)."""
        return url if _plain(url) else resolve(url)[1]

    def read_all(
        self, urls: list[str], progress: Progress, limit: Callable[[], int], follow: bool, most: int | None = None
    ) -> list[bytes | NotFound]:
        # In order: on local disk threads only contend for the GIL (1,000 page-cached 50 KB
        # files read in a quarter of the time of 2 to 8 threads).
        found = []
        for url in urls:
            found.append(_read_path(self.path(url), limit, follow))
            progress(1)
        return found

    def head(self, url: str, size: int) -> bytes:
        try:
            with open(self.path(url), "rb") as f:
                return f.read(size)
        except Exception as e:
            raise failure(url, e) from e

    def chunks(self, url: str) -> Iterator[bytes]:
        try:
            with open(self.path(url), "rb") as src:
                while chunk := src.read(CHUNK):
                    yield chunk
        except Exception as e:
            raise failure(url, e) from e

    def exists(self, url: str) -> bool:
        return os.path.exists(self.path(url))

    def signature(self, url: str) -> tuple[int, int, int] | None:
        """A file's size, modification time (ns) and inode; None for a missing one."""
        try:
            info = os.stat(join(url))
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns, info.st_ino

    def names_after(self, folder: str, after: str | None) -> list[str]:
        """One directory read; temporary files are not names."""
        try:
            names = os.listdir(join(folder))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise failure(folder, e) from e
        return sorted(n for n in names if (after is None or n > after) and not n.startswith(".tmp-"))

    def url_of(self, fs: object, path: str) -> str:
        return path

    def find_json(self, url: str, limit: Callable[[], int]) -> Iterator[tuple[str, str | None]]:
        """A folder walked with one `scandir` per folder, files yielded as found (in no set
        order), so reading can start before the walk ends. Links to folders are not
        followed; a link to a file outside the folder is refused."""
        path = self.path(url) if not _plain(url) else _absolute(url)
        root, found = os.path.realpath(path), 0
        try:
            for p, entry in _local_files(path):
                found += 1
                yield p, _unscannable(p, entry, root, limit)
        except OSError as e:
            raise failure(url, e) from e
        if not found and not os.path.isdir(path):
            raise NotFound(f"nothing to scan at {url}")

    def modified(self, url: str) -> float:
        try:
            return os.stat(self.path(url)).st_mtime
        except OSError as e:
            raise failure(url, e) from e

    def sign(self, url: str, expires: int) -> str:
        raise InvalidInput(f"{url}: this storage cannot sign URLs; --url needs a store such as s3://")

    def writable(self, store: str) -> None:
        """Local folders commit: a hard link fails on an existing name."""

    def target(self, url: str, create_folder: bool, into_special: bool) -> "_LocalFile":
        path = self.path(url)
        return _LocalFile.for_path(path, create_folder) if into_special else _LocalFile(path, create_folder)

    def put_if_absent(self, url: str, chunks: Iterable[bytes]) -> bool:
        """A temporary file written chunk by chunk, fsynced, then `os.link`, which (unlike
        a rename) fails on an existing target."""
        target = _LocalFile(self.path(url))
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

    def publish_copy(self, src: str, dst: str) -> None:
        """A hard link to `src` renamed over `dst`, so no byte is copied; `src` must never
        change afterwards (ours are immutable versions). The folder is not fsynced: the
        caller's next atomic write in it does that for both."""
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

    def remove(self, url: str) -> None:
        try:
            os.unlink(self.path(url))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise failure(url, e) from e

    def remove_empty_folder(self, url: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(join(url))

    def new_folders(self, url: str) -> list[str]:
        new, folder = [], os.path.dirname(join(url))
        while not os.path.exists(folder):
            new.append(folder)
            folder = os.path.dirname(folder)
        return new


def _read_path(path: str, limit: Callable[[], int], follow: bool = True) -> bytes | NotFound:
    """A local file's bytes, or NotFound. Opened without blocking (a FIFO must not hang
    us), then refused unless the open file is a regular one no larger than a source may be;
    checked on what was opened, so nothing swapped in after a check is read. Without
    `follow` (a store's own objects), a symbolic link is refused too: it would lead outside.
    An open, an fstat and a read: a fifth of what fsspec's cat_file cost per 50 KB file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
    except OSError as e:
        if e.errno == errno.ENXIO:  # a socket
            raise InvalidInput(f"{path}: not a regular file") from None
        if e.errno == errno.ELOOP and not follow:
            raise InvalidInput(f"{path}: not a regular file (a symbolic link)") from None
        return _missing_or_raise(path, e)
    try:
        info = os.fstat(fd)
        if (
            reason := "not a regular file"
            if not stat.S_ISREG(info.st_mode)
            else _too_large(info.st_size, limit, follow)
        ):
            raise InvalidInput(f"{path}: {reason}")
        parts, size, expected = [], 0, info.st_size
        # One byte more than fstat said, to see the end; on, should the file have grown. Not
        # more: os.read allocates what it is asked for, and a 1 MiB buffer per 50 KB file
        # doubled a scan's system time.
        while part := os.read(fd, expected + 1 - size if size <= expected else CHUNK):
            parts.append(part)
            size += len(part)
            if size == expected:  # all fstat said, and not the byte more asked for: the end
                break
            if reason := _too_large(size, limit, follow):  # it has grown since
                raise InvalidInput(f"{path}: {reason}")
        return parts[0] if len(parts) == 1 else b"".join(parts)
    except OSError as e:
        return _missing_or_raise(path, e)
    finally:
        os.close(fd)


def _absolute(path: str) -> str:
    """A plain path made absolute: as the store's are (`join`), except that `..` stays as
    written, since after a symlink it need not lead to the folder above."""
    if ".." not in path.split(os.sep):
        return join(path)
    return os.path.join(os.getcwd(), os.path.expanduser(path))


def _local_files(path: str) -> Iterator[tuple[str, os.DirEntry | None]]:
    """The JSON files under a local folder (or the file itself, whatever its name), with
    their directory entries, which already know their type."""
    if not os.path.isdir(path):
        if os.path.lexists(path):
            yield path, None
        return
    folders = [path]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.name.endswith(".json"):
                    yield entry.path, entry


def _unscannable(path: str, entry: os.DirEntry | None, root: str, limit: Callable[[], int]) -> str | None:
    """Why a file a scan found is not to be read, if it is not: a link leading out of the
    scanned folder, or what a source must not be."""
    if entry is None or entry.is_symlink():
        real = os.path.realpath(path)
        if not _under(real, root):
            return f"a symlink to {real}, outside the scanned folder"
        return _source_problem(path, limit)
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file"
    return _too_large(entry.stat(follow_symlinks=False).st_size, limit)


def _source_problem(path: str, limit: Callable[[], int]) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return _too_large(info.st_size, limit)


class _LocalFile:
    """A temporary file beside the target, fsynced, then renamed over it."""

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
