"""One change to a training file, committed as a new version of it.

A change is two functions of the file's current state (None for a new file): `check`
refuses what that state does not allow, and `build` returns a `Draft` of the next state.
After a lost race `check` runs again on the state that landed; `build` runs again only if
the file itself changed, so its sources are never read twice.
"""

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from trainfiles import storage
from trainfiles.core import builder, clock, enriched, records
from trainfiles.errors import NotFound, TrainfilesError
from trainfiles.settings import Settings
from trainfiles.store import commits, index, outputs
from trainfiles.store.catalog import Catalog
from trainfiles.store.members import Members, Tail
from trainfiles.store.rows import outputs_of


@dataclass
class Draft:
    """The next state of a training file. `outputs` is a Composition to stage, whole bytes
    to stage (a migrated file's), or the `outputs` of an existing version when the change
    leaves them as they are."""

    operation: str
    file: dict
    members: Members
    outputs: "outputs.Composition | dict"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restored_from: int | None = None


Check = Callable[[dict | None], None]
Build = Callable[[dict | None, str], Draft]


def commit(settings: Settings, catalog: Catalog, file_id: str, check: Check, build: Build) -> dict:
    """Publish the change as the file's next version; returns its commit record."""
    store = settings.store
    storage.writable(store)
    staged: list[dict] = []

    def attempt(lost: dict | None) -> dict:
        current = catalog.find_file(file_id)
        check(current)
        version = current["version"] if current else 0
        if lost is not None and lost["version"] == version + 1:
            return lost  # only other files changed: the same version goes to the next number
        now = clock.stamp_after(current["updated_at"]) if current else clock.stamp()
        draft = build(current, now)
        record = {
            "format": records.CHANGE,
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
            "statistics": draft.members.statistics(),
            **_changed_members(draft),  # streamed into the record from its spool
            "outputs": draft.outputs,
        }
        if isinstance(draft.outputs, outputs.Composition):
            record["outputs"] = outputs.stage(store, file_id, record["version"], draft.outputs)
            staged.append(record["outputs"])
        elif isinstance(draft.outputs.get("json"), bytes):
            record["outputs"] = commits.stage(store, file_id, record["version"], draft.outputs)
            staged.append(record["outputs"])
        records.check_own(record)
        return record

    # A new file's folders are its own: none is left behind by a change that failed.
    with storage.removing_new_folders(storage.join(store, file_id, "versions", "-")):
        try:
            record = index.commit(catalog, store, settings.user, attempt)
        except BaseException:
            for written in staged:
                commits.unstage(store, written)
            raise
    for written in staged:
        if written is not record["outputs"]:
            commits.unstage(store, written)
    # Copies left behind: the record is left for the next command to read, which repairs them.
    if index.refresh_download_copies(store, record):
        index.record_own(catalog, store, settings.user, record)
    if any(written is record["outputs"] for written in staged):  # hashed as we wrote them
        signatures = {o["key"]: storage.signature(storage.join(store, o["key"])) for o in record["outputs"].values()}
        with contextlib.suppress(TrainfilesError, sqlite3.Error):  # only saves hashing them again
            catalog.trust({key: sig for key, sig in signatures.items() if sig})
    return record


def composition(file: dict, members: Members, body: list) -> outputs.Composition:
    """What to stage for a state: its file fields, members, and the body's pieces."""
    meta = builder.metadata(
        name=file["name"],
        created=file["created_at"],
        updated=file["last_updated"],
        target_model=file["target_model"],
        vertical=file["vertical"],
        stats=members.statistics(),
    )
    return outputs.Composition(
        builder.json_head(meta, file["consultant_profile"]), lambda rows: builder.jsonl_head(file["name"], rows), body
    )


def _changed_members(draft: Draft) -> dict:
    """What a commit/2 record holds of the members: all of them (create, restore, migrate),
    those an add appended, or none (the parent's, less `removed`)."""
    if draft.operation in records.WHOLE:
        return {"members": draft.members}
    if draft.operation == "add":
        return {"members_added": Tail(draft.members, len(draft.members) - len(draft.added))}
    return {}


def parent(store: str, catalog: Catalog, row: dict, drop: frozenset[str] = frozenset()) -> outputs.Parent:
    """The conversations of a file's latest version, to copy into its next one. Outputs this
    machine wrote and nothing has touched since are copied without hashing them again."""
    found = outputs_of(row)
    trusted = frozenset(
        kind
        for kind, output in found.items()
        if (sig := storage.signature(storage.join(store, output["key"]))) and sig == catalog.trusted(output["key"])
    )
    return outputs.Parent(store, found, drop, trusted)


def file_fields(row: dict, profile: dict | None = None) -> dict:
    """The `file` part of a commit, from the index's row of the file (or a 0.1 catalog's
    row, which kept the profile only in the outputs)."""
    return {
        "name": row["name"],
        "description": row["description"],
        "target_model": row["target_model"],
        "vertical": row["vertical"],
        "status": row["status"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "last_updated": row["last_updated_at"],
        "consultant_profile": orjson.loads(row["consultant_profile"]) if profile is None else profile,
        # Only in files made with `create --profile`: others' records stay as they were.
        **({"profile_set": True} if row.get("profile_set") else {}),
    }


def from_sources(record: dict, spool: outputs.Spool, catalog: Catalog | None = None) -> outputs.Composition:
    """A version built again from its sources, byte for byte, when their sha256 still match
    the commit; NotFound naming every source that changed or went missing. Given the
    `catalog`, only sources registered in it are read: a record from the store may name any
    path or URL, and nothing it says makes us read outside what the user registered."""
    if catalog is not None:
        paths = [m["source_path"] for m in record["members"]]
        allowed = catalog.registered_paths(paths)
        if unknown := [
            f"{m['conversation_id']} ({m['source_path']})" for m in record["members"] if m["source_path"] not in allowed
        ]:
            raise NotFound(
                f"version {record['version']}'s outputs were deleted by gc, and these sources are not registered here "
                "(`trainfiles conversations scan` them first): ",
                unknown,
            )
    members = Members(record["members"])
    changed = []
    for member, (_, data, digest) in zip(
        record["members"], storage.read_each([m["source_path"] for m in record["members"]])
    ):
        if isinstance(data, NotFound):
            changed.append(f"{member['conversation_id']} ({member['source_path']} is missing)")
        elif digest != member["source_sha256"]:
            changed.append(f"{member['conversation_id']} ({member['source_path']} changed)")
        elif not changed:
            spool.append(builder.conversation_entry(member, enriched.parse(data)))
    if changed:
        raise NotFound(
            f"version {record['version']}'s outputs were deleted by gc and cannot be built again: sources changed since: ",
            changed,
        )
    spool.finish()
    return composition(record["file"], members, [spool])
