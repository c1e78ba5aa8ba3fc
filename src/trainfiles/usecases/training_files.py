"""Training files: create, add, remove, archive, unarchive, rename, describe, restore; list,
show and log.

Every change is one new version committed to the store (changes.py, commits.py); the
catalog is the store's index, brought up to date first (index.py). A change that fails
or is refused publishes nothing.
"""

import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from itertools import chain

import orjson

from trainfiles import storage
from trainfiles.core import enriched
from trainfiles.core.text import refuse_hidden_characters
from trainfiles.core.vocabulary import FILE_SORTS
from trainfiles.errors import Conflict, InvalidInput, NotFound, PermissionDenied, named
from trainfiles.progress import note
from trainfiles.settings import Settings
from trainfiles.store import changes, commits, history, outputs
from trainfiles.store.catalog import Catalog
from trainfiles.store.changes import Draft
from trainfiles.store.members import Members
from trainfiles.store.rows import file_row, outputs_of
from trainfiles.usecases import gathering
from trainfiles.usecases.finding import find, missing_store, open_catalog, record
from trainfiles.usecases.gathering import Selection

__all__ = ["Selection"]


MAX_NAME = 200


def create(
    settings: Settings,
    *,
    name: str,
    description: str | None,
    target_model: str | None,
    profile_file: str | None,
    selection: Selection,
    skip_invalid: bool,
) -> dict:
    """Build a new training file from the selected conversations: its version 1."""
    name = check_name(name)
    new_store = missing_store(settings)
    catalog = open_catalog(settings, new_store=True)
    _name_free(catalog, name, None)
    ids = gathering.resolve(catalog, selection)
    profile = gathering.load_profile(profile_file) if profile_file else None
    file_id = str(uuid.uuid4())
    with outputs.spool(settings.store, file_id) as spool:
        gathered = gathering.gather(
            catalog, ids, skip_invalid, spool, profile=profile, vertical=None, explicit_profile=profile is not None
        )
        committed = _commit_new(
            settings, catalog, file_id, name, description, target_model, gathered, spool, profile is not None
        )
    if new_store:
        note(f"new store at {storage.join(settings.store)}")
    return _with_skipped(_record(settings, catalog, file_id, committed), gathered, skip_invalid)


def _commit_new(
    settings, catalog, file_id, name, description, target_model, gathered, spool, profile_set: bool
) -> dict:
    def build(current: dict | None, now: str) -> Draft:
        file = {
            "name": name,
            "description": description,
            "target_model": target_model,
            "vertical": gathered.vertical,
            "status": "active",
            "created_by": settings.user,
            "created_at": now,
            "last_updated": now,
            "consultant_profile": gathered.profile,
            **({"profile_set": True} if profile_set else {}),
        }
        members = Members(_stamped(gathered.members, now, settings.user))
        composition = changes.composition(file, members, [spool])
        return Draft("create", file, members, composition, added=_ids(gathered.members))

    return changes.commit(settings, catalog, file_id, lambda current: _name_free(catalog, name, file_id), build)


def add(settings: Settings, ref: str, selection: Selection, skip_invalid: bool, skip_present: bool = False) -> dict:
    """Append conversations: a new version whose outputs hold the old ones, then these. With
    `skip_present`, those already in the file are left out and listed (none left: no new
    version), so a pipeline step can run again."""
    catalog = open_catalog(settings)
    row = _writable(find(catalog, ref), settings.user)
    ids = gathering.resolve(catalog, selection)
    present: list[str] = []
    if skip_present:
        present, ids = _members_and_others(catalog, row, ids)
        if not ids:
            return {**_record(settings, catalog, row["id"]), "already_present": present}
    _absent(catalog, row, ids)
    with outputs.spool(settings.store, row["id"]) as spool:
        profile = orjson.loads(row["consultant_profile"])
        gathered = gathering.gather(
            catalog,
            ids,
            skip_invalid,
            spool,
            profile=profile,
            vertical=row["vertical"],
            explicit_profile=bool(row["profile_set"]),
        )

        def check(current: dict | None) -> None:
            _absent(catalog, _writable(current, settings.user), ids)

        def build(current: dict, now: str) -> Draft:
            # The file's conversations copied as bytes, then the new ones: it costs what it adds.
            file = {**changes.file_fields(current), "last_updated": now}
            members = Members(chain(catalog.members(current["id"]), _stamped(gathered.members, now, settings.user)))
            composition = changes.composition(file, members, [changes.parent(settings.store, catalog, current), spool])
            return Draft("add", file, members, composition, added=_ids(gathered.members))

        committed = changes.commit(settings, catalog, row["id"], check, build)
    rec = _with_skipped(_record(settings, catalog, row["id"], committed), gathered, skip_invalid)
    return {**rec, "already_present": present} if skip_present else rec


