"""How every command finds the catalog, brought up to date from the store, and its training file\n(by name, id or unique id prefix); and the record of a file that `cli.md` describes."""

import os
from pathlib import Path

import orjson

from trainfiles import storage
from trainfiles.core import prefixes
from trainfiles.core.records import record_name
from trainfiles.errors import InvalidInput, NotFound
from trainfiles.settings import Settings
from trainfiles.store import commits, index, legacy
from trainfiles.store.catalog import Catalog
from trainfiles.store.rows import RECORD_FIELDS


def open_catalog(settings: Settings, new_store: bool = False) -> Catalog:
    """The catalog, its index of the store up to date, files of older catalogs migrated.

    A local store that does not exist is a mistyped one (NotFound), except for a command that
    may start one (`new_store`), which says so: nothing is made by mistake."""
    catalog = open_index(settings, new_store)
    legacy.migrate(settings, catalog)
    return catalog


def open_index(settings: Settings, new_store: bool = False) -> Catalog:
    """The catalog, its index of the store (training files and registrations) up to date."""
    if not new_store and missing_store(settings):
        raise NotFound(
            f"no store at {storage.join(settings.store)}: check --store (or TRAINFILES_STORE); `trainfiles create` starts a new one"
        )
    catalog = Catalog(settings.catalog)
    index.sync(catalog, settings.store)
    return catalog


def missing_store(settings: Settings) -> bool:
    """Whether the store is a local folder that is not there (a mistyped one, or a new one)."""
    return storage.is_local(settings.store) and not os.path.isdir(storage.join(settings.store))


def find(catalog: Catalog, ref: str) -> dict:
    """A training file row by id, name or unique id prefix, or NotFound (Conflict for an
    ambiguous prefix). Every command finds its FILE here."""
    row = catalog.find_file(ref)
    if row is None and prefixes.looks_like(ref):
        row = catalog.find_file(prefixes.expand([ref], catalog.file_ids_starting, "training file")[0])
    if row is None:
        raise NotFound("no training file with id or name ", [repr(ref)])
    if bad := catalog.bad_records(row["id"]):
        raise InvalidInput(
            f"training file {row['name']!r} is unavailable: records of the store's log that touch it cannot be believed: ",
            [f"{record_name(b['sequence'])} ({b['reason']})" for b in bad],
            sep="; ",
            suffix=" (`trainfiles repair` sets them aside)",
        )
    return row


def completions(settings: Settings, incomplete: str) -> list[str]:
    """Names and ids of training files that start with `incomplete`, for the shell: from the
    local catalog as it is (completion must not wait for the store), none when there is none."""
    if not Path(settings.catalog).exists():
        return []
    rows = Catalog(settings.catalog).list_files(None)
    ids = [row["id"] for row in rows] if incomplete else []
    return [ref for ref in [row["name"] for row in rows] + ids if ref.startswith(incomplete)]


def _bucket(store: str) -> str:
    if storage.is_local(store):
        return storage.join(store)
    return store.split("://", 1)[1].split("/", 1)[0]


def record(settings: Settings, row: dict) -> dict:
    """The training file record of `cli.md`, with `target_model` and `version` besides."""
    rec = {k: row.get(k) for k in RECORD_FIELDS}
    rec["json_file_path"] = storage.join(settings.store, commits.copy_key(row["id"], "json"))
    rec["jsonl_file_path"] = storage.join(settings.store, commits.copy_key(row["id"], "jsonl"))
    rec["storage_bucket"] = _bucket(settings.store)
    rec["scaffolding_distribution"] = orjson.loads(row["scaffolding_distribution"] or "{}")
    rec["target_model"] = row["target_model"]
    rec["version"] = row["version"]
    return rec
