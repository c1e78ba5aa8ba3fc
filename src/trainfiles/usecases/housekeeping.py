"""Integrity and housekeeping of the store: `verify` recomputes digests against the commits
and lists records that cannot be believed, `repair` sets those aside, `gc` deletes what no
record names."""

import contextlib
import os

from trainfiles import storage
from trainfiles.core import checkpoints as core_checkpoints
from trainfiles.core import clock
from trainfiles.core.records import REPAIR, record_name
from trainfiles.errors import InvalidInput, StorageUnavailable
from trainfiles.settings import Settings
from trainfiles.store import checkpoints, commits, index, protocol
from trainfiles.store.catalog import Catalog
from trainfiles.usecases.finding import find, open_catalog


def verify(settings: Settings, ref: str | None, sources: bool, bases: tuple[str, ...] = ()) -> dict:
    """Every stored output (and with `sources`, every member's source) against the sha256 its
    commit recorded, and every record of the log that cannot be believed. Outputs of older
    versions that `gc --keep` deleted are counted, not mismatches; the latest version's must
    be there. A source is read only where the user allows: registered on this machine at
    that path, or under one of `bases` (a record names any path it likes)."""
    catalog = open_catalog(settings)
    bad = [] if ref else catalog.bad_records()
    unavailable = {b["file_id"] for b in bad}
    rows = [find(catalog, ref)] if ref else [row for row in catalog.list_files(None) if row["id"] not in unavailable]
    checked, pruned, not_read = 0, 0, []
    mismatches = [
        {
            "object": storage.join(settings.store, record_name(b["sequence"])),
            "problem": f"record cannot be believed: {b['reason']}",
        }
        for b in bad
    ]

    def compare(url: str, expected: str, what: str) -> None:
        nonlocal checked
        checked += 1
        try:
            actual, _ = storage.digest(url)
        except Exception as e:  # missing or unreadable: a mismatch to name, not a stop
            mismatches.append({"object": url, "problem": f"{what} cannot be read: {e}"})
            return
        if actual != expected:
            mismatches.append({"object": url, "problem": f"{what}: sha256 {actual[:12]}, commit says {expected[:12]}"})

    for row in rows:
        seen = set()
        for version in catalog.versions(row["id"]):
            latest = version["version"] == row["version"]
            for kind in commits.KINDS:
                key, expected = version[f"{kind}_key"], version[f"{kind}_sha256"]
                url = storage.join(settings.store, key)
                if latest:
                    fixed = storage.join(settings.store, commits.copy_key(row["id"], kind))
                    compare(fixed, expected, f"{row['name']} download copy of version {version['version']} {kind}")
                if key in seen:  # a version that kept its parent's outputs, or restored older ones
                    continue
                seen.add(key)
                if not latest and not storage.exists(url):
                    pruned += 1
                    continue
                compare(url, expected, f"{row['name']} version {version['version']} {kind}")
        if sources:
            members = list(catalog.members(row["id"]))  # no read held open while hashing
            allowed = catalog.registered_paths([m["source_path"] for m in members])
            for member in members:
                path = member["source_path"]
                if path in allowed or _under_any(path, bases):
                    compare(path, member["source_sha256"], f"{row['name']} source of {member['conversation_id']}")
                else:
                    not_read.append(path)
    if not ref and (problem := _checkpoint_problem(settings.store)):
        mismatches.append(problem)
    return {"checked": checked, "pruned": pruned, "mismatches": mismatches, "not_read": not_read, "ok": not mismatches}


def _checkpoint_problem(store: str) -> dict | None:
    """The newest store checkpoint (the one readers start from), if it cannot be believed or
    is not the state the log makes through its record: the log is read again for this."""
    found = checkpoints.latest(store)
    if found is None:
        return None
    sequence, checkpoint = found
    url = storage.join(store, checkpoints.store_key(sequence))
    if isinstance(checkpoint, str):
        return {"object": url, "problem": f"checkpoint cannot be believed: {checkpoint}"}
    with index.from_log_alone(store, until=sequence) as log:
        state = log.state(sequence)
        reader, writer = log.protocol() or protocol.LEGACY
    if state is None:
        return {"object": url, "problem": f"checkpoint of record {sequence}, which the log does not hold"}
    if differing := core_checkpoints.differences(
        checkpoint, {**state, "reader_version": reader, "writer_version": writer}
    ):
        return {"object": url, "problem": f"checkpoint is not what the log makes: {', '.join(differing)}"}
    return None


def _under_any(path: str, bases: tuple[str, ...]) -> bool:
    for base in bases:
        with contextlib.suppress(ValueError):
            storage.inside(base, path)
            return True
    return False


