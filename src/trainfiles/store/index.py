"""The catalog as the store's index: brought up to date from the store's log before a command
reads or changes training files, at the cost of one listing when nothing is new.

The index moves only after a read succeeded: the records read and the note of which were
read are written in one transaction, so a failed or killed read leaves the index as it was
and the next command reads the log again. It lists from the first record it has not read,
not from the newest it has, so a record that lands in a gap is still applied; one that lands
below records already applied makes the index apply the whole log again in sequence order,
as a new machine would, so every machine converges on the same state.
"""

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator

from trainfiles import storage
from trainfiles.core.records import COMMITS, READER_VERSION, REGISTRATION, REPAIR, BadRecord, record_name
from trainfiles.errors import TrainfilesError, named
from trainfiles.faults import crash_point
from trainfiles.progress import bar, note
from trainfiles.store import checkpoints, commits, protocol
from trainfiles.store.catalog import Catalog


def identity(store: str) -> str:
    """The store as the index records it: an absolute folder, or the URL."""
    return storage.join(store) if storage.is_local(store) else store.rstrip("/")


def commit(catalog: Catalog, store: str, user: str, attempt: Callable[[dict | None], dict | None]) -> dict | None:
    """Publish the record `attempt` makes on the index's state after the newest record it
    has read (`commits.commit`), the store's protocol object written first where it has
    none; after a lost race the index reads what landed and `attempt` runs again. None when
    `attempt` finds nothing to publish."""

    def checked(lost: dict | None) -> dict | None:
        record = attempt(lost)
        if record is not None:  # what is refused writes nothing, not even the protocol object
            protocol.ensure(catalog, store, user)
        return record

    def landed() -> int:
        sync(catalog, store)
        return catalog.last_read()

    return commits.commit(store, catalog.last_read(), checked, landed)


def record_own(catalog: Catalog, store: str, user: str, record: dict) -> None:
    """Index a record this process has just published right after the newest one it had
    read, so the index needs no listing to take it (a later command lists what others
    committed since), then write the checkpoints it is due. Once published, the version is
    committed: a catalog that cannot take it now (locked, read-only) is said so, and
    catches up next time."""
    try:
        with catalog.write():
            if catalog.last_read() == record["sequence"] - 1:
                _take(catalog, [record], here=True)
    except (TrainfilesError, sqlite3.Error) as e:
        what = f"version {record['version']}" if "version" in record else "the registration"
        note(
            f"note: {what} is committed ({record_name(record['sequence'])}), "
            f"but the local catalog could not take it ({e}); the next command catches up"
        )
        return
    checkpoints.after_commit(catalog, store, user, record)


@contextlib.contextmanager
def from_log_alone(store: str, until: int | None = None) -> Iterator[Catalog]:
    """An index of the store made from its log alone (through record `until`, if given),
    no checkpoint read, in a catalog of its own that is gone afterwards: what gc deletes by
    and what verify holds the newest checkpoint against."""
    with tempfile.TemporaryDirectory(prefix="trainfiles-") as folder:
        catalog = Catalog(os.path.join(folder, "index.db"))
        try:
            sync(catalog, store, from_checkpoint=False, until=until)
            yield catalog
        finally:
            catalog.close()


