"""The commit protocol: how a version of a training file is published in the store.

Read `docs/store.md` beside this code; the functions below follow it step by step.

1. `stage`: write the version's outputs under keys no other writer uses
   (`<id>/versions/<version>-<token>/training.json|jsonl`).
2. `publish`: write the commit record at the next sequence number of the store's log
   (`_log/<sequence>.json`) with one put-if-absent. Exactly one writer wins a number; the
   others learn they lost and re-read what landed.
3. `update_fixed`: copy the outputs to `<id>/training.json|jsonl`, the paths users
   download, then write `<id>/current.json` naming the version they hold. A process that
   dies before this leaves the copies behind; the next command sees `current.json` lagging
   and brings them up to date.

A version is committed exactly when its record is in the log; anything else in the store
that no record names is garbage for `gc`.
"""

import os
from collections.abc import Callable, Iterator

import orjson

from . import storage
from .errors import InvalidInput, StorageUnavailable
from .faults import crash_point
from .members import Members

FORMAT = "trainfiles.commit/1"
LOG = "_log"
KINDS = ("json", "jsonl")


def log_folder(store: str) -> str:
    return storage.join(store, LOG)


def commit_name(sequence: int) -> str:
    # Zero-padded, so the store lists commits in sequence order.
    return f"{sequence:020d}.json"


def sequence_of(name: str) -> int:
    return int(name.removesuffix(".json"))


def new_sequences(store: str, after: int) -> list[int]:
    """Sequence numbers committed after `after`, in order: one listing."""
    names = storage.names_after(log_folder(store), commit_name(after) if after else None)
    return [sequence_of(n) for n in names if n.endswith(".json") and n.removesuffix(".json").isdigit()]


def read(store: str, sequences: list[int], progress=None) -> list[dict]:
    """The commit records of `sequences`, read concurrently, in order."""
    urls = [storage.join(log_folder(store), commit_name(s)) for s in sequences]
    records = []
    for url, data in zip(urls, storage.read_many(urls, progress, sources=False)):
        if isinstance(data, Exception):
            raise data
        record = orjson.loads(data)
        if record.get("format") != FORMAT:
            raise InvalidInput(f"{url}: not a trainfiles commit of format {FORMAT}")
        records.append(record)
    return records


def output_folder(file_id: str, version: int) -> str:
    token = os.urandom(6).hex()  # two writers racing for one version never share a key
    return f"{file_id}/versions/{version:06d}-{token}"


def fixed_key(file_id: str, kind: str) -> str:
    return f"{file_id}/training.{kind}"


def marker_key(file_id: str) -> str:
    return f"{file_id}/current.json"


def stage(store: str, file_id: str, version: int, outputs: dict[str, bytes]) -> dict[str, dict]:
    """Step 1, for outputs held whole (a migrated file's): write each under a key of its own;
    returns the commit's `outputs`. Streamed outputs are staged by outputs.stage."""
    staged = {}
    folder = output_folder(file_id, version)
    try:
        for kind in KINDS:
            key = f"{folder}/training.{kind}"
            storage.write_atomic(storage.join(store, key), outputs[kind])
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
    record["format"] = FORMAT
    url = storage.join(log_folder(store), commit_name(record["sequence"]))
    return storage.put_if_absent(url, record_json(record))


def record_json(record: dict) -> Iterator[bytes]:
    """The record as orjson writes it, in chunks: members this process gathered are copied
    from their spool, line by line, never held together."""
    members = record["members"]
    if not isinstance(members, Members):
        yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        return
    keys = list(record)
    at = keys.index("members")
    yield orjson.dumps({k: record[k] for k in keys[:at]})[:-1] + b',"members":'
    yield from members.json()
    rest = {k: record[k] for k in keys[at + 1 :]}
    yield (b"," + orjson.dumps(rest)[1:] if rest else b"}") + b"\n"


def commit(store: str, sequence: int, attempt: Callable[[dict | None], dict], landed: Callable[[], int]) -> dict:
    """Publish one new version after `sequence`, the last one the caller has seen, however
    many writers race for the log.

    `attempt(lost)` returns the record to publish on the caller's view of the state, its
    outputs staged, given the record that just lost the race (None at first), which it
    reuses when only other files changed. `landed()` re-reads what was committed (bringing
    that view up to date) and returns the last sequence. Every loss means another writer's
    version landed, so while writers keep making progress none of them gives up.
    """
    record = None
    while True:
        record = attempt(record)
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


def fixed_versions(store: str, file_ids: list[str]) -> dict[str, int | None]:
    """The version `<id>/training.*` hold, as each `current.json` says (None: not written)."""
    urls = [storage.join(store, marker_key(file_id)) for file_id in file_ids]
    found = {}
    for file_id, data in zip(file_ids, storage.read_many(urls, sources=False)):
        try:
            found[file_id] = orjson.loads(data)["version"]
        except (TypeError, orjson.JSONDecodeError, KeyError):
            found[file_id] = None
    return found


def update_fixed(store: str, record: dict) -> None:
    """Step 3: the download paths take the version's outputs, then `current.json` says so.

    Skipped when they already hold a newer version: writers finish in any order.
    """
    file_id = record["file_id"]
    if (fixed_versions(store, [file_id])[file_id] or 0) > record["version"]:
        return
    for kind in KINDS:
        crash_point(f"fixed-{kind}")
        storage.publish_copy(storage.join(store, record["outputs"][kind]["key"]), storage.join(store, fixed_key(file_id, kind)))
    # Written last, atomically, and its folder fsynced: the copies are durable before it says so.
    marker = {
        "version": record["version"],
        "sequence": record["sequence"],
        **{f"{kind}_sha256": record["outputs"][kind]["sha256"] for kind in KINDS},
    }
    storage.write_atomic(storage.join(store, marker_key(file_id)), orjson.dumps(marker, option=orjson.OPT_APPEND_NEWLINE))
