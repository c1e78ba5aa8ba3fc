"""Reading sources and writing training files through fsspec: one code path for every backend.

URLs are local paths or fsspec URLs (`s3://bucket/key`). Filesystem errors become our
exceptions here: a missing object is NotFound, anything else StorageUnavailable.
"""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from .errors import NotFound, StorageUnavailable, TrainfilesError

READ_CONCURRENCY = 32
CHUNK = 1 << 20

Progress = Callable[[int], None]


def storage_options(protocol: str) -> dict[str, Any]:
    """Options for a protocol's filesystem: our S3 bounds, then TRAINFILES_STORAGE_OPTIONS.

    TRAINFILES_STORAGE_OPTIONS is a JSON object keyed by protocol, for example
    `{"s3": {"anon": false}, "gcs": {"project": "p"}}`; its values are passed to fsspec.
    """
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        options = {
            "config_kwargs": {
                "connect_timeout": 5,
                "read_timeout": 30,
                "retries": {"total_max_attempts": 3, "mode": "standard"},
                "max_pool_connections": READ_CONCURRENCY,
            },
        }
    extra = os.environ.get("TRAINFILES_STORAGE_OPTIONS")
    if extra:
        import orjson

        try:
            by_protocol = orjson.loads(extra)
        except orjson.JSONDecodeError as e:
            raise TrainfilesError(f"TRAINFILES_STORAGE_OPTIONS is not valid JSON: {e}") from None
        options.update(by_protocol.get(protocol, {}))
    return options


def resolve(url: str):
    """The filesystem and path for a URL (instances are cached by fsspec)."""
    from fsspec.core import split_protocol, url_to_fs

    protocol = split_protocol(url)[0] or "file"
    try:
        fs, path = url_to_fs(url, **storage_options(protocol))
    except (ImportError, ValueError) as e:
        raise StorageUnavailable(f"{url}: {e}") from None
    if protocol in ("s3", "s3a"):
        fs.retries = 2
    return fs, path


def is_local(url: str) -> bool:
    from fsspec.core import split_protocol

    return split_protocol(url)[0] in (None, "file", "local")


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URL."""
    if is_local(base):
        return os.path.join(os.path.abspath(os.path.expanduser(base)), *parts)
    return "/".join([base.rstrip("/"), *parts])


def failure(url: str, exc: BaseException) -> TrainfilesError:
    """Our exception for a filesystem failure on `url`."""
    if isinstance(exc, TrainfilesError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"source file not found: {url}")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageUnavailable(f"{url}: {reason}")


def read_many(urls: Sequence[str], progress: Progress | None = None) -> list[bytes | TrainfilesError]:
    """Read every URL concurrently; each result is the bytes or the failure for that URL."""
    results: list[bytes | TrainfilesError] = [b""] * len(urls)
    groups: dict[int, tuple[Any, list[tuple[int, str]]]] = {}
    for i, url in enumerate(urls):
        try:
            fs, path = resolve(url)
        except TrainfilesError as e:
            results[i] = e
            continue
        groups.setdefault(id(fs), (fs, []))[1].append((i, path))
    for fs, items in groups.values():
        for (i, path), data in zip(items, _read_group(fs, [p for _, p in items], progress)):
            results[i] = failure(urls[i], data) if isinstance(data, BaseException) else data
    return results


def _read_group(fs, paths: list[str], progress: Progress | None) -> Iterator[bytes | BaseException]:
    if getattr(fs, "async_impl", False):
        # One event loop does the concurrency; chunks only pace the progress bar.
        for start in range(0, len(paths), READ_CONCURRENCY * 4):
            chunk = paths[start : start + READ_CONCURRENCY * 4]
            try:
                out = fs.cat(chunk, on_error="return", batch_size=READ_CONCURRENCY)
            except Exception as e:  # the whole request failed: every path shares the cause
                out = {p: e for p in chunk}
            yield from (out.get(p, FileNotFoundError(p)) for p in chunk)
            if progress:
                progress(len(chunk))
        return

    def one(path: str) -> bytes | BaseException:
        try:
            return fs.cat_file(path)
        except Exception as e:
            return e
        finally:
            if progress:
                progress(1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        yield from pool.map(one, paths)


def read(url: str) -> bytes:
    """The whole content of one object."""
    fs, path = resolve(url)
    try:
        return fs.cat_file(path)
    except Exception as e:
        raise failure(url, e) from e


def open_input(url: str) -> IO[bytes]:
    """A binary stream over one object, for copying large files without holding them."""
    fs, path = resolve(url)
    try:
        return fs.open(path, "rb", block_size=CHUNK)
    except Exception as e:
        raise failure(url, e) from e


def write_atomic(url: str, data: bytes) -> None:
    """Replace `url` with `data` all at once: readers see the old content or the new, never part.

    Local: a temporary file beside the target, fsynced, then renamed over it. Object
    stores: one `pipe_file` (a PUT, or a multipart upload aborted on error, is
    all-or-nothing).
    """
    try:
        if is_local(url):
            _write_local(url, data)
        else:
            fs, path = resolve(url)
            fs.pipe_file(path, data)
    except TrainfilesError:
        raise
    except Exception as e:
        raise failure(url, e) from e


def _write_local(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove(url: str) -> None:
    """Delete one object if it exists."""
    fs, path = resolve(url)
    try:
        if fs.exists(path):
            fs.rm_file(path)
    except Exception as e:
        raise failure(url, e) from e


def find_json(url: str) -> list[str]:
    """URLs of every `.json` file under `url`, from one recursive listing, sorted."""
    fs, path = resolve(url)
    try:
        if fs.isfile(path):
            found = [path]
        else:
            found = [p for p in fs.find(path) if p.endswith(".json")]
    except Exception as e:
        raise failure(url, e) from e
    if not found and not fs.isdir(path):
        raise NotFound(f"nothing to scan at {url}")
    return sorted(_url(fs, url, p) for p in found)


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
        raise StorageUnavailable(f"{url}: this storage cannot sign URLs") from None
    except Exception as e:
        raise failure(url, e) from e
