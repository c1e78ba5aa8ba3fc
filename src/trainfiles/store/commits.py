"""The commit protocol: how a version of a training file is published in the store.

Read `docs/store.md` beside this code; the functions below follow it step by step.

1. `stage`: write the version's outputs under keys no other writer uses
   (`<id>/versions/<version>-<token>/training.json|jsonl`).
2. `publish`: write the commit record at the next sequence number of the store's log
   (`_log/<sequence>.json`) with one put-if-absent. Exactly one writer wins a number; the
   others learn they lost and re-read what landed.
3. `update_copies`: copy the outputs to `<id>/training.json|jsonl`, the paths users
   download, then write `<id>/current.json` naming the version they hold. A process that
   dies before this leaves the copies behind; the next command sees `current.json` lagging
   and brings them up to date.

A version is committed exactly when its record is in the log; anything else in the store
that no record names is garbage for `gc`.
"""

import os
import re
from collections.abc import Callable, Iterator

import orjson

from trainfiles import storage
from trainfiles.core import records
from trainfiles.core.records import BadRecord
from trainfiles.errors import InvalidInput, NotFound, StorageUnavailable
from trainfiles.faults import crash_point
from trainfiles.store.members import Members, Tail

LOG = "_log"
KINDS = ("json", "jsonl")


def log_folder(store: str) -> str:
    return storage.join(store, LOG)


def commit_name(sequence: int) -> str:
    # Zero-padded, so the store lists commits in sequence order.
    return f"{sequence:020d}.json"


def sequence_of(name: str) -> int:
    return int(name.removesuffix(".json"))


# A record's name: 20 ASCII digits, from 1 on. Anything else under _log/ is no record.
RECORD_NAME = re.compile(r"[0-9]{20}\.json")


def new_sequences(store: str, after: int) -> list[int]:
    """Sequence numbers committed after `after`, in order: one listing."""
    names = storage.names_after(log_folder(store), commit_name(after) if after else None)
    return [s for s in (sequence_of(n) for n in names if RECORD_NAME.fullmatch(n)) if 1 <= s <= records.MAX_NUMBER]


def read(store: str, sequences: list[int], progress=None) -> list[dict | BadRecord]:
    """The records of `sequences`, read concurrently and checked (records.py), in order: each
    a record, or the BadRecord that says why it cannot be believed."""
    urls = [storage.join(log_folder(store), commit_name(s)) for s in sequences]
    out: list[dict | BadRecord] = []
    for sequence, url, data in zip(sequences, urls, read_objects(urls, progress)):
        if isinstance(data, NotFound):  # listed a moment ago: deleted under us
            raise StorageUnavailable(f"{url}: listed in the store's log, then gone")
        try:
            if isinstance(data, InvalidInput):
                raise BadRecord(sequence, str(data).removeprefix(f"{url}: "))
            out.append(records.parse(sequence, data))
        except BadRecord as bad:
            out.append(bad)
    return out


def read_objects(
    urls: list[str], progress=None, most: int = records.MAX_BYTES
) -> list[bytes | NotFound | InvalidInput]:
    """The store's own objects, read concurrently; one that is no regular file (a FIFO, a
    link: never followed) is its refusal, not a failure of the rest."""
    try:
        return storage.read_many(urls, progress, sources=False, most=most)
    except InvalidInput:  # which one: each read alone
        found: list[bytes | NotFound | InvalidInput] = []
        for url in urls:
            try:
                found.append(storage.read_many([url], sources=False, most=most)[0])
            except InvalidInput as refused:
                found.append(refused)
        return found


def read_one(store: str, sequence: int) -> dict:
    """One record, checked; BadRecord (exit 3) if it cannot be believed."""
    record = read(store, [sequence])[0]
    if isinstance(record, BadRecord):
        raise record
    return record


def confined(store: str, key: str) -> str:
    """The URL of `key` in the store, for writing. In a local store no folder on the way may
    be a symbolic link: a link (made by anyone with write access) would send our writes, and
    gc's deletes, outside the store."""
    url = storage.join(store, key)
    if storage.is_local(store):
        root = storage.join(store)
        folder = root
        for part in key.split("/")[:-1]:
            folder = os.path.join(folder, part)
            if os.path.islink(folder):
                raise StorageUnavailable(
                    f"{folder} is a symbolic link: trainfiles writes nothing through a link inside a store"
                )
    return url


def output_folder(file_id: str, version: int) -> str:
    token = os.urandom(6).hex()  # two writers racing for one version never share a key
    return f"{file_id}/versions/{version:06d}-{token}"


def copy_key(file_id: str, kind: str) -> str:
    return f"{file_id}/training.{kind}"


def current_key(file_id: str) -> str:
    return f"{file_id}/current.json"


def stage(store: str, file_id: str, version: int, outputs: dict[str, bytes]) -> dict[str, dict]:
    """Step 1, for outputs held whole (a migrated file's): write each under a key of its own;
    returns the commit's `outputs`. Streamed outputs are staged by outputs.stage."""
    staged = {}
    folder = output_folder(file_id, version)
    try:
        for kind in KINDS:
            key = f"{folder}/training.{kind}"
            storage.write_atomic(confined(store, key), outputs[kind], into_special=False)
            staged[kind] = {"key": key, "size": len(outputs[kind]), "sha256": storage.sha256(outputs[kind])}
    except BaseException:
        unstage(store, staged)
        storage.remove_empty_folder(storage.join(store, folder))
        raise
    return staged


