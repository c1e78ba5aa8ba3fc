"""One change to a training file, committed as a new version of it.

A change is two functions of the file's current state (None for a new file): `check`
refuses what that state does not allow, and `build` returns a `Draft` of the next state.
After a lost race `check` runs again on the state that landed; `build` runs again only if
the file itself changed, so its sources are never read twice.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from . import builder, clock, commits, enriched, index, storage
from .catalog import Catalog, member_row
from .errors import Conflict, NotFound
from .settings import Settings


@dataclass
class Draft:
    """The next state of a training file. `outputs` holds new bytes to stage, or the
    `outputs` of an existing version when the change leaves them as they are."""

    operation: str
    file: dict
    members: list[dict]
    outputs: dict
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restored_from: int | None = None


Check = Callable[[dict | None], None]
Build = Callable[[dict | None, str], Draft]


def commit(settings: Settings, catalog: Catalog, file_id: str, check: Check, build: Build) -> dict:
    """Publish the change as the file's next version; returns its commit record."""
    store = settings.store
    staged: list[dict] = []

    def landed() -> int:
        return index.sync(catalog, store)

    def attempt(lost: dict | None) -> dict:
        current = catalog.find_file(file_id)
        check(current)
        version = current["version"] if current else 0
        if lost is not None and lost["version"] == version + 1:
            return lost  # only other files changed: the same version goes to the next number
        now = clock.stamp_after(current["updated_at"]) if current else clock.stamp()
        draft = build(current, now)
        record = {
            "format": commits.FORMAT,
            "sequence": None,
            "file_id": file_id,
            "version": version + 1,
            "parent": version or None,
            "operation": draft.operation,
            "created_at": now,
            "created_by": settings.user,
            "added": draft.added,
            "removed": draft.removed,
            "restored_from": draft.restored_from,
            "file": draft.file,
            "statistics": builder.statistics(draft.members),
            "members": [member_row(m) for m in draft.members],
            "outputs": draft.outputs,
        }
        if isinstance(draft.outputs.get("json"), bytes):
            record["outputs"] = stage(store, file_id, record["version"], draft.outputs)
            staged.append(record["outputs"])
        return record

    # A new file's folders are its own: none is left behind by a change that failed.
    with storage.removing_new_folders(storage.join(store, file_id, "versions", "-")):
        try:
            record = commits.commit(store, catalog.index_state()[1], attempt, landed)
        except BaseException:
            for outputs in staged:
                commits.unstage(store, outputs)
            raise
    for outputs in staged:
        if outputs is not record["outputs"]:
            commits.unstage(store, outputs)
    index.refresh_download_copies(store, record)
    index.record_own(catalog, record)
    return record


def stage(store: str, file_id: str, version: int, outputs: dict[str, bytes]) -> dict[str, dict]:
    digests = dict(zip(commits.KINDS, storage.sha256_many([outputs[kind] for kind in commits.KINDS])))
    return commits.stage(store, file_id, version, outputs, digests)


def render(file: dict, members: list[dict], conversations: list[dict]) -> dict[str, bytes]:
    """Both outputs of a state: its file fields, members and conversation entries."""
    doc = builder.build_document(
        name=file["name"],
        created=file["created_at"],
        updated=file["last_updated"],
        target_model=file["target_model"],
        vertical=file["vertical"],
        profile=file["consultant_profile"],
        conversations=conversations,
        stats=builder.statistics(members),
    )
    return {"json": builder.render_json(doc), "jsonl": builder.render_jsonl(doc)}


def file_fields(row: dict) -> dict:
    """The `file` part of a commit, from the index's row of the file."""
    return {
        "name": row["name"],
        "description": row["description"],
        "target_model": row["target_model"],
        "vertical": row["vertical"],
        "status": row["status"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "last_updated": row["last_updated_at"],
        "consultant_profile": orjson.loads(row["consultant_profile"]),
    }


def read_output(store: str, key: str, expected_sha256: str) -> bytes:
    """One version output, refused if it is not what its commit recorded."""
    url = storage.join(store, key)
    data = storage.read(url)
    if storage.sha256(data) != expected_sha256:
        raise Conflict(f"{url} differs from its commit (sha256 {storage.sha256(data)[:12]}, expected {expected_sha256[:12]}): run `trainfiles verify`")
    return data


def conversations_of(store: str, row: dict) -> list[dict]:
    """The conversation entries of a file's latest version, from its stored JSON."""
    return orjson.loads(read_output(store, row["json_key"], row["json_sha256"]))["conversations"]


def outputs_from_sources(record: dict) -> dict[str, bytes]:
    """A version's outputs built again from its sources, byte for byte, when their sha256
    still match the commit; NotFound naming every source that changed or went missing."""
    members = record["members"]
    contents = storage.read_many([m["source_path"] for m in members])
    changed = []
    entries = []
    for member, data in zip(members, contents):
        if isinstance(data, NotFound):
            changed.append(f"{member['conversation_id']} ({member['source_path']} is missing)")
        elif storage.sha256(data) != member["source_sha256"]:
            changed.append(f"{member['conversation_id']} ({member['source_path']} changed)")
        else:
            entries.append(builder.conversation_entry(member, enriched.parse(data)))
    if changed:
        raise NotFound(
            f"version {record['version']}'s outputs were deleted by gc and cannot be built again: "
            "sources changed since: " + ", ".join(changed)
        )
    return render(record["file"], members, entries)