def remove(settings: Settings, ref: str, ids: list[str], skip_absent: bool = False) -> dict:
    """Take conversations out: a new version without them, the rest in their order."""
    if not ids:
        raise InvalidInput("no conversation ids given")
    catalog = open_catalog(settings)
    row = find(catalog, ref)
    # Prefixes of the file's own members: they need no registration on this machine.
    ids = gathering.full_ids(catalog, ids, lambda prefix: catalog.member_ids_starting(row["id"], prefix))
    absent: list[str] = []
    if skip_absent:
        _writable(row, settings.user)
        ids, absent = _members_and_others(catalog, row, ids)
        if not ids:
            return {**_record(settings, catalog, row["id"]), "already_absent": absent}

    def check(current: dict | None) -> None:
        _writable(current, settings.user)
        present = catalog.members_among(current["id"], ids)
        missing = [cid for cid in ids if cid not in present]
        if missing:
            raise NotFound(f"not in training file {current['name']!r}: ", missing)
        if current["conversation_count"] == len(ids):
            raise InvalidInput(f"removing every conversation would leave {current['name']!r} empty: archive it instead")

    def build(current: dict, now: str) -> Draft:
        gone = frozenset(ids)
        file = {**changes.file_fields(current), "last_updated": now}
        members = Members(m for m in catalog.members(current["id"]) if m["conversation_id"] not in gone)
        composition = changes.composition(file, members, [changes.parent(settings.store, catalog, current, drop=gone)])
        return Draft("remove", file, members, composition, removed=list(ids))

    committed = changes.commit(settings, catalog, row["id"], check, build)
    rec = _record(settings, catalog, row["id"], committed)
    return {**rec, "already_absent": absent} if skip_absent else rec


def archive(settings: Settings, ref: str) -> dict:
    """Archive a training file; archiving an archived file changes nothing."""
    return _set_status(settings, ref, "archived")


def unarchive(settings: Settings, ref: str) -> dict:
    """Make an archived training file active again; an active one is left as it is."""
    return _set_status(settings, ref, "active")


def _set_status(settings: Settings, ref: str, status: str) -> dict:
    committed = None
    catalog = open_catalog(settings)
    row = find(catalog, ref)
    _creator(row, settings.user)
    if row["status"] != status:

        def build(current: dict, now: str) -> Draft:
            file = {**changes.file_fields(current), "status": status}
            operation = "archive" if status == "archived" else "unarchive"
            return Draft(operation, file, Members(catalog.members(current["id"])), outputs_of(current))

        committed = changes.commit(
            settings, catalog, row["id"], lambda current: _creator(current, settings.user), build
        )
    return _record(settings, catalog, row["id"], committed)


def rename(settings: Settings, ref: str, new_name: str) -> dict:
    """Give a training file a new name (its outputs carry the name, so they are rewritten)."""
    committed = None
    new_name = check_name(new_name)
    catalog = open_catalog(settings)
    row = _writable(find(catalog, ref), settings.user)
    if row["name"] != new_name:

        def check(current: dict | None) -> None:
            _writable(current, settings.user)
            _name_free(catalog, new_name, current["id"])

        def build(current: dict, now: str) -> Draft:
            file = {**changes.file_fields(current), "name": new_name, "last_updated": now}
            return _rewritten("rename", settings.store, catalog, current, file)

        check(row)
        committed = changes.commit(settings, catalog, row["id"], check, build)
    return _record(settings, catalog, row["id"], committed)


