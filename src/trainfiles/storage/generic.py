"""`Storage`, the interface every backend offers, as it works on any fsspec filesystem; the
local and S3 backends override what they do better (see `local.py`, `s3.py`)."""

import asyncio
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from trainfiles.errors import InvalidInput, NotFound, TrainfilesError
from trainfiles.storage.urls import (
    CHUNK,
    READ_CONCURRENCY,
    Progress,
    _missing_or_raise,
    _modified,
    _split_protocol,
    _too_large,
    failure,
    resolve,
)


class Target(Protocol):
    """One object being written: `write` chunks, then `commit` (publish it whole) or
    `discard` (publish nothing)."""

    def write(self, chunk: bytes) -> None: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


class Storage:
    """Any fsspec filesystem (`gcs://`, `memory://`, `http://` ...): readable, listable, and
    written whole at the end. It cannot commit (`writable` refuses): its conditional
    create is a check, then a write, so two writers could both win."""

    def __init__(self, protocol: str):
        self.protocol = protocol

    # Reading

    def read_all(
        self, urls: list[str], progress: Progress, limit: Callable[[], int], follow: bool, most: int | None = None
    ) -> list[bytes | NotFound]:
        """Each URL's bytes, or NotFound, in order; any other failure is raised. With
        `most`, an object is read no further than one byte more, and refused if it has it
        (`limit` and `follow` matter to local files only)."""
        from fsspec.core import strip_protocol

        fs = resolve(urls[0])[0]  # one filesystem per protocol: resolving each URL costs 0.1 ms
        jobs = [(url, strip_protocol(url)) for url in urls]
        if getattr(fs, "async_impl", False):
            return _read_async(fs, jobs, progress, most)
        return _read_threads(fs, jobs, progress, most)

    def head(self, url: str, size: int) -> bytes:
        """The first `size` bytes (fewer if the object is shorter): one ranged read."""
        fs, path = resolve(url)
        try:
            return fs.cat_file(path, start=0, end=size)
        except Exception as e:
            raise failure(url, e) from e

    def chunks(self, url: str) -> Iterator[bytes]:
        """The content in chunks of CHUNK bytes, streamed."""
        fs, path = resolve(url)
        try:
            with fs.open(path, "rb", block_size=CHUNK) as src:
                while chunk := src.read(CHUNK):
                    yield chunk
        except Exception as e:
            raise failure(url, e) from e

    def exists(self, url: str) -> bool:
        fs, path = resolve(url)
        try:
            return fs.exists(path)
        except Exception as e:
            raise failure(url, e) from e

    def signature(self, url: str) -> tuple[int, int, int] | None:
        """What changes when anything writes `url`, where the storage can tell cheaply."""
        return None

    # Listing

    def names_after(self, folder: str, after: str | None) -> list[str]:
        """The names directly in `folder` that sort after `after`, in order; none for a
        folder that does not exist."""
        fs, path = resolve(folder)
        try:
            names = (p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
            return sorted(name for name in names if after is None or name > after)
        except FileNotFoundError:
            return []
        except Exception as e:
            raise failure(folder, e) from e

    def listing(self, url: str) -> list[dict]:
        """Every object under `url`, recursively: `{"url", "size", "modified"}`."""
        fs, path = resolve(url)
        try:
            found = fs.find(path, detail=True, withdirs=False)
        except FileNotFoundError:
            return []
        except Exception as e:
            raise failure(url, e) from e
        return [
            {"url": self.url_of(fs, p), "size": info.get("size") or 0, "modified": _modified(info)}
            for p, info in found.items()
        ]

    def find_json(self, url: str, limit: Callable[[], int]) -> Iterator[tuple[str, str | None]]:
        """The `.json` objects under `url` (or `url` itself), each with the reason not to
        read it, if any: one recursive listing, sorted."""
        fs, path = resolve(url)
        try:
            listed = fs.find(path, detail=True)
            if list(listed) != [path]:  # a folder: keep its JSON files
                listed = {p: info for p, info in listed.items() if p.endswith(".json")}
            for p, info in sorted(listed.items()):
                yield self.url_of(fs, p), unscannable(info, limit)
            if not listed and not fs.isdir(path):
                raise NotFound(f"nothing to scan at {url}")
        except TrainfilesError:
            raise
        except Exception as e:
            raise failure(url, e) from e

    def url_of(self, fs: Any, path: str) -> str:
        """The URL of a path the filesystem listed."""
        return fs.unstrip_protocol(path)

    def unfinished_uploads(self, folder: str, started_before: float, abort: bool) -> list[str]:
        """Uploads begun and never finished under `folder` (none where writes are whole)."""
        return []

    def sign(self, url: str, expires: int) -> str:
        """A presigned URL that fetches `url` for `expires` seconds."""
        fs, path = resolve(url)
        try:
            return fs.sign(path, expiration=expires)
        except NotImplementedError:
            raise InvalidInput(f"{url}: this storage cannot sign URLs; --url needs a store such as s3://") from None
        except Exception as e:
            raise failure(url, e) from e

    def modified(self, url: str) -> float:
        """When `url` was last written, by the storage's clock, in seconds since the epoch."""
        fs, path = resolve(url)
        try:
            return _modified(fs.info(path))
        except Exception as e:
            raise failure(url, e) from e

    # Writing

    def writable(self, store: str) -> None:
        """InvalidInput unless training files can be committed here."""
        raise InvalidInput(
            f"{store}: trainfiles writes only to local folders and S3 (a {self.protocol}:// store cannot put-if-absent)"
        )

    def target(self, url: str, create_folder: bool, into_special: bool) -> Target:
        return _WholeObject(url)

    def put_if_absent(self, url: str, chunks: Iterable[bytes]) -> bool:
        """Publish at `url` unless something is there: True if we did. fsspec's
        `mode="create"`: a conditional PUT where the filesystem has one."""
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

    def publish_copy(self, src: str, dst: str) -> None:
        """Make `dst` hold what `src` holds, at once: a copy made by the server."""
        fs, path = resolve(src)
        try:
            fs.copy(path, resolve(dst)[1])
        except Exception as e:
            raise failure(dst, e) from e

    def remove(self, url: str) -> None:
        """Delete one object if it exists."""
        fs, path = resolve(url)
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as e:
            raise failure(url, e) from e

    def remove_empty_folder(self, url: str) -> None:
        """Object stores have no folders to remove."""

    def new_folders(self, url: str) -> list[str]:
        """The folders above `url` that a write would create (none in an object store)."""
        return []


def unscannable(info: dict, limit: Callable[[], int]) -> str | None:
    """Why a listed object is not to be read as a source, by its listing."""
    return "not a regular file" if info.get("type", "file") != "file" else _too_large(info.get("size") or 0, limit)


class _WholeObject:
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


def _span(most: int | None) -> dict:
    """What to ask of an object: all of it, or one byte more than it may have."""
    return {} if most is None else {"start": 0, "end": most + 1}


def _bounded(url: str, data: bytes, most: int | None) -> bytes:
    if most is not None and len(data) > most:
        raise InvalidInput(f"{url}: larger than {most} bytes, more than a store's object may be")
    return data


def _read_async(fs: Any, jobs: list[tuple[str, str]], progress: Progress, most: int | None) -> list[bytes | NotFound]:
    """One event loop, at most READ_CONCURRENCY requests in flight, one GET per object.

    Not `fs.cat(paths)`: it keeps going after a failure and reports progress only at the end.
    """
    from fsspec.asyn import sync

    async def read_all():
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(url: str, path: str) -> bytes | NotFound:
            async with limit:
                try:
                    data = _bounded(url, await fs._cat_file(path, **_span(most)), most)
                except Exception as e:  # NotFound for a missing object; ours (too large) and the rest raised
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


def _read_threads(fs: Any, jobs: list[tuple[str, str]], progress: Progress, most: int | None) -> list[bytes | NotFound]:
    """Threads for a synchronous remote filesystem."""

    def one(job: tuple[str, str]) -> bytes | NotFound:
        url, path = job
        try:
            data = _bounded(url, fs.cat_file(path, **_span(most)), most)
        except Exception as e:
            data = _missing_or_raise(url, e)
        progress(1)
        return data

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, jobs))


def protocol_of(url: str) -> str:
    """The protocol that picks a URL's backend: `file` for any local path."""
    return _split_protocol(url)[0] or "file"
