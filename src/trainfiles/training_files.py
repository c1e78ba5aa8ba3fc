"""Training files: create, add, list, show and archive.

Every command that writes does so all-or-nothing: outputs are written while the catalog's
write lock is held, and the catalog commits only after they are in place; on any failure
the previous outputs are put back and the transaction rolls back.
"""

import time
import uuid
from dataclasses import dataclass, field

import orjson

from . import builder, clock, enriched, storage
from .catalog import MEMBER_STAT_FIELDS, RECORD_FIELDS, Catalog
from .errors import Conflict, InvalidInput, NotFound, PermissionDenied, StorageUnavailable, TrainfilesError, named
from .progress import bar
from .selection import require_unique
from .settings import Settings
from .text import refuse_hidden_characters

MAX_NAME = 200


@dataclass
class Selection:
    """The conversations a create or add names: explicit ids or a whole batch."""

    ids: list[str] = field(default_factory=list)
    batch: str | None = None


@dataclass
class _Gathered:
    """Eligible conversations read for one command, in request order."""

    members: list[dict]
    entries: list[dict]
    skipped: list[dict]
    profile: dict
    vertical: str


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
    """Build a new training file from the selected conversations."""
    name = _check_name(name)
    catalog = Catalog(settings.catalog)
    if catalog.name_taken(name):
        raise Conflict(f"a training file named {name!r} already exists")
    ids = _resolve(catalog, selection)
    profile = _load_profile(profile_file) if profile_file else None
    gathered = _gather(
        settings, catalog, ids, skip_invalid, profile=profile, vertical=None, explicit_profile=profile is not None
    )
    now = clock.stamp()
    file_id = str(uuid.uuid4())
    folder = storage.join(settings.store, file_id)
    members = _member_rows(file_id, gathered.members, settings.user, now, start=0)
    doc = builder.build_document(
        name=name,
        created=now,
        updated=now,
        target_model=target_model,
        vertical=gathered.vertical,
        profile=gathered.profile,
        conversations=gathered.entries,
        stats=builder.statistics(members),
    )
    row = {
        "id": file_id,
        "name": name,
        "description": description,
        "json_file_path": storage.join(folder, "training.json"),
        "jsonl_file_path": storage.join(folder, "training.jsonl"),
        "storage_bucket": _bucket(settings.store),
        "target_model": target_model,
        "status": "active",
        "created_by": settings.user,
        "created_at": now,
    }

    def still_free() -> None:
        if catalog.name_taken(name):
            raise Conflict(f"a training file named {name!r} already exists")

    _publish(catalog, row, doc, members, previous=None, recheck=still_free)
    return _with_skipped(record(catalog.find_file(file_id)), gathered, skip_invalid)


class _Stale(Conflict):
    """Another command changed the training file between our read and our write."""


ADD_ATTEMPTS = 5


def add(settings: Settings, ref: str, selection: Selection, skip_invalid: bool) -> dict:
    """Append conversations to a training file and regenerate both outputs.

    Concurrent adds to one file serialise: one that finds the file changed under it
    starts over from the new state, a few times, before it gives up.
    """
    for attempt in range(ADD_ATTEMPTS):
        try:
            return _add_once(settings, ref, selection, skip_invalid)
        except _Stale:
            if attempt == ADD_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt)


def _add_once(settings: Settings, ref: str, selection: Selection, skip_invalid: bool) -> dict:
    catalog = Catalog(settings.catalog)
    row = _writable(catalog, ref, settings.user)
    ids = _resolve(catalog, selection)
    existing = catalog.members(row["id"])
    present = {m["conversation_id"] for m in existing}
    already = [cid for cid in ids if cid in present]
    if already:
        others = [cid for cid in ids if cid not in present]
        unknown = _unknown(others, catalog.conversations(others))
        raise Conflict(
            f"already in training file {row['name']!r}: ",
            already,
            suffix=f"; unknown conversation ids: {named(unknown)}" if unknown else "",
        )
    old_json, old_jsonl = _read_outputs(row)
    old = orjson.loads(old_json)
    gathered = _gather(
        settings,
        catalog,
        ids,
        skip_invalid,
        profile=old["consultant_profile"],
        vertical=old["training_file_metadata"]["vertical"],
    )
    meta = old["training_file_metadata"]
    now = clock.stamp_after(meta["last_updated"])
    members = _member_rows(row["id"], gathered.members, settings.user, now, start=len(existing))
    doc = builder.build_document(
        name=row["name"],
        created=meta["created_date"],
        updated=now,
        target_model=meta.get("target_model"),
        vertical=meta["vertical"],
        profile=old["consultant_profile"],
        conversations=old["conversations"] + gathered.entries,
        stats=builder.statistics(existing + members),
    )

    def unchanged() -> None:
        current = catalog.find_file(row["id"])
        if current["json_sha256"] != row["json_sha256"] or current["status"] != "active":
            raise _Stale(f"training file {row['name']!r} kept changing during this command; run it again")

    _publish(catalog, dict(row), doc, members, previous=(old_json, old_jsonl), recheck=unchanged)
    return _with_skipped(record(catalog.find_file(row["id"])), gathered, skip_invalid)