def gc(settings: Settings, keep: int | None, dry_run: bool, min_age: float) -> dict:
    """Delete staged outputs no record names, temporary files and open uploads older than
    `min_age` seconds by the store's clock; with `keep`, also the outputs of all but each
    file's newest `keep` versions, whatever their age (their records stay, and such a
    version is built again on export).

    It runs only from an index that has read the whole log, records that landed while it
    looked included, and not while records that cannot be believed are in the log: any of
    them may name outputs."""
    open_catalog(settings)  # the store must be there
    with index.from_log_alone(settings.store) as catalog:  # a checkpoint is no judge of what is garbage
        if bad := catalog.bad_records():
            raise InvalidInput(
                "gc does not run while the store's log holds records that cannot be believed: ",
                [record_name(b["sequence"]) for b in bad],
                suffix=" (`trainfiles repair` sets them aside)",
            )
        protocol.refuse_newer_writer(catalog.protocol(), settings.store)
        root = storage.join(settings.store)
        cutoff = storage.clock(settings.store) - min_age
        for _ in range(GC_TRIES):
            named, kept = _named(catalog, keep)
            objects = sorted(storage.listing(settings.store), key=lambda obj: obj["url"])
            keyed = [(key, obj) for obj in objects if (key := storage.key_under(root, obj["url"])) is not None]
            superseded = _superseded_checkpoints([key for key, _ in keyed])  # never anything outside the store
            garbage = []
            for key, obj in keyed:
                name = key.rsplit("/", 1)[-1]
                pruned = key in named and key not in kept
                staged = "/versions/" in key and key not in named
                old = staged or name.startswith(".tmp-") or key in superseded
                if pruned or (old and obj["modified"] <= cutoff):
                    garbage.append(obj)
            if not index.sync(catalog, settings.store, from_checkpoint=False):  # records landed meanwhile may name some
                break
        else:
            raise StorageUnavailable(f"{settings.store}: the log kept changing while gc looked; run it again")
    if not dry_run:
        for obj in garbage:
            storage.remove(obj["url"])
        if storage.is_local(settings.store):
            _remove_empty_folders(root)
    uploads = storage.unfinished_uploads(settings.store, cutoff, abort=not dry_run)
    return {
        "dry_run": dry_run,
        "deleted": [obj["url"] for obj in garbage],
        "bytes": sum(obj["size"] for obj in garbage),
        "aborted_uploads": uploads,
    }


GC_TRIES = 5
CHECKPOINTS_KEPT = 2  # store checkpoints gc leaves: the newest, and one a reader may be reading


def _superseded_checkpoints(keys: list[str]) -> set[str]:
    """Store checkpoints among `keys` older than the newest CHECKPOINTS_KEPT (readers take
    the newest)."""
    folder = f"{checkpoints.FOLDER}/"  # only names a checkpoint has: others never hide the newest
    found = sorted(k for k in keys if k.startswith(folder) and checkpoints.NAME.fullmatch(k.removeprefix(folder)))
    return set(found[:-CHECKPOINTS_KEPT])


def _named(catalog: Catalog, keep: int | None) -> tuple[set[str], set[str]]:
    """Every output key a record names, and those gc must keep: all of them, or with
    `keep` the newest versions' (records set aside included: gc is no judge of them)."""
    named = catalog.kept_keys()
    kept = set(named)
    for row in catalog.list_files(None):
        versions = catalog.versions(row["id"])
        keys = [{v[f"{kind}_key"] for kind in commits.KINDS} for v in versions]
        named.update(*keys)
        kept.update(*(keys if keep is None else keys[-keep:]))
    return named, kept


def repair(settings: Settings, dry_run: bool) -> dict:
    """Set aside every record of the log that cannot be believed, by publishing a repair
    record that names them (nothing is deleted: the log keeps its history). The files they
    touched are usable again, in the state their other records give. The newest store
    checkpoint, if it is not what the log makes, is removed (readers then read the log)."""
    catalog = open_catalog(settings)
    bad = catalog.bad_records()
    checkpoint = _checkpoint_problem(settings.store)
    report = {
        "dry_run": dry_run,
        "set_aside": [
            {"record": record_name(b["sequence"]), "file_id": b["file_id"], "reason": b["reason"]} for b in bad
        ],
        "removed_checkpoints": [checkpoint] if checkpoint else [],
    }
    if checkpoint and not dry_run:  # only an optimisation: readers read the log instead; never through a link
        storage.remove(
            commits.confined(settings.store, storage.key_under(storage.join(settings.store), checkpoint["object"]))
        )
    if bad and not dry_run:
        sequences = [b["sequence"] for b in bad]

        def attempt(lost: dict | None) -> dict:
            return {
                "format": REPAIR,
                "sequence": None,
                "created_at": clock.stamp(),
                "created_by": settings.user,
                "set_aside": sequences,
            }

        index.commit(catalog, settings.store, settings.user, attempt)
        index.sync(catalog, settings.store)
    return report


def _remove_empty_folders(root: str) -> None:
    """Folders left empty below the store's root (a killed command's staging or spool)."""
    for folder, _, _ in os.walk(root, topdown=False):
        if folder != root:
            with contextlib.suppress(OSError):  # one that holds something stays
                os.rmdir(folder)
