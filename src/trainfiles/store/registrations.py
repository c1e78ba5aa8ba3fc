"""Registrations of conversations, shared through the store: what a scan or an import
registered or changed is published as registration records of the log, with the same
put-if-absent as a version of a training file, then indexed. Every machine with the store
applies the same records in the same order, so `conversations list` agrees everywhere."""

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator

import orjson

from trainfiles import storage
from trainfiles.core import clock, records
from trainfiles.errors import TrainfilesError
from trainfiles.settings import Settings
from trainfiles.store import index
from trainfiles.store.catalog import Catalog


def publish(settings: Settings, catalog: Catalog, rows: Iterable[dict], source: str) -> dict:
    """Register `rows` (a scan's or a manifest's, in order) from `source`: those new or
    changed go into the store, PER_REGISTRATION to a record. Returns how many were
    registered and updated, and the conversations whose source moved (id, from, to)."""
    store = settings.store
    storage.writable(store)
    report: dict = {"registered": 0, "updated": 0, "moved": []}
    for chunk in _chunks(rows):
        counts: dict = {}

        def attempt(lost: dict | None, chunk: list[dict] = chunk, counts: dict = counts) -> dict | None:
            # On the state the index has now: after a lost race, others may have registered some.
            change = catalog.changed_conversations(chunk)
            if not change.published:
                return None
            record = {
                "format": records.REGISTRATION,
                "sequence": None,
                "created_at": clock.stamp(),
                "created_by": settings.user,
                "source": storage.redact(source),
                "conversations": change.published,
            }
            records.check_own_registration(record)
            counts.update(registered=change.registered, updated=change.updated, moved=change.moved)
            return record

        if record := index.commit(catalog, store, settings.user, attempt):
            index.record_own(catalog, store, settings.user, record)
            report["registered"] += counts["registered"]
            report["updated"] += counts["updated"]
            report["moved"] += counts["moved"]
        with contextlib.suppress(TrainfilesError, sqlite3.Error), catalog.write():  # published: done
            catalog.mark_registered_here(chunk)
    return report


def _chunks(rows: Iterable[dict]) -> Iterator[list[dict]]:
    """Rows a record at a time: PER_REGISTRATION of them, or REGISTRATION_BYTES of JSON."""
    chunk: list[dict] = []
    size = 0
    for row in rows:
        length = len(orjson.dumps(row))
        if chunk and (len(chunk) == records.PER_REGISTRATION or size + length > records.REGISTRATION_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += length
    if chunk:
        yield chunk
