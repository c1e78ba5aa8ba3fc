"""Reading and checking the conversations a create or add names: every refusal named at once."""

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

from trainfiles import storage
from trainfiles.core import enriched, prefixes, records
from trainfiles.errors import InvalidInput, NotFound, StorageUnavailable, TrainfilesError, named
from trainfiles.progress import bar
from trainfiles.store.catalog import Catalog
from trainfiles.store.members import Members
from trainfiles.store.outputs import Spool
from trainfiles.usecases import examining
from trainfiles.usecases.selection import require_unique


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


def full_ids(catalog: Catalog, ids: list[str], starting: Callable[[str], list[str]] | None = None) -> list[str]:
    """The ids in full (unique prefixes of registered conversations, or of those `starting`
    lists, expanded), each once."""
    ids = prefixes.expand(ids, starting or catalog.conversation_ids_starting, "conversation")
    require_unique(ids)
    return ids


def unknown(catalog: Catalog, ids: list[str]) -> list[str]:
    records = catalog.conversations(ids)
    return [cid for cid in ids if cid not in records]


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
    """Read and check the named conversations, rendering each eligible one into `spool` in
    request order; refuse or skip the ineligible ones, naming every one of them.

    The first eligible conversation sets the vertical and profile a new file takes. Once
    something is wrong the rest are still read and checked, but no longer spooled.
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
    local = not any("://" in path for path in paths)
    try:
        with bar("Reading conversations", len(readable)) as advance, _no_collection_pauses():
            examined = examining.examine_all(
                _items(catalog, readable, paths), len(readable), local, advance, spool.worker_prefix()
            )
            try:
                for found in examined:
                    cid = found.cid
                    if found.problem:
                        problems[cid] = found.problem
                        continue
                    vertical = found.vertical if vertical is None else vertical
                    profile = found.profile if profile is None else profile
                    if found.vertical != vertical:
                        problems[cid] = (f"vertical {found.vertical!r} differs from {vertical!r}", InvalidInput)
                    elif check_profile and found.profile != profile:
                        problems[cid] = (
                            f"{PROFILE_DIFFERS}: {enriched.difference(profile, found.profile)}",
                            InvalidInput,
                        )
                    elif unrecordable := records.member_problem(found.member):
                        problems[cid] = (unrecordable, InvalidInput)
                    else:
                        if skip_invalid or not problems:  # else the command fails: nothing to spool
                            if found.placed:
                                spool.place(found.placed, found.rows)
                            else:
                                spool.add(found.json_entry, found.jsonl_lines, found.rows)
                        members.append(found.member)
            finally:  # the workers stop (and their spools are complete) before anything is removed
                examined.close()
    except StorageUnavailable as e:
        if missing:  # what is wrong with the request comes first
            raise NotFound(
                "unknown conversation ids: ", missing, suffix=f" (and the sources could not be read: {e})"
            ) from e
        raise
    skipped = [{"conversation_id": cid, "reason": problems[cid][0]} for cid in ids if cid in problems]
    offenders = [f"{s['conversation_id']}: {s['reason']}" for s in skipped]
    ineligible = f"ineligible conversations: {named(offenders, '; ')}"
    if missing:  # never skipped: an id that names nothing is a mistake in the request
        raise NotFound(
            "unknown conversation ids: ", missing, suffix=f"; {ineligible}" if skipped and not skip_invalid else ""
        )
    if skipped and not skip_invalid:
        kinds = {problems[cid][1] for cid in problems}
        raise (NotFound if kinds == {NotFound} else InvalidInput)("ineligible conversations: ", offenders, sep="; ")
    if not members:
        raise InvalidInput("no eligible conversations: ", offenders, sep="; ")
    spool.finish()
    return Gathered(members, skipped, profile, vertical)


RECORDS_WINDOW = 500
PROFILE_DIFFERS = "consultant_profile differs from the file's"


def _items(catalog: Catalog, ids: list[str], paths: list[str]) -> Iterator[examining.Item]:
    """The conversations to examine, with their catalog records fetched a window at a time:
    a file may hold 100,000."""
    for start in range(0, len(ids), RECORDS_WINDOW):
        window = ids[start : start + RECORDS_WINDOW]
        records = catalog.conversations(window)
        for cid, path in zip(window, paths[start : start + RECORDS_WINDOW]):
            yield examining.Item(cid, path, records[cid])


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
