"""Where things are: URLs and local paths, fsspec filesystems and their options, confinement to a folder, errors mapped to ours."""

import copy
import hashlib
import os
import posixpath
import re
import sys
from collections.abc import Callable
from typing import Any

from trainfiles.errors import InvalidInput, NotFound, StorageUnavailable, TrainfilesError

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


MAX_SOURCE_BYTES = 64 << 20


def _source_limit() -> int:
    """The most bytes a source may have: TRAINFILES_MAX_SOURCE_BYTES, else MAX_SOURCE_BYTES."""
    text = os.environ.get("TRAINFILES_MAX_SOURCE_BYTES", "")
    try:
        return int(text) if text else MAX_SOURCE_BYTES
    except ValueError:
        raise InvalidInput(f"TRAINFILES_MAX_SOURCE_BYTES must be a number of bytes, not {text!r}") from None


def _unlimited() -> int:
    return sys.maxsize


def _too_large(size: int, limit: Callable[[], int], source: bool = True) -> str | None:
    if size > (most := limit()):
        if not source:
            return f"larger than {most} bytes, more than a store's object may be"
        return f"{size} bytes, more than the {most} a source may have (TRAINFILES_MAX_SOURCE_BYTES)"
    return None


def _missing_or_raise(url: str, exc: Exception) -> NotFound:
    """NotFound for a missing object, to report beside the others; any other failure is raised."""
    error = failure(url, exc)
    if isinstance(error, NotFound):
        return error
    raise error from exc


def _modified(info: dict) -> float:
    modified = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    return float(modified.timestamp() if hasattr(modified, "timestamp") else modified)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
