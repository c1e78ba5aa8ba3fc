"""Each conversation a create or add names, read, checked and rendered, in request order: on
this process, or, for many local files, on one forked process per core, since parsing,
checks and rendering hold the GIL.

What comes back for a conversation is all the request needs of it: why it is ineligible,
or its vertical, profile, member values and both rendered outputs' entries.
"""

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from itertools import islice
from typing import NamedTuple

import orjson

from trainfiles import storage
from trainfiles.core import builder, enriched
from trainfiles.errors import InvalidInput, NotFound, TrainfilesError, named
from trainfiles.store.outputs import Placed
from trainfiles.usecases import workers

CHUNK = 32  # conversations a worker takes at a time: about 2.5 MB of rendered entries back
WINDOW = 500  # conversations whose records are held at once on this process


class Item(NamedTuple):
    """A conversation to examine: its id, source path and catalog record."""

    cid: str
    path: str
    record: dict


class Examined(NamedTuple):
    """One conversation examined: `problem` (why it is ineligible, and the error kind) or
    what the request takes of it."""

    cid: str
    problem: tuple[str, type[TrainfilesError]] | None
    vertical: str = ""
    profile: dict | None = None
    member: dict | None = None
    json_entry: bytes = b""
    jsonl_lines: bytes = b""
    rows: int = 0
    placed: Placed | None = None  # where a worker wrote the entries instead


def examine_all(items: Iterable[Item], count: int, local: bool, advance, spools: str) -> Iterator[Examined]:
    """Every item examined, in order; `count` items, all local files when `local`. Worker
    processes write what they render to spools of their own, named `spools` + pid."""
    items = iter(items)
    if local and count >= workers.PARALLEL_FROM:
        yield from _in_processes(items, advance, spools)
        return
    while window := list(islice(items, WINDOW)):  # sources read ahead on a thread
        for item, (_, data, digest) in zip(window, storage.read_each([i.path for i in window], advance)):
            yield examine(item, data, digest)


def _in_processes(items: Iterator[Item], advance, spools: str) -> Iterator[Examined]:
    pending: deque[Future] = deque()
    in_flight = 2 * workers.cores()
    # Forked before the spools' writer thread starts (the workers use nothing of what other
    # threads may hold). Rendered entries stay in the workers' spools: sent back, they cost
    # this process more than rendering them.
    with workers.pool(_start, (spools,)) as pool:
        while True:
            while len(pending) < in_flight and (chunk := list(islice(items, CHUNK))):
                pending.append(pool.submit(_examine_chunk, chunk))
            if not pending:
                return
            results = pending.popleft().result()
            advance(len(results))
            yield from results


_spools: dict[str, list] = {}  # a worker's own: kind -> [path, file, bytes written]


def _start(prefix: str) -> None:
    for kind in ("json", "jsonl"):
        path = f"{prefix}{os.getpid()}.{kind}"
        try:
            _spools[kind] = [path, open(path, "xb"), 0]
        except OSError as e:
            raise storage.failure(path, e) from e


def _examine_chunk(items: list[Item]) -> list[Examined]:
    contents = storage.read_many([item.path for item in items])
    found = [
        _placed(examine(item, data, storage.sha256(data) if isinstance(data, bytes) else None))
        for item, data in zip(items, contents)
    ]
    for path, file, _ in _spools.values():
        try:
            file.flush()
        except OSError as e:  # a full disk under the spools, most likely
            raise storage.failure(path, e) from e
    return found


def _placed(found: Examined) -> Examined:
    """The conversation's entries written to this worker's spools, in their place where they are."""
    if found.problem:
        return found
    json = _spools["json"]
    json[1].write(builder.JSON_SEPARATOR)  # so neighbouring entries read as one stretch
    json[2] += len(builder.JSON_SEPARATOR)
    at = {}
    for kind, data in (("json", found.json_entry), ("jsonl", found.jsonl_lines)):
        path, file, offset = _spools[kind]
        try:
            file.write(data)
        except OSError as e:
            raise storage.failure(path, e) from e
        _spools[kind][2] += len(data)
        at[kind] = (path, offset, len(data))
    return found._replace(json_entry=b"", jsonl_lines=b"", placed=Placed(at["json"], at["jsonl"]))


def examine(item: Item, data: bytes | NotFound, digest: str | None) -> Examined:
    """One conversation from its source's bytes (or NotFound) and their sha256."""
    if isinstance(data, NotFound):
        return Examined(item.cid, (str(data), NotFound))
    try:
        doc = enriched.parse(data)
        derived = enriched.check(doc)
    except enriched.Ineligible as e:
        return Examined(item.cid, (f"{item.path}: " + named(e.reasons, "; "), InvalidInput))
    member = _member(item, doc, derived, digest)
    try:
        entry = builder.conversation_entry(member, doc)
        json_entry, (jsonl_lines, rows) = builder.json_entry(entry), builder.jsonl_entry(entry)
    except orjson.JSONEncodeError as e:  # changed since its scan, which checks depth
        return Examined(item.cid, (f"{item.path}: cannot be written as JSON ({e})", InvalidInput))
    return Examined(item.cid, None, vertical_of(doc), doc["consultant_profile"], member, json_entry, jsonl_lines, rows)


def _member(item: Item, doc: dict, derived: dict, digest: str | None) -> dict:
    """A member as its commit records it (catalog.MEMBER_FIELDS, in order): values derived
    from the document, except where a manifest set them; who added it comes at commit time."""
    rec = item.record

    def value(key: str):
        return rec[key] if key in rec["manifest_fields"] else derived[key]

    return {
        "conversation_id": rec["conversation_id"],
        "source_path": item.path,
        "source_sha256": digest,
        "batch_job_id": rec["batch_job_id"],
        "created_at": value("created_at"),
        "quality_score": value("quality_score"),
        "human_reviewed": value("human_reviewed"),
        "persona_key": value("persona_key"),
        "emotional_arc_key": value("emotional_arc_key"),
        "topic_key": value("topic_key"),
        "training_pairs": len(doc["training_pairs"]),
        "added_at": None,
        "added_by": None,
    }


def vertical_of(doc: dict) -> str:
    value = doc["dataset_metadata"].get("vertical")
    return value if isinstance(value, str) else ""
