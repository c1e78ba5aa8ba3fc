"""Reading sources and writing training files through fsspec: one code path for every backend.

URLs are local paths or fsspec URLs (`s3://bucket/key`). Filesystem errors become our
exceptions here: a missing object is NotFound, anything else StorageUnavailable.
"""

import contextlib
import copy
import errno
import hashlib
import os
import posixpath
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from . import filecopy
from .errors import InvalidInput, NotFound, StorageUnavailable, TrainfilesError
from .filecopy import FileRange
from .text import encodes, printable

READ_CONCURRENCY = 32
CHUNK = 1 << 20
UPLOAD_PART = 50 << 20  # S3 parts in flight: memory holds one per object being written
WRITE_BEHIND = 32 << 20  # a local file's bytes start going to disk every this many
S3_PROTOCOLS = ("s3", "s3a")
# Both retry layers are bounded, so an endpoint that cannot be reached is reported within
# about 30 s (measured with these defaults: refused or unknown host 1-3 s, a connect that
# hangs 17 s, a server that accepts and never answers 32 s). botocore retries connection
# errors, timeouts, throttling and 5xx: 3 attempts, at most 1 + 2 s of backoff. s3fs adds
# one round for what botocore cannot retry, a response body cut off while being read.
S3_RETRIES = 2
S3_OPTIONS: dict[str, Any] = {
    "config_kwargs": {
        "connect_timeout": 5,
        "read_timeout": 5,  # seconds without a byte, not for the whole transfer
        "retries": {"total_max_attempts": 3, "mode": "standard"},
        # One connection per concurrent read: botocore's pool of 10 would otherwise be the cap.
        "max_pool_connections": READ_CONCURRENCY,
        # Presigned URLs otherwise use the deprecated SigV2 in us-east-1.
        "signature_version": "s3v4",
    },
    # Our concurrency is across objects; per-object concurrency costs a HEAD before each GET.
    "max_concurrency": 1,
    # Another process may change the store between our calls: always ask the server.
    "use_listings_cache": False,
}

Progress = Callable[[int], None]


def storage_options(protocol: str) -> dict[str, Any]:
    """Options for a protocol's filesystem: our S3 defaults, then TRAINFILES_STORAGE_OPTIONS.

    TRAINFILES_STORAGE_OPTIONS is a JSON object keyed by protocol, for example
    `{"s3": {"profile": "ci"}, "gcs": {"project": "p"}}`; its values are passed to fsspec.
    An object value is merged into ours key by key, so
    `{"s3": {"config_kwargs": {"connect_timeout": 1}}}` keeps the other S3 bounds.
    """
    options = copy.deepcopy(S3_OPTIONS) if protocol in S3_PROTOCOLS else {}
    for key, value in _configured().get(protocol, {}).items():
        if isinstance(value, dict) and isinstance(options.get(key), dict):
            value = {**options[key], **value}
        options[key] = value
    return options


def _configured() -> dict[str, dict[str, Any]]:
    extra = os.environ.get("TRAINFILES_STORAGE_OPTIONS")
    if not extra:
        return {}
    import orjson

    try:
        configured = orjson.loads(extra)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"TRAINFILES_STORAGE_OPTIONS is not valid JSON: {e}") from None
    if not (isinstance(configured, dict) and all(isinstance(v, dict) for v in configured.values())):
        raise InvalidInput(
            'TRAINFILES_STORAGE_OPTIONS must be a JSON object of objects, e.g. {"s3": {"profile": "ci"}}'
        )
    return configured


def resolve(url: str):
    """The filesystem and path for a URL (instances are cached by fsspec)."""
    from fsspec.core import url_to_fs

    protocol = _split_protocol(url)[0] or "file"
    try:
        fs, path = url_to_fs(url, **storage_options(protocol))
    except ValueError as e:  # "Protocol not known", or options it cannot take
        raise InvalidInput(redact(f"{url}: {e}")) from None
    except ImportError as e:
        if protocol in S3_PROTOCOLS:
            raise InvalidInput(
                redact(f"{url}: S3 needs trainfiles' s3 extra: pip install 'trainfiles[s3]' ({e})")
            ) from None
        raise InvalidInput(
            redact(f"{url}: the {protocol} protocol needs a package that is not installed ({e})")
        ) from None
    except Exception as e:  # filesystems that connect when made (ftp, sftp)
        raise failure(url, e) from e
    if protocol in S3_PROTOCOLS:
        fs.retries = S3_RETRIES  # an attribute, not a constructor option
    return fs, path