def _writable(catalog: Catalog, ref: str, user: str) -> dict:
    row = find(catalog, ref)
    if row["created_by"] != user:
        raise PermissionDenied(
            f"training file {row['name']!r} was created by {row['created_by']}; only its creator may change it"
        )
    if row["status"] == "archived":
        raise Conflict(f"training file {row['name']!r} is archived")
    return row


def _read_outputs(row: dict) -> tuple[bytes, bytes]:
    """The stored JSON and JSONL, checked against the digests the catalog recorded."""
    contents = storage.read_many([row["json_file_path"], row["jsonl_file_path"]])
    for data in contents:
        if isinstance(data, TrainfilesError):
            raise data
    for data, kind in zip(contents, ("json", "jsonl")):
        if storage.sha256(data) != row[f"{kind}_sha256"]:
            # Also seen for a moment while a concurrent add is between writing and committing.
            raise _Stale(f"{row[f'{kind}_file_path']} was changed outside trainfiles (sha256 differs from the catalog)")
    return contents[0], contents[1]


def _resolve(catalog: Catalog, selection: Selection) -> list[str]:
    if selection.batch:
        ids = catalog.batch_conversation_ids(selection.batch)
        if not ids:
            raise NotFound(f"no conversations in batch {selection.batch}")
        return ids
    if not selection.ids:
        raise InvalidInput("no conversation ids given")
    require_unique(selection.ids)
    return selection.ids


def _unknown(ids: list[str], records: dict[str, dict]) -> list[str]:
    return [cid for cid in ids if cid not in records]


def _gather(
    settings: Settings,
    catalog: Catalog,
    ids: list[str],
    skip_invalid: bool,
    *,
    profile: dict | None,
    vertical: str | None,
    explicit_profile: bool = False,
) -> _Gathered:
    """Read and check the named conversations; refuse or skip the ineligible ones."""
    records = catalog.conversations(ids)
    unknown = _unknown(ids, records)
    problems: dict[str, tuple[str, type[TrainfilesError]]] = {}
    readable = []
    for cid in ids:
        rec = records.get(cid)
        if rec is None:
            continue
        if rec["enrichment_status"] != "completed":
            problems[cid] = (f"status is {rec['enrichment_status']}, not completed", InvalidInput)
        elif not rec["enriched_file_path"]:
            problems[cid] = ("no enriched_file_path", InvalidInput)
        else:
            readable.append(cid)
    try:
        with bar("Reading conversations", len(readable)) as advance:
            contents = storage.read_many([records[cid]["enriched_file_path"] for cid in readable], advance)
    except StorageUnavailable as e:
        if unknown:  # what is wrong with the request comes first
            raise NotFound("unknown conversation ids: ", unknown, suffix=f" (and the sources could not be read: {e})") from e
        raise
    docs = {}
    digests = storage.sha256_many([data if isinstance(data, bytes) else b"" for data in contents])
    for cid, data, digest in zip(readable, contents, digests):
        path = records[cid]["enriched_file_path"]
        if isinstance(data, NotFound):
            problems[cid] = (str(data), NotFound)
            continue
        try:
            doc = enriched.parse(data)
            enriched.check(doc)
        except enriched.Ineligible as e:
            problems[cid] = (f"{path}: " + named(e.reasons, "; "), InvalidInput)
            continue
        docs[cid] = (doc, digest)
    first = next(iter(docs.values()), (None, None))[0]
    if vertical is None and first is not None:
        vertical = _vertical(first)
    check_profile = not explicit_profile
    if profile is None and first is not None:
        profile = first["consultant_profile"]
    for cid, (doc, _) in list(docs.items()):
        if _vertical(doc) != vertical:
            problems[cid] = (f"vertical {_vertical(doc)!r} differs from {vertical!r}", InvalidInput)
        elif check_profile and doc["consultant_profile"] != profile:
            problems[cid] = ("consultant_profile differs from the file's", InvalidInput)
        else:
            continue
        del docs[cid]
    skipped = [{"conversation_id": cid, "reason": problems[cid][0]} for cid in ids if cid in problems]
    offenders = [f"{s['conversation_id']}: {s['reason']}" for s in skipped]
    ineligible = f"ineligible conversations: {named(offenders, '; ')}"
    if unknown:  # never skipped: an id that names nothing is a mistake in the request
        raise NotFound("unknown conversation ids: ", unknown, suffix=f"; {ineligible}" if skipped and not skip_invalid else "")
    if skipped and not skip_invalid:
        kinds = {problems[cid][1] for cid in problems}
        raise (NotFound if kinds == {NotFound} else InvalidInput)("ineligible conversations: ", offenders, sep="; ")
    if not docs:
        raise InvalidInput("no eligible conversations: ", offenders, sep="; ")
    members, entries = [], []
    for cid in ids:
        if cid not in docs:
            continue
        doc, digest = docs[cid]
        member = _recorded_values(records[cid], doc)
        member["source_path"] = records[cid]["enriched_file_path"]
        member["source_sha256"] = digest
        members.append(member)
        entries.append(builder.conversation_entry(member, doc))
    return _Gathered(members, entries, skipped, profile, vertical)


