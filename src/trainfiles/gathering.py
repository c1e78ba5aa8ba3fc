"""Reading and checking the conversations a create or add names: every refusal named at once."""

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from . import builder, enriched, prefixes, storage
from .catalog import Catalog
from .errors import InvalidInput, NotFound, StorageUnavailable, TrainfilesError, named
from .members import Members
from .outputs import Spool
from .progress import bar
from .selection import require_unique


@dataclass
class Selection:
    """The conversations a create or add names: explicit ids or a whole batch."""

    ids: list[str] = field(default_factory=list)
    batch: str | None = None


@dataclass
class Gathered:
    """What one command read: the eligible conversations' member values in request order
    (their entries went to the spool as they came), and what was left out."""

    members: Members
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


RECORDS_WINDOW = 500


def gather(
    catalog: Catalog,
    ids: list[str],
    skip_invalid: bool,
    spool: Spool,
    *,
    profile: dict | None,
    vertical: str | None,
    explicit_profile: bool = False,
) -> Gathered:
    """Read and check the named conversations one at a time, rendering each eligible one
    into `spool`; refuse or skip the ineligible ones, naming every one of them.

    The first eligible conversation sets the vertical and profile a new file takes. Once
    something is wrong the rest are still read and checked, but no longer rendered.
    """
    located = catalog.locations(ids)
    missing = [cid for cid in ids if cid not in located]
    problems: dict[str, tuple[str, type[TrainfilesError]]] = {}
    readable, paths = [], []
    for cid in ids:
        if cid not in located:
            continue
        status, path = located[cid]
        if status != "completed":
            problems[cid] = (f"status is {status}, not completed", InvalidInput)
        elif not path:
            problems[cid] = ("no enriched_file_path", InvalidInput)
        else:
            readable.append(cid)
            paths.append(path)
    del located
    members = Members()
    check_profile = not explicit_profile
    records: dict[str, dict] = {}  # whole records, a window at a time: a file may hold 100,000
    try:
        with bar("Reading conversations", len(readable)) as advance, _no_collection_pauses():
            for i, (cid, path, (data, digest)) in enumerate(zip(readable, paths, storage.read_each(paths, advance))):
                if cid not in records:
                    records = catalog.conversations(readable[i : i + RECORDS_WINDOW])
                if isinstance(data, NotFound):
                    problems[cid] = (str(data), NotFound)
                    continue
                try:
                    doc = enriched.parse(data)
                    derived = enriched.check(doc)
                except enriched.Ineligible as e:
                    problems[cid] = (f"{path}: " + named(e.reasons, "; "), InvalidInput)
                    continue
                if vertical is None:
                    vertical = vertical_of(doc)
                if profile is None:
                    profile = doc["consultant_profile"]
                if vertical_of(doc) != vertical:
                    problems[cid] = (f"vertical {vertical_of(doc)!r} differs from {vertical!r}", InvalidInput)
                elif check_profile and doc["consultant_profile"] != profile:
                    problems[cid] = ("consultant_profile differs from the file's", InvalidInput)
                else:
                    member = _member(records[cid], doc, derived, path, digest)
                    try:
                        if skip_invalid or not problems:
                            spool.append(builder.conversation_entry(member, doc))
                    except orjson.JSONEncodeError as e:  # changed since its scan, which checks depth
                        problems[cid] = (f"{path}: cannot be written as JSON ({e})", InvalidInput)
                        continue
                    members.append(member)
    except StorageUnavailable as e:
        if missing:  # what is wrong with the request comes first
            raise NotFound("unknown conversation ids: ", missing, suffix=f" (and the sources could not be read: {e})") from e
        raise
    skipped = [{"conversation_id": cid, "reason": problems[cid][0]} for cid in ids if cid in problems]
    offenders = [f"{s['conversation_id']}: {s['reason']}" for s in skipped]
    ineligible = f"ineligible conversations: {named(offenders, '; ')}"
    if missing:  # never skipped: an id that names nothing is a mistake in the request
        raise NotFound("unknown conversation ids: ", missing, suffix=f"; {ineligible}" if skipped and not skip_invalid else "")
    if skipped and not skip_invalid:
        kinds = {problems[cid][1] for cid in problems}
        raise (NotFound if kinds == {NotFound} else InvalidInput)("ineligible conversations: ", offenders, sep="; ")
    if not members:
        raise InvalidInput("no eligible conversations: ", offenders, sep="; ")
    spool.finish()
    return Gathered(members, skipped, profile, vertical)


@contextlib.contextmanager
def _no_collection_pauses() -> Iterator[None]:
    """Each document is freed as soon as it is rendered (reference counting); the cyclic
    collector would only walk the live ones again and again, a fifth of a large create."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _member(rec: dict, doc: dict, derived: dict, path: str, digest: str) -> dict:
    """A member as its commit records it (catalog.MEMBER_FIELDS, in order): values derived
    from the document, except where a manifest set them; who added it comes at commit time."""

    def value(key: str):
        return rec[key] if key in rec["manifest_fields"] else derived[key]

    return {
        "conversation_id": rec["conversation_id"],
        "source_path": path,
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


def load_profile(url: str) -> dict:
    """A consultant profile from a JSON file: the object itself or a document holding one."""
    try:
        profile = orjson.loads(storage.read(url).removeprefix(enriched.BOM))
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