def sync(catalog: Catalog, store: str, from_checkpoint: bool = True, until: int | None = None) -> bool:
    """Apply what was committed since the index last looked (through record `until`, if
    given); whether there was any. An index that starts from nothing starts from the newest
    store checkpoint, unless `from_checkpoint` is False: it then reads the whole log.

    Download copies that a writer which died after its commit left behind are brought up
    to date. Records that cannot be believed are kept apart (their files unavailable) and
    said on stderr until a repair sets them aside.
    """
    ident = identity(store)
    indexed, through = catalog.index_state()
    rebuild = indexed != ident
    listed = [] if rebuild else commits.new_sequences(store, max(through - 1, 0))
    # The first record not yet read follows one that must still be there: if it is not,
    # the store was replaced or emptied under the same name, and the index starts again.
    rebuild = rebuild or bool(through and listed[:1] != [through])
    known = set() if rebuild else catalog.read_after(through)
    new = [s for s in listed if s > through and s not in known]
    rebuild = rebuild or bool(new and known and new[0] < max(known))
    start = None
    if rebuild:
        start, new = _starting_point(store, from_checkpoint)
    new = [s for s in new if until is None or s <= until]
    if new or rebuild:  # a listing that found nothing is a read too: of an empty log
        with bar("Reading the store's log", len(new)) as advance:
            read = commits.read(store, new, advance)
        crash_point("log-read")
        floor = (start["reader_version"], start["writer_version"]) if start else None
        versions = protocol.needed(None if rebuild else catalog.protocol(), store, read, floor)
        with catalog.write():
            if rebuild:
                catalog.reset_index(ident)
                if start:
                    catalog.load_state(start)
            else:  # another process may have read some meanwhile
                done = catalog.read_after(through)
                read = [r for r in read if _sequence(r) not in done]
            if versions:
                catalog.set_protocol(*versions)
            good = _take(catalog, read)
        _repair_download_copies(catalog, store, {r["file_id"]: r for r in good})
    if bad := catalog.bad_records():
        names = named([f"{record_name(b['sequence'])} ({b['reason']})" for b in bad], "; ")
        note(
            f"warning: {len(bad)} records of the store's log cannot be believed, and the training files they "
            f"touch are unavailable: {names} (`trainfiles repair` sets them aside)"
        )
    return bool(new)


def _starting_point(store: str, from_checkpoint: bool) -> tuple[dict | None, list[int]]:
    """Where an index that starts from nothing begins: the newest store checkpoint and the
    records after it (a listing from the checkpoint's own record, which must be there), or
    the whole log."""
    checkpoint = checkpoints.newest(store) if from_checkpoint else None
    if checkpoint and checkpoint["reader_version"] > READER_VERSION:  # the log says so too, if it is true
        note(
            f"warning: {checkpoints.store_key(checkpoint['sequence'])} says the store needs reader version "
            f"{checkpoint['reader_version']}; reading the whole log instead"
        )
        checkpoint = None
    if checkpoint:
        listed = commits.new_sequences(store, checkpoint["sequence"] - 1)
        if listed[:1] == [checkpoint["sequence"]]:
            return checkpoint, listed[1:]
        note(
            f"warning: {checkpoints.store_key(checkpoint['sequence'])} is of a record the log does not hold; "
            "reading the whole log instead"
        )
    return None, commits.new_sequences(store, 0)


def _take(catalog: Catalog, read: list[dict | BadRecord], here: bool = False) -> list[dict]:
    """Apply records read, in sequence order (inside a write); returns the commit records.
    `here`: records this machine published itself."""
    good = [r for r in read if isinstance(r, dict) and r["format"] in COMMITS]
    catalog.flag([r for r in read if isinstance(r, BadRecord)] + catalog.apply(good))
    catalog.set_aside([s for r in read if isinstance(r, dict) and r["format"] == REPAIR for s in r["set_aside"]])
    for r in read:
        if isinstance(r, dict) and r["format"] == REGISTRATION:
            catalog.apply_registration(r, here)
    catalog.mark_read([_sequence(r) for r in read])
    return good


def _sequence(r: dict | BadRecord) -> int:
    return r.sequence if isinstance(r, BadRecord) else r["sequence"]


def _repair_download_copies(catalog: Catalog, store: str, latest: dict[str, dict]) -> None:
    current = {}
    for file_id, r in latest.items():
        row = catalog.find_file(file_id)
        if row and row["version"] == r["version"] and row["sequence"] == r["sequence"]:
            current[file_id] = r
    for file_id, version in commits.copied_versions(store, list(current)).items():
        if version != current[file_id]["version"]:
            refresh_download_copies(store, current[file_id])


def refresh_download_copies(store: str, record: dict) -> bool:
    """Step 3 of a commit, which may fail without undoing it: the version is committed, and
    a later command brings the copies up to date. False if it failed."""
    try:
        commits.update_copies(store, record)
    except TrainfilesError as e:
        note(f"note: the download copies of version {record['version']} were not updated ({e}); the next command will")
        return False
    return True
