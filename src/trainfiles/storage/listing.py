"""Listing: a folder's names after a key, every object with its size and time, the enriched files under a URL, signed URLs."""

import errno
import os
from collections.abc import Callable, Iterator
from functools import cache

from trainfiles.core.text import encodes, printable
from trainfiles.errors import InvalidInput, NotFound, TrainfilesError
from trainfiles.storage.urls import (
    S3_PROTOCOLS,
    _modified,
    _plain,
    _source_limit,
    _source_problem,
    _split_protocol,
    _too_large,
    _under,
    _url,
    failure,
    is_local,
    join,
    resolve,
)


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


def sign(url: str, expires: int) -> str:
    """A presigned URL that fetches `url` for `expires` seconds."""
    fs, path = resolve(url)
    try:
        return fs.sign(path, expiration=expires)
    except NotImplementedError:
        raise InvalidInput(f"{url}: this storage cannot sign URLs; --url needs a store such as s3://") from None
    except Exception as e:
        raise failure(url, e) from e