def unstage(store: str, outputs: dict[str, dict]) -> None:
    """Best effort: remove outputs whose commit lost, and their folder, which no other
    writer uses (gc removes what this cannot)."""
    for kind in outputs:
        try:
            storage.remove(storage.join(store, outputs[kind]["key"]))
        except Exception:
            pass
    if outputs:
        storage.remove_empty_folder(storage.join(store, next(iter(outputs.values()))["key"].rsplit("/", 1)[0]))


def publish(store: str, record: dict) -> bool:
    """Step 2: publish the record at its sequence number; False if another writer has it."""
    url = confined(store, f"{LOG}/{commit_name(record['sequence'])}")
    return storage.put_if_absent(url, record_json(record))


def record_json(record: dict) -> Iterator[bytes]:
    """The record as orjson writes it, in chunks: members this process gathered are copied
    from their spool, line by line, never held together."""
    spooled = [key for key, value in record.items() if isinstance(value, (Members, Tail))]
    if not spooled:
        yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        return
    keys = list(record)
    at = keys.index(spooled[0])
    yield orjson.dumps({k: record[k] for k in keys[:at]})[:-1] + b',"' + keys[at].encode() + b'":'
    yield from record[keys[at]].json()
    rest = {k: record[k] for k in keys[at + 1 :]}
    yield (b"," + orjson.dumps(rest)[1:] if rest else b"}") + b"\n"


def commit(
    store: str, sequence: int, attempt: Callable[[dict | None], dict | None], landed: Callable[[], int]
) -> dict | None:
    """Publish one record (a version, a registration, a repair) after `sequence`, the last
    one the caller has seen, however many writers race for the log.

    `attempt(lost)` returns the record to publish on the caller's view of the state, its
    outputs staged, given the record that just lost the race (None at first), which it
    reuses when only other files changed; None when nothing is left to publish. `landed()` re-reads what was committed (bringing
    that view up to date) and returns the last sequence. Every loss means another writer's
    version landed, so while writers keep making progress none of them gives up.
    """
    record = None
    while True:
        record = attempt(record)
        if record is None:  # nothing left to publish on the state that landed
            return None
        record["sequence"] = sequence + 1
        crash_point("staged")
        if publish(store, record):
            crash_point("published")
            return record
        sequence = landed()
        if sequence < record["sequence"]:  # else this loop would never end
            raise StorageUnavailable(
                f"{log_folder(store)}: commit {record['sequence']} exists but the store does not list it"
            )


def current_markers(store: str, file_ids: list[str]) -> dict[str, dict | None]:
    """What each `<id>/current.json` says (None: missing, or not a marker)."""
    urls = [storage.join(store, current_key(file_id)) for file_id in file_ids]
    out: dict[str, dict | None] = {}
    for file_id, data in zip(file_ids, read_objects(urls)):
        try:
            marker = orjson.loads(data) if isinstance(data, bytes) else None
            out[file_id] = marker if isinstance(marker, dict) and type(marker.get("version")) is int else None
        except (TypeError, orjson.JSONDecodeError):
            out[file_id] = None
    return out


def copied_versions(store: str, file_ids: list[str]) -> dict[str, int | None]:
    """The version `<id>/training.*` hold, as each `current.json` says (None: not written)."""
    return {file_id: marker and marker["version"] for file_id, marker in current_markers(store, file_ids).items()}


def update_copies(store: str, record: dict) -> None:
    """Step 3: the download paths take the version's outputs, then `current.json` says so.

    Skipped when they already hold a newer version (writers finish in any order): a marker
    naming a newer version is believed only when the record it names is that version.
    """
    file_id = record["file_id"]
    marker = current_markers(store, [file_id])[file_id]
    if marker and marker["version"] > record["version"] and _names_newer(store, marker, record):
        return
    for kind in KINDS:
        crash_point(f"copy-{kind}")
        storage.publish_copy(
            storage.join(store, record["outputs"][kind]["key"]), confined(store, copy_key(file_id, kind))
        )
    # Written last, atomically, and its folder fsynced: the copies are durable before it says so.
    marker = {
        "version": record["version"],
        "sequence": record["sequence"],
        **{f"{kind}_sha256": record["outputs"][kind]["sha256"] for kind in KINDS},
    }
    storage.write_atomic(
        confined(store, current_key(file_id)),
        orjson.dumps(marker, option=orjson.OPT_APPEND_NEWLINE),
        into_special=False,
    )


def _names_newer(store: str, marker: dict, record: dict) -> bool:
    sequence = marker.get("sequence")
    if type(sequence) is not int or sequence <= record["sequence"]:
        return False
    try:
        newer = read_one(store, sequence)
    except (BadRecord, StorageUnavailable):
        return False
    return (
        newer.get("file_id") == record["file_id"]
        and newer.get("version") == marker["version"]
        and all(newer["outputs"][kind]["sha256"] == marker.get(f"{kind}_sha256") for kind in KINDS)
    )
