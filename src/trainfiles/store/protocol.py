"""The store's protocol: the version of the store format a tool must read, and must write,
to use it (as Delta Lake's protocol action). docs/store.md, "Versions".

`_protocol.json` is written once, with put-if-absent, by the first write of a trainfiles that
knows it; a store without one is of version 1 (a log of commit and repair records, as
trainfiles wrote before registrations were shared), read as it is and upgraded by that
write without rewriting any record. A later upgrade publishes a protocol record in the log,
which every reader honours from its sequence on. A tool refuses a store that needs a
version it does not read (exit 6, every command) or write (every change).
"""

import orjson

from trainfiles import storage
from trainfiles.core import clock, records
from trainfiles.errors import InvalidInput, NotFound, StorageUnavailable
from trainfiles.store import commits
from trainfiles.store.catalog import Catalog

OBJECT = "_protocol.json"
LEGACY = (1, 1)  # a store without a protocol object
MEND = "the store's protocol object is written once by trainfiles; restore it, or remove it and the next change writes it again"


def needed(
    known: tuple[int, int] | None, store: str, read: list, floor: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """The (reader, writer) versions the store needs, given those `known` from what the index
    read before: the protocol object (asked for until it is found: it never changes), those
    a checkpoint says the records before it needed (`floor`) and the protocol records among
    `read`. StorageUnavailable if this trainfiles cannot read it."""
    versions = known or _object_versions(store)
    if floor:
        versions = (max(floor[0], (versions or LEGACY)[0]), max(floor[1], (versions or LEGACY)[1]))
    for record in read:
        if isinstance(record, dict) and record["format"] == records.PROTOCOL:
            known = versions or LEGACY
            versions = (max(known[0], record["reader_version"]), max(known[1], record["writer_version"]))
    if versions and versions[0] > records.READER_VERSION:
        raise StorageUnavailable(
            f"{store} needs a trainfiles that reads store format {versions[0]} (this one reads up to "
            f"{records.READER_VERSION}): upgrade trainfiles to use this store"
        )
    return versions


def ensure(catalog: Catalog, store: str, user: str) -> None:
    """Before a change is published: the store's protocol object written if it has none (this
    upgrades a store of version 1; the write proves the store's put-if-absent), and the
    change refused if the store needs a writer this trainfiles is not."""
    versions = catalog.protocol()
    if versions is None:
        ours = {
            "format": records.PROTOCOL,
            "reader_version": records.READER_VERSION,
            "writer_version": records.WRITER_VERSION,
            "created_at": clock.stamp(),
            "created_by": user,
        }
        url, data = commits.confined(store, OBJECT), orjson.dumps(ours, option=orjson.OPT_APPEND_NEWLINE)
        if storage.put_if_absent(url, data):
            # Once per store: the same conditional write again must fail, or the server takes
            # `If-None-Match` and writes anyway (some S3-compatible ones do), and two writers
            # of one sequence could both win.
            if storage.put_if_absent(url, data):
                raise StorageUnavailable(
                    f"{store}: a second put-if-absent of {OBJECT} succeeded: this server does not honour "
                    "conditional writes (If-None-Match), so two writers could both win; trainfiles writes nothing here"
                )
            versions = (records.READER_VERSION, records.WRITER_VERSION)
        else:
            versions = needed(None, store, []) or LEGACY
        with catalog.write():
            catalog.set_protocol(*versions)
    refuse_newer_writer(versions, store)


def refuse_newer_writer(versions: tuple[int, int] | None, store: str) -> None:
    """StorageUnavailable if the store needs a writer this trainfiles is not (nothing is
    written into it, nor deleted from it)."""
    if versions and versions[1] > records.WRITER_VERSION:
        raise StorageUnavailable(
            f"{store} needs a trainfiles that writes store format {versions[1]} (this one writes up to "
            f"{records.WRITER_VERSION}): upgrade trainfiles to change this store"
        )


def _object_versions(store: str) -> tuple[int, int] | None:
    url = storage.join(store, OBJECT)
    data = commits.read_objects([url], most=records.MAX_TEXT)[0]  # a larger one is never read whole
    if isinstance(data, NotFound):
        return None
    try:
        if isinstance(data, InvalidInput):
            raise data
        found = records.parse_protocol(data)
    except InvalidInput as e:
        raise StorageUnavailable(f"{url} cannot be believed ({str(e).removeprefix(f'{url}: ')}): {MEND}") from None
    return found["reader_version"], found["writer_version"]