def _split_protocol(url: str) -> tuple[str | None, str]:
    """(protocol, path) as fsspec splits a URL; None for a plain path. fsspec's own rule
    (`fsspec.core.split_protocol`), here so that commands on local paths never import
    fsspec (40 ms: it imports asyncio and reads every package's entry points)."""
    if "://" in url:
        protocol, path = url.split("://", 1)
        if len(protocol) > 1:  # not a Windows drive letter
            return protocol, path
    if url.startswith("data:"):
        protocol, path = url.split(":", 1)
        return protocol, path
    return None, url


def is_local(url: str) -> bool:
    return _split_protocol(url)[0] in (None, "file", "local")


def _plain(url: str) -> bool:
    """A local path without a protocol: read with the os module, not fsspec. fsspec also
    takes `file:/x`, `local:/x` and chains (`a::b`) without `://`: those still go to it."""
    return _split_protocol(url)[0] is None and "::" not in url and not url.startswith(("file:", "local:"))


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URL."""
    if is_local(base):
        return os.path.join(os.path.abspath(os.path.expanduser(base)), *parts)
    return "/".join([base.rstrip("/"), *parts])


def inside(base: str, path: str) -> str:
    """`path` as a URL under `base`: joined to it when relative, else as given. ValueError
    when it leads elsewhere (`..`, an absolute path, a symlink or another protocol)."""
    relative = _split_protocol(path)[0] is None and not os.path.isabs(path)
    url = join(base, path) if relative else path
    if is_local(base) and is_local(url):
        within = _under(*(os.path.realpath(_split_protocol(u)[1]) for u in (url, join(base))))
    else:
        same = _split_protocol(base)[0] == _split_protocol(url)[0]
        within = same and _under(*(posixpath.normpath(_split_protocol(u)[1]) for u in (url, base)))
    if not within:
        raise ValueError(f"enriched_file_path {redact(path)!r} is outside --base {redact(base)}")
    return url


def key_under(root: str, url: str) -> str | None:
    """`url` as a key relative to `root` (`storage.join(store)`), both normalised as the file
    system or object store names them (`a//b`, `a/./b`, `a/../b`); None when it is not under
    `root`."""
    if is_local(root):
        root_path, path = (os.path.normpath(os.path.abspath(_split_protocol(u)[1])) for u in (root, url))
    else:
        root_path, path = (posixpath.normpath(_split_protocol(u)[1]) for u in (root, url))
    return path[len(root_path) + 1 :] if path.startswith(root_path.rstrip("/") + "/") else None


def _under(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip("/") + "/")


def redact(text: str) -> str:
    """`text` with the password of any `user:password@` in a URL hidden."""
    return _CREDENTIALS.sub(r"\1:***@", text)


_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")


def failure(url: str, exc: BaseException) -> TrainfilesError:
    """Our exception for a filesystem failure on `url`."""
    if isinstance(exc, TrainfilesError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"source file not found: {url}")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageUnavailable(redact(f"{url}: {reason}"))


def read_many(urls: Sequence[str], progress: Progress | None = None, sources: bool = True) -> list[bytes | NotFound]:
    """Read every URL concurrently: the bytes, or NotFound for a missing object, in order.
    Local sources must be regular files no larger than a source may be; with `sources`
    false (the store's own records), only regular files.

    Any other failure cancels the reads still running and raises StorageUnavailable, so an
    unreachable endpoint costs the time of one request, not of every URL in turn.
    """
    progress = progress or (lambda n: None)
    limit = cache(_source_limit) if sources else _unlimited  # read at the first local file, not before
    results: list[bytes | NotFound] = [b""] * len(urls)
    groups: dict[str | None, tuple[Any, list[int]]] = {}
    for i, url in enumerate(urls):
        protocol = _split_protocol(url)[0]
        if protocol is None:  # a plain path: read in order, without fsspec
            results[i] = _read_path(url, limit, follow=sources)
            progress(1)
            continue
        if protocol not in groups:  # one filesystem per protocol: resolving each URL costs 0.1 ms
            groups[protocol] = (resolve(url)[0], [])
        groups[protocol][1].append(i)
    for fs, indexes in groups.values():
        jobs = [(urls[i], fs._strip_protocol(urls[i])) for i in indexes]
        if getattr(fs, "async_impl", False):
            found = _read_async(fs, jobs, progress)
        else:
            found = _read_threads(fs, jobs, progress, limit)
        for i, data in zip(indexes, found):
            results[i] = data
    return results


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
        if reason := "not a regular file" if not stat.S_ISREG(info.st_mode) else _too_large(info.st_size, limit):
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
            if reason := _too_large(size, limit):  # it has grown since
                raise InvalidInput(f"{path}: {reason}")
        return parts[0] if len(parts) == 1 else b"".join(parts)
    except OSError as e:
        return _missing_or_raise(path, e)
    finally:
        os.close(fd)


def read_each(
    urls: Sequence[str], progress: Progress | None = None, digests: bool = True
) -> Iterator[tuple[bytes | NotFound, str | None]]:
    """Each URL's bytes (or NotFound) and, with `digests`, sha256, in order, read ahead on
    another thread a window at a time: memory holds two windows, whatever the number of
    URLs, and reading and hashing (which release the GIL) overlap the caller's work."""
    from .ahead import ahead

    def windows() -> Iterator[list]:
        window = 2 * READ_CONCURRENCY
        for start in range(0, len(urls), window):
            contents = read_many(urls[start : start + window], progress)
            yield [(data, sha256(data) if digests and isinstance(data, bytes) else None) for data in contents]

    for batch in ahead(windows(), depth=2):
        yield from batch


def _read_async(fs, jobs: list[tuple[str, str]], progress: Progress) -> list[bytes | NotFound]:
    """One event loop, at most READ_CONCURRENCY requests in flight, one GET per object.

    Not `fs.cat(paths)`: it keeps going after a failure and reports progress only at the end.
    """
    import asyncio

    from fsspec.asyn import sync

    async def read_all():
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(url: str, path: str) -> bytes | NotFound:
            async with limit:
                try:
                    data = await fs._cat_file(path)
                except Exception as e:
                    data = _missing_or_raise(url, e)
            progress(1)
            return data

        tasks = [asyncio.ensure_future(one(url, path)) for url, path in jobs]
        try:
            return await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    return sync(fs.loop, read_all)


def _read_threads(
    fs, jobs: list[tuple[str, str]], progress: Progress, limit: Callable[[], int]
) -> list[bytes | NotFound]:
    """Threads for a synchronous remote filesystem; `file://` URLs in order.

    On local disk the threads only contend for the GIL: 1,000 page-cached 50 KB files took
    0.10 s with 2 to 8 threads and 0.026 s in order (measured on this 2-core machine).
    """

    from fsspec.implementations.local import LocalFileSystem

    def one(job: tuple[str, str]) -> bytes | NotFound:
        url, path = job
        try:
            data = fs.cat_file(path)
        except Exception as e:
            data = _missing_or_raise(url, e)
        progress(1)
        return data

    if isinstance(fs, LocalFileSystem):
        found = []
        for _, path in jobs:
            found.append(_read_path(path, limit))
            progress(1)
        return found
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, jobs))


