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
    target = commits.read_one(store, by_number[number]["sequence"])
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
    chain = [*commits.read(store, [by_number[n]["sequence"] for n in range(first, number)]), target]
    if bad := next((r for r in chain if isinstance(r, BadRecord)), None):
        raise bad
    if members is None:
        whole = max(i for i, r in enumerate(chain) if "members" in r)
        members, chain = list(chain[whole]["members"]), chain[whole + 1 :]
    for r in chain:
        gone = set(r["removed"])
        members = [m for m in members if m["conversation_id"] not in gone] + r.get("members_added", [])
    target = dict(target)
    target.pop("members_added", None)
    return {**target, "members": members}
