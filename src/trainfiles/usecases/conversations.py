"""Registering source conversations: scanning storage for enriched files, importing the
platform's manifest, listing what the catalog holds."""

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import closing
from itertools import chain, islice
from typing import TYPE_CHECKING

from trainfiles import storage
from trainfiles.core import enriched, prefixes
from trainfiles.errors import NotFound, TrainfilesError, named
from trainfiles.progress import bar, note
from trainfiles.settings import Settings
from trainfiles.usecases import workers
from trainfiles.usecases.findings import Findings, Found

if TYPE_CHECKING:
    from trainfiles.store.catalog import Catalog

NO_ID = "no conversation id (dataset_metadata.dataset_name is not fp_conversation_<uuid>, nor is the folder a UUID)"


def scan(settings: Settings, url: str, batch: str | None) -> dict:
    """Register every enriched file under `url`; report registered, updated and invalid."""
    refused: list[dict] = []
    urls = _readable(storage.find_json(url), refused)
    # Each file is parsed as it arrives and dropped: what is kept is a row a file, and only
    # SPILL of them in memory.
    with bar("Reading conversations", None) as advance:
        # Many local files are worth worker processes; remote ones are read as listed.
        first = list(islice(urls, workers.PARALLEL_FROM)) if storage.is_local(url) else []
        many, urls = len(first) == workers.PARALLEL_FROM, chain(first, urls)
        found = Findings(_in_processes(urls, advance) if many else _in_order(urls, advance))
    with closing(found):
        invalid = sorted(refused, key=lambda r: r["path"])
        return _register(settings, _rows(found, batch, invalid), url, invalid)


def _rows(found: Findings, batch: str | None, invalid: list[dict]) -> Iterator[dict]:
    """The catalog rows of a scan's findings, in path order; each refusal is appended to
    `invalid` as it comes."""
    for path, row, reason in found:
        if row:
            if batch:
                row["batch_job_id"] = batch
            yield row
        if reason:
            invalid.append({"path": path, "reason": reason})


def _readable(found: Iterable[tuple[str, str | None]], refused: list[dict]) -> Iterator[str]:
    """The files to read; those not to read go to `refused` with the reason."""
    for url, reason in found:
        if reason:
            refused.append({"path": url, "reason": reason})
        else:
            yield url


CHUNK = 256  # files a worker takes at a time
# Columns with a handful of values among thousands of rows: interned, a chunk's rows reach the
# scan holding one copy of each (pickle shares an object, not equal strings): 230 bytes less
# a row held in memory. (`tier` is one of a few literals already.)
_FEW_VALUES = ("persona_key", "emotional_arc_key", "topic_key")


def _in_order(urls: Iterable[str], advance) -> Iterator[Found]:
    """(path, row, reason) of each file, read ahead on another thread as the listing
    finds them, parsed here."""
    for path, data, _ in storage.read_each(urls, advance, digests=False):
        yield _scanned(path, data)


def _in_processes(urls: Iterable[str], advance) -> Iterator[Found]:
    """The same from local files, parsed and checked in one process per core (parsing and
    validation hold the GIL, so threads would not help), a chunk at a time as the walk
    finds them."""
    pending: deque = deque()
    urls, ahead = iter(urls), 4 * workers.cores()
    with workers.pool() as pool:  # each builds the validator as it starts, while this process walks on
        while chunk := list(islice(urls, CHUNK)):
            pending.append(pool.submit(_scan_chunk, chunk))
            # A few chunks ahead of the workers, not the whole walk: memory stays flat.
            while pending and (pending[0].done() or len(pending) > ahead):
                yield from _done(pending.popleft(), advance)
        # The slow import of a scan (sqlite_utils, for the catalog it saves to), made while
        # the workers parse on.
        from trainfiles.store import catalog  # noqa: F401

        while pending:
            yield from _done(pending.popleft(), advance)


def _done(future, advance) -> list[Found]:
    results = future.result()
    advance(len(results))
    return results


def _scan_chunk(urls: list[str]) -> list[Found]:
    return [_scanned(path, data) for path, data in zip(urls, storage.read_many(urls))]


def _scanned(path: str, data: bytes | NotFound) -> Found:
    if isinstance(data, NotFound):
        return path, None, str(data)
    return (path, *_scanned_row(path, data))


def _scanned_row(path: str, data: bytes) -> tuple[dict | None, str | None]:
    """The catalog row a scanned file gives, and why it is ineligible if it is."""
    doc = None
    try:
        doc = enriched.parse(data)
        derived = enriched.check(doc)
        enriched.check_depth(data, doc)
    except enriched.Ineligible as e:
        cid = enriched.conversation_id(doc, path)
        reason = named(e.reasons, "; ")
        if cid is None:
            return None, f"{reason}; {NO_ID}"
        return {
            "conversation_id": cid,
            "enrichment_status": "validation_failed",
            "enriched_file_path": path,
            "source_sha256": storage.sha256(data),
            "invalid_reason": reason,
        }, reason
    cid = enriched.conversation_id(doc, path)
    if cid is None:
        return None, NO_ID
    for key in _FEW_VALUES:
        if isinstance(derived[key], str):
            derived[key] = sys.intern(derived[key])
    return {
        "conversation_id": cid,
        "enrichment_status": "completed",
        "enriched_file_path": path,
        "source_sha256": storage.sha256(data),
        "invalid_reason": None,
        **derived,
    }, None