MAX_SOURCE_BYTES = 64 << 20


def _source_problem(path: str, limit: Callable[[], int]) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return _too_large(info.st_size, limit)


def _source_limit() -> int:
    """The most bytes a source may have: TRAINFILES_MAX_SOURCE_BYTES, else MAX_SOURCE_BYTES."""
    text = os.environ.get("TRAINFILES_MAX_SOURCE_BYTES", "")
    try:
        return int(text) if text else MAX_SOURCE_BYTES
    except ValueError:
        raise InvalidInput(f"TRAINFILES_MAX_SOURCE_BYTES must be a number of bytes, not {text!r}") from None


def _unlimited() -> int:
    return sys.maxsize


def _too_large(size: int, limit: Callable[[], int]) -> str | None:
    if size > (most := limit()):
        return f"{size} bytes, more than the {most} a source may have (TRAINFILES_MAX_SOURCE_BYTES)"
    return None


def _missing_or_raise(url: str, exc: Exception) -> NotFound:
    """NotFound for a missing object, to report beside the others; any other failure is raised."""
    error = failure(url, exc)
    if isinstance(error, NotFound):
        return error
    raise error from exc


def read(url: str, sources: bool = True) -> bytes:
    """The whole content of one object (a source, unless `sources` is false)."""
    data = read_many([url], sources=sources)[0]
    if isinstance(data, NotFound):
        raise data
    return data


