"""The catalog as the store's index: brought up to date from the commit log before a command
reads or changes training files, at the cost of one listing when nothing is new."""

from . import commits, storage
from .catalog import Catalog
from .errors import TrainfilesError
from .progress import bar, note


def identity(store: str) -> str:
    """The store as the index records it: an absolute folder, or the URL."""
    return storage.join(store) if storage.is_local(store) else store.rstrip("/")


def record_own(catalog: Catalog, record: dict) -> None:
    """Index a record this process has just published at the sequence after the last one
    it had seen, so the index needs no listing to take it (a later command lists what
    others committed since)."""
    with catalog.write():
        if catalog.index_state()[1] == record["sequence"] - 1:
            catalog.apply([record])


def sync(catalog: Catalog, store: str) -> int:
    """Apply what was committed since the index last looked; returns the last sequence.

    Download copies that a writer which died after its commit left behind are brought up
    to date.
    """
    ident = identity(store)
    indexed, last = catalog.index_state()
    # Listed from the last commit applied, which must still be there: if it is not, the
    # store was replaced or emptied under the same name, and the index starts again.
    sequences = commits.new_sequences(store, last - 1) if indexed == ident and last else []
    if indexed != ident or (last and sequences[:1] != [last]):
        with catalog.write():
            catalog.reset_index(ident)
        last = 0
        sequences = commits.new_sequences(store, 0)
    sequences = [s for s in sequences if s > last]
    if not sequences:
        return last
    with bar("Reading the store's log", len(sequences)) as advance:
        records = commits.read(store, sequences, advance)
    with catalog.write():
        applied = catalog.index_state()[1]  # another process may have applied some meanwhile
        catalog.apply([r for r in records if r["sequence"] > applied])
    _repair_download_copies(catalog, store, {r["file_id"]: r for r in records})
    return sequences[-1]


def _repair_download_copies(catalog: Catalog, store: str, latest: dict[str, dict]) -> None:
    current = {file_id: r for file_id, r in latest.items() if catalog.find_file(file_id)["version"] == r["version"]}
    for file_id, version in commits.fixed_versions(store, list(current)).items():
        if version != current[file_id]["version"]:
            refresh_download_copies(store, current[file_id])


def refresh_download_copies(store: str, record: dict) -> None:
    """Step 3 of a commit, which may fail without undoing it: the version is committed, and
    a later command brings the copies up to date."""
    try:
        commits.update_fixed(store, record)
    except TrainfilesError as e:
        note(f"note: the download copies of version {record['version']} were not updated ({e}); the next command will")
