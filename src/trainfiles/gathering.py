"""Reading and checking the conversations a create or add names: every refusal named at once."""

from dataclasses import dataclass, field

import orjson

from . import builder, enriched, prefixes, storage
from .catalog import Catalog
from .errors import InvalidInput, NotFound, StorageUnavailable, TrainfilesError
from .progress import bar
from .selection import require_unique


@dataclass
class Selection:
    """The conversations a create or add names: explicit ids or a whole batch."""

    ids: list[str] = field(default_factory=list)
    batch: str | None = None


@dataclass
class Gathered:
    """Eligible conversations read for one command, in request order."""

    members: list[dict]
    entries: list[dict]
    skipped: list[dict]
    profile: dict
    vertical: str


def resolve(catalog: Catalog, selection: Selection) -> list[str]:
    """The ids a selection names, in order (a batch: created_at, then id)."""
    if selection.batch:
        ids = catalog.batch_conversation_ids(selection.batch)
        if not ids:
            raise NotFound(f"no conversations in batch {selection.batch}")
        return ids
    if not selection.ids:
        raise InvalidInput("no conversation ids given")
    return full_ids(catalog, selection.ids)


def full_ids(catalog: Catalog, ids: list[str]) -> list[str]:
    """The ids in full (unique prefixes of registered conversations expanded), each once."""
    ids = prefixes.expand(ids, catalog.conversation_ids_starting, "conversation")
    require_unique(ids)
    return ids


def unknown(catalog: Catalog, ids: list[str]) -> list[str]:
    records = catalog.conversations(ids)
    return [cid for cid in ids if cid not in records]


def gather(
    catalog: Catalog,
    ids: list[str],
    skip_invalid: bool,
    *,
    profile: dict | None,
    vertical: str | None,
    explicit_profile: bool = False,
) -> Gathered:
    """Read and check the named conversations; refuse or skip the ineligible ones."""
    records = catalog.conversations(ids)
    missing = [cid for cid in ids if cid not in records]
    unknown_ids = "unknown conversation ids: " + ", ".join(missing)
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
        if missing:  # what is wrong with the request comes first
            raise NotFound(f"{unknown_ids} (and the sources could not be read: {e})") from e
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
            problems[cid] = (f"{path}: " + "; ".join(e.reasons), InvalidInput)
            continue
        docs[cid] = (doc, digest)
    first = next(iter(docs.values()), (None, None))[0]
    if vertical is None and first is not None:
        vertical = vertical_of(first)
    check_profile = not explicit_profile
    if profile is None and first is not None:
        profile = first["consultant_profile"]
    for cid, (doc, _) in list(docs.items()):
        if vertical_of(doc) != vertical:
            problems[cid] = (f"vertical {vertical_of(doc)!r} differs from {vertical!r}", InvalidInput)
        elif check_profile and doc["consultant_profile"] != profile:
            problems[cid] = ("consultant_profile differs from the file's", InvalidInput)
        else:
            continue
        del docs[cid]
    skipped = [{"conversation_id": cid, "reason": problems[cid][0]} for cid in ids if cid in problems]
    reasons = "; ".join(f"{s['conversation_id']}: {s['reason']}" for s in skipped)
    ineligible = f"ineligible conversations: {reasons}"
    if missing:  # never skipped: an id that names nothing is a mistake in the request
        raise NotFound(unknown_ids + (f"; {ineligible}" if skipped and not skip_invalid else ""))
    if skipped and not skip_invalid:
        kinds = {problems[cid][1] for cid in problems}
        raise (NotFound if kinds == {NotFound} else InvalidInput)(ineligible)
    if not docs:
        raise InvalidInput(f"no eligible conversations: {reasons}")
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
    return Gathered(members, entries, skipped, profile, vertical)


def _recorded_values(rec: dict, doc: dict) -> dict:
    """A member's values: derived from the document, except where a manifest set them."""
    derived = enriched.derive(doc)
    values = {"conversation_id": rec["conversation_id"], "batch_job_id": rec["batch_job_id"]}
    for key in ("created_at", "quality_score", "human_reviewed", "persona_key", "emotional_arc_key", "topic_key"):
        values[key] = rec[key] if key in rec["manifest_fields"] else derived[key]
    values["training_pairs"] = len(doc["training_pairs"])
    return values


def load_profile(url: str) -> dict:
    """A consultant profile from a JSON file: the object itself or a document holding one."""
    try:
        profile = orjson.loads(storage.read(url))
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"profile {url}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    if isinstance(profile, dict) and isinstance(profile.get("consultant_profile"), dict):
        profile = profile["consultant_profile"]
    if not isinstance(profile, dict):
        raise InvalidInput(f"profile {url}: expected a JSON object")
    return profile


def vertical_of(doc: dict) -> str:
    value = doc["dataset_metadata"].get("vertical")
    return value if isinstance(value, str) else ""