def describe(settings: Settings, ref: str, description: str | None, target_model: str | None) -> dict:
    """Change the description and/or the target model (an empty value clears it)."""
    committed = None
    catalog = open_catalog(settings)
    row = _writable(find(catalog, ref), settings.user)
    wanted = {
        key: value or None
        for key, value in (("description", description), ("target_model", target_model))
        if value is not None
    }
    if any(row[key] != value for key, value in wanted.items()):

        def build(current: dict, now: str) -> Draft:
            file = {**changes.file_fields(current), **wanted}
            if file["target_model"] == current["target_model"]:  # not in the outputs: keep them
                return Draft("describe", file, Members(catalog.members(current["id"])), outputs_of(current))
            return _rewritten("describe", settings.store, catalog, current, {**file, "last_updated": now})

        committed = changes.commit(
            settings, catalog, row["id"], lambda current: _writable(current, settings.user), build
        )
    return _record(settings, catalog, row["id"], committed)


def restore(settings: Settings, ref: str, number: int, as_was: bool = False) -> dict:
    """A new version with the conversations of version `number`, under the file's current
    name and description (with `as_was`, version `number`'s own, as every field of it)."""
    committed = None
    catalog = open_catalog(settings)
    row = _writable(find(catalog, ref), settings.user)
    old = catalog.version(row["id"], number)
    if old is None:
        raise NotFound(f"training file {row['name']!r} has no version {number} (versions 1 to {row['version']})")
    if number != row["version"]:
        target = history.read_version(settings.store, catalog.versions(row["id"]), number)
        file = {**target["file"], "status": "active"}
        if not as_was:
            file.update(name=row["name"], description=row["description"], target_model=row["target_model"])
        # The outputs carry the name and target model: made again when either differs.
        renamed = (file["name"], file["target_model"]) != (target["file"]["name"], target["file"]["target_model"])

        def check(current: dict | None) -> None:
            _writable(current, settings.user)
            _name_free(catalog, file["name"], current["id"])

        with outputs.spool(settings.store, row["id"]) as spool:
            kept = _outputs_kept(settings.store, target)
            built = None if kept else changes.from_sources({**target, "file": file}, spool, catalog)

            def build(current: dict, now: str) -> Draft:
                members = Members(target["members"])
                if renamed and kept:
                    again = {**file, "last_updated": now}
                    composition = changes.composition(again, members, [changes.parent(settings.store, catalog, old)])
                    return Draft("restore", again, members, composition, restored_from=number)
                return Draft("restore", file, members, target["outputs"] if kept else built, restored_from=number)

            check(row)
            committed = changes.commit(settings, catalog, row["id"], check, build)
    return _record(settings, catalog, row["id"], committed)


def _rewritten(operation: str, store: str, catalog: Catalog, current: dict, file: dict) -> Draft:
    """A draft with the same conversations (copied as bytes) under new file fields."""
    members = Members(catalog.members(current["id"]))
    return Draft(
        operation, file, members, changes.composition(file, members, [changes.parent(store, catalog, current)])
    )


def _outputs_kept(store: str, record: dict) -> bool:
    return all(storage.exists(storage.join(store, record["outputs"][kind]["key"])) for kind in commits.KINDS)


def _stamped(members: Iterable[dict], now: str, user: str) -> Iterator[dict]:
    """The new members, marked as added now by `user`."""
    for m in members:
        m["added_at"], m["added_by"] = now, user
        yield m


def _ids(members: Iterable[dict]) -> list[str]:
    return [m["conversation_id"] for m in members]


def _members_and_others(catalog: Catalog, row: dict, ids: list[str]) -> tuple[list[str], list[str]]:
    """`ids` split, each part in order: those in the file, and the others."""
    members = catalog.members_among(row["id"], ids)
    return [i for i in ids if i in members], [i for i in ids if i not in members]


def _absent(catalog: Catalog, row: dict, ids: list[str]) -> None:
    present = catalog.members_among(row["id"], ids)
    already = [cid for cid in ids if cid in present]
    if already:
        unknown = gathering.unknown(catalog, [cid for cid in ids if cid not in present])
        raise Conflict(
            f"already in training file {row['name']!r}: ",
            already,
            suffix=f"; unknown conversation ids: {named(unknown)}" if unknown else "",
        )


def _name_free(catalog: Catalog, name: str, file_id: str | None) -> None:
    if catalog.name_taken(name, other_than=file_id):
        raise Conflict(f"a training file named {name!r} already exists")


