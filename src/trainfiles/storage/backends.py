"""Which backend serves a URL: `LocalStorage` for local paths, `S3Storage` for S3, and
`Storage` for any other fsspec filesystem. One instance per protocol."""

from functools import cache

from trainfiles.storage.generic import Storage
from trainfiles.storage.local import LocalStorage
from trainfiles.storage.s3 import S3Storage
from trainfiles.storage.urls import S3_PROTOCOLS, _split_protocol, is_local


def backend(url: str) -> Storage:
    """The backend for `url`."""
    return _backend("file" if is_local(url) else str(_split_protocol(url)[0]))


@cache
def _backend(protocol: str) -> Storage:
    if protocol == "file":
        return LocalStorage(protocol)
    if protocol in S3_PROTOCOLS:
        return S3Storage(protocol)
    return Storage(protocol)