def head(url: str, size: int) -> bytes:
    """The first `size` bytes of one object (fewer if it is shorter): one ranged read."""
    if _plain(url):
        try:
            with open(url, "rb") as f:
                return f.read(size)
        except Exception as e:
            raise failure(url, e) from e
    fs, path = resolve(url)
    try:
        return fs.cat_file(path, start=0, end=size)
    except Exception as e:
        raise failure(url, e) from e


def chunks(url: str) -> Iterator[bytes]:
    """One object's content in large chunks, for copying files too large to hold.

    On S3 one GET streamed, not a HEAD and a ranged GET per chunk."""
    fs, path = (None, url) if _plain(url) else resolve(url)
    if _split_protocol(url)[0] in S3_PROTOCOLS:
        yield from _s3_chunks(fs, path, url)
        return
    try:
        with open(url, "rb") if fs is None else fs.open(path, "rb", block_size=CHUNK) as src:
            while chunk := src.read(CHUNK):
                yield chunk
    except Exception as e:
        raise failure(url, e) from e


def _s3_chunks(fs, path: str, url: str) -> Iterator[bytes]:
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(path)
    try:
        body = sync(fs.loop, fs._call_s3, "get_object", Bucket=bucket, Key=key)["Body"]
        try:
            while chunk := sync(fs.loop, body.read, CHUNK):
                yield chunk
        finally:
            body.close()
    except Exception as e:
        raise failure(url, e) from e


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


def names_after(folder: str, after: str | None) -> list[str]:
    """The names of the objects directly in `folder` that sort after `after`, in order.

    On S3 one listing request (`StartAfter`) however long the folder; locally one
    directory read. A folder that does not exist has no names.
    """
    if is_local(folder):
        try:
            names = os.listdir(join(folder))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise failure(folder, e) from e
        return sorted(n for n in names if (after is None or n > after) and not n.startswith(".tmp-"))
    fs, path = resolve(folder)
    try:
        if _split_protocol(folder)[0] in S3_PROTOCOLS:
            return _s3_names_after(fs, path, after)
        return sorted(
            name for name in (p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)) if after is None or name > after
        )
    except FileNotFoundError:
        return []
    except Exception as e:
        raise failure(folder, e) from e


def _s3_names_after(fs, path: str, after: str | None) -> list[str]:
    bucket, prefix, _ = fs.split_path(path.rstrip("/") + "/")
    params = {"Bucket": bucket, "Prefix": prefix}
    if after is not None:
        params["StartAfter"] = prefix + after
    names = []
    while True:
        page = fs.call_s3("list_objects_v2", **params)
        names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return [n for n in names if "/" not in n]
        params["ContinuationToken"] = page["NextContinuationToken"]


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


def digest(url: str) -> tuple[str, int]:
    """The sha256 and size of one object, streamed."""
    h, size = hashlib.sha256(), 0
    for chunk in chunks(url):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def listing(url: str) -> list[dict]:
    """Every object under `url` (recursively): `{"url", "size", "modified"}` with the
    modification time in seconds since the epoch. Local temporary files are included."""
    fs, path = resolve(url)
    try:
        found = fs.find(path, detail=True, withdirs=False)
    except FileNotFoundError:
        return []
    except Exception as e:
        raise failure(url, e) from e
    out = []
    for p, info in found.items():
        out.append({"url": _url(fs, url, p), "size": info.get("size") or 0, "modified": _modified(info)})
    return out


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


def _modified(info: dict) -> float:
    modified = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    return float(modified.timestamp() if hasattr(modified, "timestamp") else modified)


def signature(url: str) -> tuple[int, int, int] | None:
    """A local file's size, modification time (ns) and inode: what changes when anything
    writes it. None for objects in a store (and missing files)."""
    if not is_local(url):
        return None
    try:
        info = os.stat(join(url))
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


def exists(url: str) -> bool:
    if _plain(url):
        return os.path.exists(url)
    fs, path = resolve(url)
    try:
        return fs.exists(path)
    except Exception as e:
        raise failure(url, e) from e


def remove(url: str) -> None:
    """Delete one object if it exists."""
    fs, path = resolve(url)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as e:
        raise failure(url, e) from e


