"""Checkpoints: the state at one point of the log, so readers need not read all of it
(docs/store.md, "Checkpoints").

- A store checkpoint, `_checkpoints/<sequence>.json.gz`, is the index once records 1 to
  `sequence` are applied. The writer of every INTERVAL-th record writes it; a machine whose
  index starts from nothing reads the newest one and the records after it.
- A file checkpoint, `<file id>/checkpoints/<version>.json.gz`, holds the members of every
  INTERVAL-th version of a file, so an old version's members are the nearest checkpoint's
  and the changes after it, not every change since the file was created.

Both are an optimisation, never needed: written after the commit, with put-if-absent (the
same state whoever writes it), by a writer that then goes on whatever happens to the write;
one that cannot be believed is said on stderr and the log is read instead.
"""

import os
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from trainfiles import storage
from trainfiles.core import checkpoints, clock, records
from trainfiles.errors import InvalidInput, NotFound, StorageUnavailable, TrainfilesError
from trainfiles.faults import crash_point
from trainfiles.progress import note
from trainfiles.store import commits, protocol
from trainfiles.store.catalog import Catalog

FOLDER = "_checkpoints"
NAME = re.compile(r"[0-9]{20}\.json\.gz")


def interval() -> int:
    """Records between store checkpoints, and versions between a file's (the environment's
    TRAINFILES_CHECKPOINT_INTERVAL, else 100)."""
    try:
        return max(1, int(os.environ.get("TRAINFILES_CHECKPOINT_INTERVAL", "100")))
    except ValueError:
        return 100


def store_key(sequence: int) -> str:
    return f"{FOLDER}/{sequence:020d}.json.gz"


def file_key(file_id: str, version: int) -> str:
    return f"{file_id}/checkpoints/{version:06d}.json.gz"


def after_commit(catalog: Catalog, store: str, user: str, record: dict) -> None:
    """The checkpoints that `record`, just published and indexed here, is due to write."""
    every = interval()
    if record["format"] in records.COMMITS and record["version"] % every == 0 and "members" not in record:
        _write(store, file_key(record["file_id"], record["version"]), lambda: _file_state(catalog, record, user))
    if record["sequence"] % every == 0:
        _write(store, store_key(record["sequence"]), lambda: _store_state(catalog, record["sequence"], user))


def newest(store: str) -> dict | None:
    """The newest store checkpoint, checked; None if there is none, or it cannot be believed
    (said on stderr: the whole log is read instead)."""
    found = latest(store)
    if found is None or isinstance(found[1], dict):
        return found and found[1]
    url = storage.join(store, store_key(found[0]))
    note(f"warning: {url} cannot be believed ({found[1]}); reading the whole log instead")
    return None


def latest(store: str) -> tuple[int, dict | str] | None:
    """The newest store checkpoint's sequence, and the checkpoint checked or why it cannot
    be believed; None if the store has none."""
    try:
        names = [n for n in storage.names_after(storage.join(store, FOLDER), None) if NAME.fullmatch(n)]
    except StorageUnavailable as e:
        if isinstance(e.__cause__, NotADirectoryError):  # `_checkpoints` is a file: it holds none
            return None
        raise
    if not names:
        return None
    sequence = int(names[-1].split(".")[0])
    found = _read(storage.join(store, store_key(sequence)), lambda data: checkpoints.parse_store(sequence, data))
    return sequence, "listed, then gone" if found is None else found


def file_members(store: str, file_id: str, versions: list[dict], number: int) -> list[dict] | None:
    """The members of version `number` from its file checkpoint (`versions`: the file's, as
    the index has them); None if it has none, or one that cannot be believed (said on
    stderr)."""
    url = storage.join(store, file_key(file_id, number))
    ids = checkpoints.member_ids(versions, number)
    found = _read(url, lambda data: checkpoints.parse_file(file_id, versions[number - 1], ids, data))
    if isinstance(found, str):
        note(f"warning: {url} cannot be believed ({found}); reading the log instead")
        return None
    return found


def _read(url: str, parse: Callable[[bytes], Any]) -> Any:
    """What `parse` makes of the checkpoint at `url`: None if there is none, the reason (a
    str) if it cannot be believed."""
    data = commits.read_objects([url], most=checkpoints.MAX_BYTES)[0]
    if isinstance(data, NotFound):
        return None
    try:
        if isinstance(data, InvalidInput):
            raise data
        return parse(data)
    except TrainfilesError as e:
        return str(e).removeprefix(f"{url}: ")


def due_file_versions(first: int, number: int) -> list[int]:
    """Versions after `first` up to `number` that a file checkpoint may hold, newest first."""
    every = interval()
    return list(range(number - number % every, first, -every))


def _store_state(catalog: Catalog, sequence: int, user: str) -> dict | None:
    state = catalog.state(sequence)
    if state is None:  # this index has read records after it, or not all before it
        return None
    reader, writer = catalog.protocol() or protocol.LEGACY
    return {
        "format": checkpoints.STORE,
        "sequence": sequence,
        "created_at": clock.stamp(),
        "created_by": user,
        "reader_version": reader,
        "writer_version": writer,
        **state,
    }


def _file_state(catalog: Catalog, record: dict, user: str) -> dict | None:
    members = catalog.members_at(record["file_id"], record["sequence"])
    if members is None:
        return None
    return {
        "format": checkpoints.FILE,
        "file_id": record["file_id"],
        "version": record["version"],
        "sequence": record["sequence"],
        "created_at": clock.stamp(),
        "created_by": user,
        "members": members,
    }


def _write(store: str, key: str, make) -> None:
    """Write a checkpoint once, as every reader will check it; whatever fails is said on
    stderr and the writer goes on (a checkpoint only saves reading)."""
    try:
        checkpoint = make()
        if checkpoint is None:
            return
        data = checkpoints.pack(checkpoint)
        if checkpoint["format"] == checkpoints.STORE:
            checkpoints.parse_store(checkpoint["sequence"], data)
        crash_point("checkpoint")
        storage.put_if_absent(commits.confined(store, key), data)
        crash_point("checkpointed")
    except (TrainfilesError, sqlite3.Error, OSError) as e:
        note(f"note: checkpoint {key} was not written ({e}); it only saves reading, and a later one will")
