"""A version's members as the log gives them: the nearest state that holds every member (a
record of a create, restore or migrate, any commit/1, or a file checkpoint), then each change
after it (docs/store.md, "The reader's algorithm")."""

from trainfiles.core import records
from trainfiles.core.records import BadRecord
from trainfiles.store import checkpoints, commits


def read_version(store: str, versions: list[dict], number: int) -> dict:
    """Version `number`'s record with every member in `members`. A commit/2 record holds
    what changed since its parent: the records back to the nearest state holding every
    member are read at once, then applied forward. `versions`: the file's versions as the
    index has them (their sequences)."""
    by_number = {v["version"]: v for v in versions}
    target = _of(commits.read_one(store, by_number[number]["sequence"]), by_number[number])
    if "members" in target:  # a commit/1, a create, a restore: nothing else to read
        return target
    first = number
    while by_number[first]["operation"] not in records.WHOLE and first - 1 in by_number:
        first -= 1
    members = None
    for checkpointed in checkpoints.due_file_versions(first, number - 1):
        members = checkpoints.file_members(store, target["file_id"], versions, checkpointed)
        if members is not None:
            first = checkpointed + 1
            break
    between = range(first, number)
    read = commits.read(store, [by_number[n]["sequence"] for n in between])
    chain = [*(r if isinstance(r, BadRecord) else _of(r, by_number[n]) for n, r in zip(between, read)), target]
    if bad := next((r for r in chain if isinstance(r, BadRecord)), None):
        raise bad
    # A record after the checkpoint may hold every member too (a commit/1): it gives them.
    # With none, and no checkpoint, the chain starts at version 1: from no member.
    if (whole := max((i for i, r in enumerate(chain) if "members" in r), default=None)) is not None:
        members, chain = list(chain[whole]["members"]), chain[whole + 1 :]
    members = members or []
    for r in chain:
        gone = set(r["removed"])
        members = [m for m in members if m["conversation_id"] not in gone] + r.get("members_added", [])
    target = dict(target)
    target.pop("members_added", None)
    return {**target, "members": members}


def _of(record: dict, version: dict) -> dict:
    """`record`, read at the sequence the index gives `version`; BadRecord (exit 3) when it
    is not that version of that file (an index taken from a checkpoint believes its word)."""
    if record["format"] not in records.COMMITS or (record["file_id"], record["version"]) != (
        version["file_id"],
        version["version"],
    ):
        raise BadRecord(
            record["sequence"],
            f"it is not version {version['version']} of training file {version['file_id']}, as the index says",
            version["file_id"],
        )
    return record