def unfinished_uploads(folder: str, started_before: float, abort: bool) -> list[str]:
    """The keys of multipart uploads under a folder URL started before `started_before`
    (seconds since the epoch), aborted when `abort`: what a process killed while writing a
    large object left behind (invisible, but billed until aborted).

    Stores without uploads have none. A store that does not let us list or abort them
    (permission, not implemented) has none we can act on; one that cannot be reached is
    reported as usual.
    """
    if _split_protocol(folder)[0] not in S3_PROTOCOLS:
        return []
    fs, path = resolve(folder)
    bucket, prefix, _ = fs.split_path(path.rstrip("/") + "/")
    found = []
    try:
        listed = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
        for upload in listed.get("Uploads", []):
            if upload["Initiated"].timestamp() > started_before:
                continue
            found.append(upload["Key"])
            if abort:
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except PermissionError:
        pass
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise failure(folder, e) from e
    except Exception as e:
        raise failure(folder, e) from e
    return found


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


def find_json(url: str) -> Iterator[tuple[str, str | None]]:
    """Every `.json` file under `url` (or `url` itself if it is a file) as (URL, None), or
    (URL, reason) for one not to read: a path that is not UTF-8, not a regular file (a FIFO
    would hang the scan), a symlink leading out of `url`, or larger than a source may be.

    A local folder is walked with one `scandir` per folder and files come as they are
    found, in no set order, so reading can start before the walk ends; other stores are
    one recursive listing (`find` is a single paginated request on S3), sorted.
    """
    local = is_local(url)
    fs, path = (None, _absolute(url)) if _plain(url) else resolve(url)
    found, limit = 0, cache(_source_limit)  # read at the first file that needs it
    try:
        if local:
            root = os.path.realpath(path)
            for p, entry in _local_files(path):
                found += 1
                yield _classified(p, p, _unscannable_local(p, entry, root, limit))
        else:
            listed = fs.find(path, detail=True)
            if list(listed) != [path]:  # a folder: keep its JSON files
                listed = {p: info for p, info in listed.items() if p.endswith(".json")}
            for p, info in sorted(listed.items()):
                found += 1
                yield _classified(p, _url(fs, url, p), _unscannable(info, limit))
    except TrainfilesError:
        raise
    except Exception as e:
        raise failure(url, e) from e
    if not found and not (os.path.isdir(path) if local else fs.isdir(path)):
        raise NotFound(f"nothing to scan at {url}")


def _absolute(path: str) -> str:
    """A plain path made absolute without fsspec: as the store's are (`join`), except that
    `..` stays as written, since after a symlink it need not lead to the folder above."""
    if ".." not in path.split(os.sep):
        return join(path)
    return os.path.join(os.getcwd(), os.path.expanduser(path))


def _classified(path: str, url: str, reason: str | None) -> tuple[str, str | None]:
    if not encodes(path):  # bytes the OS could not decode: no catalog can hold the path
        return printable(url), "the path is not valid UTF-8"
    return url, reason


def _local_files(path: str) -> Iterator[tuple[str, os.DirEntry | None]]:
    """The JSON files under a local folder (or the file itself, whatever its name), with
    their directory entries, which already know their type. Links to folders are not
    followed."""
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


def _unscannable_local(path: str, entry: os.DirEntry | None, root: str, limit: Callable[[], int]) -> str | None:
    """Why a local file found by a scan is not to be read, if it is not: a link leading out
    of the scanned folder, or what a source must not be."""
    if entry is None or entry.is_symlink():
        real = os.path.realpath(path)
        if not _under(real, root):
            return f"a symlink to {real}, outside the scanned folder"
        return _source_problem(path, limit)
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file"
    return _too_large(entry.stat(follow_symlinks=False).st_size, limit)


def _unscannable(info: dict, limit: Callable[[], int]) -> str | None:
    """Why a remote file found by a scan is not to be read, by its listing."""
    return "not a regular file" if info.get("type", "file") != "file" else _too_large(info.get("size") or 0, limit)


def _url(fs, base_url: str, path: str) -> str:
    return path if is_local(base_url) else fs.unstrip_protocol(path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(url: str, expires: int) -> str:
    """A presigned URL that fetches `url` for `expires` seconds."""
    fs, path = resolve(url)
    try:
        return fs.sign(path, expiration=expires)
    except NotImplementedError:
        raise InvalidInput(f"{url}: this storage cannot sign URLs; --url needs a store such as s3://") from None
    except Exception as e:
        raise failure(url, e) from e