def _recorded_values(rec: dict, doc: dict) -> dict:
    """A member's values: derived from the document, except where a manifest set them."""
    derived = enriched.derive(doc)
    values = {"conversation_id": rec["conversation_id"], "batch_job_id": rec["batch_job_id"]}
    for key in ("created_at", "quality_score", "human_reviewed", "persona_key", "emotional_arc_key", "topic_key"):
        values[key] = rec[key] if key in rec["manifest_fields"] else derived[key]
    values["training_pairs"] = len(doc["training_pairs"])
    return values


def _member_rows(file_id: str, gathered: list[dict], user: str, now: str, start: int) -> list[dict]:
    return [
        {
            "training_file_id": file_id,
            "conversation_id": m["conversation_id"],
            "position": start + i,
            "added_at": now,
            "added_by": user,
            "source_path": m["source_path"],
            "source_sha256": m["source_sha256"],
            **{k: m[k] for k in MEMBER_STAT_FIELDS},
        }
        for i, m in enumerate(gathered)
    ]


def _publish(catalog: Catalog, row: dict, doc: dict, members: list[dict], previous, recheck) -> None:
    """Write both outputs and the catalog rows together, or leave everything as it was."""
    outputs = {"json": builder.render_json(doc), "jsonl": builder.render_jsonl(doc)}
    meta = doc["training_file_metadata"]
    quality = meta["quality_summary"]
    row.update(
        conversation_count=meta["total_conversations"],
        total_training_pairs=meta["total_training_pairs"],
        avg_quality_score=quality["avg_quality_score"],
        min_quality_score=quality["min_quality_score"],
        max_quality_score=quality["max_quality_score"],
        human_reviewed_count=quality["human_reviewed_count"],
        scaffolding_distribution=orjson.dumps(meta["scaffolding_distribution"]).decode(),
        vertical=meta["vertical"],
        last_updated_at=meta["last_updated"],
        updated_at=meta["last_updated"],
    )
    digests = storage.sha256_many(list(outputs.values()))  # hashed while they are written
    written = []
    failure = None
    with catalog.write(), storage.removing_new_folders(row["json_file_path"]):
        recheck()
        if previous is not None:
            # The write lock makes us the file's only writer: open uploads are orphans.
            storage.abort_unfinished_uploads(row["json_file_path"].rsplit("/", 1)[0])
        try:
            with catalog.undoable():
                for kind, data in outputs.items():
                    storage.write_atomic(row[f"{kind}_file_path"], data)
                    written.append(kind)
                for (kind, data), digest in zip(outputs.items(), digests):
                    row[f"{kind}_file_size"] = len(data)
                    row[f"{kind}_sha256"] = digest
                catalog.save_file(row, members)
        except BaseException as e:
            unrestored = _restore(row, written, previous)
            if not unrestored:
                raise
            # Kept in the same transaction, so no reader ever finds the new outputs unexplained.
            catalog.save_restores(row["id"], unrestored)
            failure = e
    if failure:
        raise failure