def _creator(row: dict, user: str) -> dict:
    if row["created_by"] != user:
        raise PermissionDenied(
            f"training file {row['name']!r} was created by {row['created_by']}; only its creator may change it"
        )
    return row


def _writable(row: dict | None, user: str) -> dict:
    if row is None:
        raise NotFound("the training file is gone from the store")
    _creator(row, user)
    if row["status"] == "archived":
        raise Conflict(f"training file {row['name']!r} is archived (`trainfiles unarchive` makes it active again)")
    return row


def _with_skipped(rec: dict, gathered: gathering.Gathered, skip_invalid: bool) -> dict:
    if skip_invalid:
        rec["skipped"] = gathered.skipped
    return rec


def check_name(name: str) -> str:
    """A training file name, trimmed, or InvalidInput saying what is wrong with it."""
    name = name.strip()
    if not name:
        raise InvalidInput("the name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"the name is longer than {MAX_NAME} characters")
    refuse_hidden_characters(name, "the name")
    if enriched.UUID_RE.fullmatch(name):
        raise InvalidInput("the name must not look like a training file id (a UUID)")
    return name


def _record(settings: Settings, catalog: Catalog, file_id: str, committed: dict | None = None) -> dict:
    """The file as the catalog has it; after a commit the catalog could not take, as the
    commit's record says (the version is committed all the same)."""
    try:
        row = catalog.find_file(file_id)
    except sqlite3.Error:
        row = None
    if committed is not None and (row is None or row["sequence"] < committed["sequence"]):
        row = file_row(committed)
    return record(settings, row)


def list_files(
    settings: Settings, status: str, created_by: str | None = None, sort: str = "newest", limit: int | None = None
) -> list[dict]:
    """Training files as `cli.md` records, `sort` first (files with no value for it last), at most `limit`."""
    catalog = open_catalog(settings)
    unavailable = {b["file_id"] for b in catalog.bad_records()}
    rows = [
        row
        for row in catalog.list_files(None if status == "all" else status, created_by)
        if row["id"] not in unavailable
    ]
    if sort != "newest":
        key, largest_first = FILE_SORTS[sort]
        known = sorted((r for r in rows if r[key] is not None), key=lambda r: r[key], reverse=largest_first)
        rows = known + [r for r in rows if r[key] is None]
    return [record(settings, row) for row in rows[:limit]]


NO_FILES = "No training files yet. Create one with: trainfiles create --name NAME --batch BATCH_ID"


def nothing_listed(settings: Settings, status: str, created_by: str | None) -> str:
    """What an empty `list` says: how to create a file, or which filter left every file out."""
    total = Catalog(settings.catalog).file_count()
    if not total:
        return NO_FILES
    filters = ([f"--status {status}"] if status != "all" else []) + (
        [f"--created-by {created_by}"] if created_by else []
    )
    return f"No training files match {' '.join(filters)} ({total} in all: trainfiles list --status all)"


def show(settings: Settings, ref: str) -> dict:
    catalog = open_catalog(settings)
    row = find(catalog, ref)
    rec = record(settings, row)
    rec["jsonl_rows"] = jsonl_rows(settings.store, row)
    rec["conversation_ids"] = catalog.member_ids(row["id"])
    return rec


def jsonl_rows(store: str, row: dict) -> int:
    """The rows of the file's JSONL: its pairs with a target response (a user turn with no
    reply is a training pair but no row). Read from the `_meta` header in one ranged read."""
    url = storage.join(store, row["jsonl_key"])
    try:
        rows = orjson.loads(storage.first_line(url))["_meta"]["total_pairs"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        rows = None
    if type(rows) is not int:
        raise InvalidInput(
            f"{url}: its first line is not the `_meta` header of a trainfiles JSONL (`trainfiles verify` checks it)"
        )
    return rows


LOG_FIELDS = (
    "version",
    "parent",
    "created_at",
    "created_by",
    "operation",
    "added",
    "removed",
    "conversation_count",
    "total_training_pairs",
    "json_sha256",
    "jsonl_sha256",
)


def log(settings: Settings, ref: str) -> list[dict]:
    """Every version of a training file, oldest first, as `cli.md` describes them."""
    catalog = open_catalog(settings)
    row = find(catalog, ref)
    return [{k: v[k] for k in LOG_FIELDS} | {"restored_from": v["restored_from"]} for v in catalog.versions(row["id"])]