def import_manifest(settings: Settings, manifest: str, base: str | None, allow_outside_base: bool = False) -> dict:
    """Register or update conversations from a manifest export.

    Each enriched_file_path must lead inside `base` unless `allow_outside_base`: a manifest
    is data from elsewhere, and must not make us read whatever it names.
    """
    base = base or _parent(manifest)

    def anywhere(path: str) -> str:
        return path if _is_absolute(path) else storage.join(base, path)

    def inside(path: str) -> str:
        return storage.inside(base, path)

    from trainfiles.core.manifest import parse_manifest

    rows = list(parse_manifest(storage.read(manifest), manifest, anywhere if allow_outside_base else inside))
    result = _register(settings, rows, manifest, [])
    return {**result, "missing_sources": _missing_sources(rows)}


def _missing_sources(rows: list[dict]) -> list[dict]:
    """Completed rows whose enriched file is not there (registered all the same: the
    manifest is the platform's word, and the file may come), said now rather than at
    `create`. One existence check per row, a few at a time; a source that cannot be reached
    is not said missing."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = [row for row in rows if row.get("enrichment_status") == "completed" and row.get("enriched_file_path")]
    with ThreadPoolExecutor(max_workers=storage.READ_CONCURRENCY) as pool:
        there = list(pool.map(_there, (row["enriched_file_path"] for row in wanted)))
    return [
        {"conversation_id": row["conversation_id"], "path": row["enriched_file_path"]}
        for row, found in zip(wanted, there)
        if not found
    ]


def _there(url: str) -> bool:
    try:
        return storage.exists(url)
    except TrainfilesError:
        return True


def _catalog(settings: Settings) -> "Catalog":
    """The catalog with what the store holds: registrations made on any machine."""
    from trainfiles.usecases.finding import open_index

    return open_index(settings)


def _register(settings: Settings, rows: Iterable[dict], source: str, invalid: list[dict]) -> dict:
    """Publish what `rows` register or change to the store, then index it; a scan or an
    import is the first write into a store that does not exist yet, and makes it."""
    # Imported when needed, not with this module: sqlite_utils is slow to import, and a scan
    # imports it while its workers parse (opening the catalog waits: a scan that fails
    # leaves none behind).
    from trainfiles.store import registrations
    from trainfiles.usecases.finding import missing_store, open_index

    new_store = missing_store(settings)
    done = registrations.publish(settings, open_index(settings, new_store=True), rows, source)
    if new_store and storage.exists(storage.join(settings.store)):
        note(f"new store at {storage.join(settings.store)}")
    return {"registered": done["registered"], "updated": done["updated"], "invalid": invalid, "moved": done["moved"]}


def list_conversations(settings: Settings, status: str | None, batch: str | None) -> list[dict]:
    return _catalog(settings).list_conversations(status, batch)


def show(settings: Settings, ref: str) -> dict:
    """One conversation's record by id or unique prefix, with the training pairs of its
    source file: how many, how many have a target response (the rows they give in a
    training file's JSONL), and each turn. `source_error` says why the pairs are unknown."""
    catalog = _catalog(settings)
    cid = prefixes.expand([ref.lower()], catalog.conversation_ids_starting, "conversation")[0]
    rec = catalog.conversations([cid]).get(cid)
    if rec is None:
        raise NotFound(f"unknown conversation id: {ref}")
    pairs, problem = _pairs(rec["enriched_file_path"])
    rec["training_pairs"] = None if pairs is None else len(pairs)
    rec["jsonl_rows"] = None if pairs is None else sum(p["target_response"] is not None for p in pairs)
    rec["turns"] = [
        {
            "turn_number": p["turn_number"],
            "has_target_response": p["target_response"] is not None,
            "quality_score": p["training_metadata"].get("quality_score"),
            "human_reviewed": p["training_metadata"].get("human_reviewed"),
        }
        for p in pairs or []
    ]
    rec["source_error"] = problem
    return rec


def _pairs(path: str | None) -> tuple[list[dict] | None, str | None]:
    if not path:
        return None, "no enriched_file_path"
    try:
        return source_pairs(storage.read(path))
    except TrainfilesError as e:
        return None, str(e)


def source_pairs(data: bytes) -> tuple[list[dict] | None, str | None]:
    """The training pairs of an enriched file's bytes, or None and why they cannot be had."""
    try:
        doc = enriched.parse(data)
        enriched.check(doc)
    except enriched.Ineligible as e:
        return None, str(e)
    return doc["training_pairs"], None


def _parent(url: str) -> str:
    return url.rsplit("/", 1)[0] if "/" in url else "."


def _is_absolute(path: str) -> bool:
    return "://" in path or os.path.isabs(path)