def _restore(row: dict, written: list[str], previous: tuple[bytes, bytes] | None) -> dict[str, bytes]:
    """Put back what a failed publish replaced: the old outputs, or nothing for a new file.

    Returns the previous outputs that could not be put back (the store is gone), by URL;
    a new file's leftovers need no keeping, as no catalog row points at them.
    """
    unrestored = {}
    for kind in written:
        url = row[f"{kind}_file_path"]
        try:
            if previous is None:
                storage.remove(url)
            else:
                storage.write_atomic(url, previous[0 if kind == "json" else 1])
        except TrainfilesError:
            # The original failure is what the user must see.
            if previous is not None:
                unrestored[url] = previous[0 if kind == "json" else 1]
    return unrestored


def _heal(catalog: Catalog, file_id: str) -> None:
    """Put back outputs a failed add could not restore, before anything reads them."""
    if not catalog.pending_restores(file_id):
        return
    with catalog.write():  # as the file's only writer, like an add
        for url, data in catalog.pending_restores(file_id).items():  # none if another healed it
            storage.write_atomic(url, data)
        catalog.clear_restores(file_id)


def _with_skipped(rec: dict, gathered: _Gathered, skip_invalid: bool) -> dict:
    if skip_invalid:
        rec["skipped"] = gathered.skipped
    return rec


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("the name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"the name is longer than {MAX_NAME} characters")
    refuse_hidden_characters(name, "the name")
    if enriched.UUID_RE.fullmatch(name):
        raise InvalidInput("the name must not look like a training file id (a UUID)")
    return name


def _load_profile(url: str) -> dict:
    try:
        profile = orjson.loads(storage.read(url).removeprefix(enriched.BOM))
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"profile {url}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    if isinstance(profile, dict) and isinstance(profile.get("consultant_profile"), dict):
        profile = profile["consultant_profile"]
    if not isinstance(profile, dict):
        raise InvalidInput(f"profile {url}: expected a JSON object")
    return profile


def _vertical(doc: dict) -> str:
    value = doc["dataset_metadata"].get("vertical")
    return value if isinstance(value, str) else ""


def _bucket(store: str) -> str:
    if storage.is_local(store):
        return storage.join(store)
    return store.split("://", 1)[1].split("/", 1)[0]


def find(catalog: Catalog, ref: str) -> dict:
    """A training file row by id or name, or NotFound."""
    row = catalog.find_file(ref)
    if row is None:
        raise NotFound(f"no training file with id or name {ref!r}")
    _heal(catalog, row["id"])
    return row


def record(row: dict) -> dict:
    """The training file record of `cli.md`."""
    rec = {k: row.get(k) for k in RECORD_FIELDS}
    rec["scaffolding_distribution"] = orjson.loads(row["scaffolding_distribution"] or "{}")
    return rec


def list_files(settings: Settings, status: str) -> list[dict]:
    catalog = Catalog(settings.catalog)
    return [record(row) for row in catalog.list_files(None if status == "all" else status)]


def show(settings: Settings, ref: str) -> dict:
    catalog = Catalog(settings.catalog)
    row = find(catalog, ref)
    rec = record(row)
    rec["conversation_ids"] = catalog.member_ids(row["id"])
    return rec


def archive(settings: Settings, ref: str) -> dict:
    """Mark a training file archived; archiving an archived file changes nothing."""
    catalog = Catalog(settings.catalog)
    row = find(catalog, ref)
    with catalog.write():
        if row["created_by"] != settings.user:
            raise PermissionDenied(
                f"training file {row['name']!r} was created by {row['created_by']}; only its creator may archive it"
            )
        if row["status"] != "archived":
            catalog.set_status(row["id"], "archived", clock.stamp_after(row["updated_at"]))
    return record(catalog.find_file(row["id"]))
