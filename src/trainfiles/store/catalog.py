"""The SQLite catalog: training files and their members, as the index of the store's log,
and the registrations of conversations (registry.py).

One small interface over sqlite-utils. Migrations run when the catalog opens, so an old
and a new catalog behave the same. Write transactions start with `BEGIN IMMEDIATE`: a
deferred `BEGIN` that reads first fails at once under a concurrent writer.
"""

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from trainfiles.core.records import COMMIT
from trainfiles.errors import StorageUnavailable
from trainfiles.store.members import after as members_after
from trainfiles.store.migrations import migrations, sqlite_utils
from trainfiles.store.registry import Registrations, _ids_starting
from trainfiles.store.rows import (
    MEMBER_FIELDS,
    _keys,
    _version,
    _version_row,
    file_row,
    from_checkpoint,
    member_row,
    to_checkpoint,
)

if TYPE_CHECKING:
    from trainfiles.core.records import BadRecord


BUSY_TIMEOUT_MS = 30_000


class Catalog(Registrations):
    """A catalog file, created if missing and migrated to the current schema on open.

    A missing catalog is no loss: registrations start empty and training files are
    rebuilt from the store by the next command that needs them.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(path, execute_plugins=False)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db.execute("PRAGMA foreign_keys = ON")
            if migrations.pending(self.db):
                with self.write():
                    migrations.apply(self.db)
        except (sqlite3.DatabaseError, OSError) as e:
            raise StorageUnavailable(f"catalog {path}: {e}") from e

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator["Catalog"]:
        """One write transaction: everything inside commits together or not at all."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:  # still locked by another writer after the busy timeout
            raise StorageUnavailable(f"catalog {self.path}: {e}") from e
        try:
            yield self
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    @contextlib.contextmanager
    def reading(self) -> Iterator["Catalog"]:
        """One read transaction: everything inside sees the same catalog, whatever other
        processes commit meanwhile."""
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.conn.rollback()

    # Training files: the index of the store's commit log (commits.py)

    def index_state(self) -> tuple[str | None, int]:
        """The store this index mirrors and the last sequence applied from its log."""
        rows = list(self.db.query("select store, last_sequence from index_state where id = 1"))
        return (rows[0]["store"], rows[0]["last_sequence"]) if rows else (None, 0)

    def reset_index(self, store: str) -> None:
        """Forget every training file: the index is about to be rebuilt from `store`.
        Registrations stay; those of another store as not in this one: those it holds are
        applied again over them, and the others the next scan or import here publishes."""
        for table in ("members", "versions", "files", "log_read", "bad_records"):
            self.db.execute(f"delete from {table}")
        if self.index_state()[0] != store:
            self.db.execute("update conversations set source_record = null")
        self.db["index_state"].upsert(
            {"id": 1, "store": store, "last_sequence": 0, "reader_version": None, "writer_version": None}, pk="id"
        )

    def protocol(self) -> tuple[int, int] | None:
        """The store's (reader, writer) protocol versions, once read; None until then."""
        rows = list(self.db.query("select reader_version, writer_version from index_state where id = 1"))
        if not rows or rows[0]["reader_version"] is None:
            return None
        return rows[0]["reader_version"], rows[0]["writer_version"]

    def set_protocol(self, reader: int, writer: int) -> None:
        """Remember the store's protocol versions (inside a write)."""
        self.db.execute("update index_state set reader_version = ?, writer_version = ? where id = 1", [reader, writer])

    def read_after(self, sequence: int) -> set[int]:
        """The records after `sequence` this index has read (beyond a gap in the log)."""
        return {row[0] for row in self.db.execute("select sequence from log_read where sequence > ?", [sequence])}

    def last_read(self) -> int:
        """The newest record this index has read: a writer publishes after it."""
        return self.db.execute("select coalesce(max(sequence), 0) from log_read").fetchone()[0]

    def mark_read(self, sequences: list[int]) -> None:
        """Record `sequences` as read (inside a write); the index's last_sequence moves up to
        the first record not read yet."""
        self.db.conn.executemany("insert or ignore into log_read (sequence) values (?)", ((s,) for s in sequences))
        through = self.index_state()[1]
        for sequence in sorted(self.read_after(through)):
            if sequence != through + 1:
                break
            through = sequence
        self.db.execute("update index_state set last_sequence = ? where id = 1", [through])

    def flag(self, bad: Iterable["BadRecord"]) -> None:
        """Keep records that cannot be believed apart, with why (inside a write)."""
        self.db["bad_records"].upsert_all(
            (
                {
                    "sequence": b.sequence,
                    "file_id": b.file_id,
                    "reason": b.reason,
                    "keys": json.dumps(b.keys),
                    "set_aside": False,
                }
                for b in bad
            ),
            pk="sequence",
        )

    def set_aside(self, sequences: list[int]) -> None:
        """Records a repair record set aside: no longer reported, their files usable again.
        Only bad records can be set aside; a repair naming a good one changes nothing."""
        self.db.conn.executemany("update bad_records set set_aside = 1 where sequence = ?", ((s,) for s in sequences))

    def bad_records(self, file_id: str | None = None) -> list[dict]:
        """Records not set aside that cannot be believed (those touching `file_id` only, if given)."""
        sql = "select sequence, file_id, reason from bad_records where not set_aside"
        params = [] if file_id is None else [file_id]
        return list(self.db.query(sql + (" and file_id = ?" if file_id else "") + " order by sequence", params))

    def kept_keys(self) -> set[str]:
        """Output keys named by records that cannot be believed: gc deletes none of them."""
        return {key for row in self.db.execute("select keys from bad_records") for key in json.loads(row[0])}

    def apply(self, records: list[dict]) -> list["BadRecord"]:
        """Apply commit records, in sequence order, to the index (inside a write). Returns
        those refused, by the rule of docs/store.md: a version of a file an earlier record
        already gave, or a name another file holds (the earlier record wins)."""
        from trainfiles.core.records import BadRecord

        refused, accepted, state, whole = [], [], {}, {}
        members: dict[str, set[str]] = {}  # a file's member ids while its changes apply, read once
        for r in records:
            file_id, name = r["file_id"], r["file"]["name"]
            if file_id not in state:
                row = self.find_file(file_id)
                state[file_id] = (row["version"], row["name"]) if row else (0, None)
            holders = {f for f, (_, n) in state.items() if n == name} | {
                row[0] for row in self.db.execute("select id from files where name = ?", [name]) if row[0] not in state
            }
            if r["version"] <= state[file_id][0]:
                reason = f"version {r['version']} of training file {file_id} is in an earlier record"
            elif holders - {file_id}:
                reason = f"name {name!r} is held by training file {min(holders - {file_id})} since an earlier record"
            else:
                if "members" not in r and file_id in whole:  # the state a change applies to
                    self._apply(whole.pop(file_id))
                    members.pop(file_id, None)
                if "members" not in r and file_id not in members:
                    members[file_id] = set(self.member_ids(file_id))
                reason = None if "members" in r else _change_problem(r, state[file_id][0], members[file_id])
            if reason:
                refused.append(BadRecord(r["sequence"], reason, file_id, _keys(r)))
                continue
            accepted.append(r)
            state[file_id] = (r["version"], name)
            if "members" in r:  # only a file's newest whole state needs its members written
                whole[file_id] = r
                members.pop(file_id, None)
            else:
                self._apply(r)
                members[file_id] -= set(r["removed"])
                members[file_id] |= {m["conversation_id"] for m in r.get("members_added", [])}
        for r in whole.values():
            self._apply(r)
        self.db["versions"].insert_all((_version_row(r) for r in accepted), ignore=True)
        return refused

    def _apply(self, r: dict) -> None:
        """One accepted record into the index: its file's row and members. A record holding
        every member replaces them (or appends to them, when it extends the index's version);
        a commit/2 change removes and appends."""
        file_id = r["file_id"]
        current = self.find_file(file_id)
        self.db["files"].upsert(file_row(r), pk="id")  # first: members refer to it
        if "members" in r:
            skip = 0
            if current and r["format"] == COMMIT and r["parent"] == current["version"] and not r["removed"]:
                skip = current["conversation_count"]  # a commit/1 add: the same members, then those it added
            if skip and [m["conversation_id"] for m in islice(r["members"], skip)] != self.member_ids(file_id):
                skip = 0  # it says otherwise: its members as written, as every reader takes them
            if not skip:
                self.db.execute("delete from members where file_id = ?", [file_id])
            self._insert_members(file_id, members_after(r["members"], skip))
        else:
            for start in range(0, len(r["removed"]), 500):
                gone = r["removed"][start : start + 500]
                self.db.execute(
                    f"delete from members where file_id = ? and conversation_id in ({','.join('?' * len(gone))})",
                    [file_id, *gone],
                )
            self._insert_members(file_id, r.get("members_added", []))

    def _insert_members(self, file_id: str, members: Iterable[dict]) -> None:
        # executemany, not insert_all: a file of 10,000 conversations is rewritten by every
        # command that indexes a new version of it, and sqlite-utils' per-value work was most
        # of an add's time.
        (start,) = self.db.execute(
            "select coalesce(max(position) + 1, 0) from members where file_id = ?", [file_id]
        ).fetchone()
        columns = ("file_id", "position", *MEMBER_FIELDS)
        self.db.conn.executemany(
            f"insert into members ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
            ((file_id, start + i, *(m.get(k) for k in MEMBER_FIELDS)) for i, m in enumerate(members)),
        )

    def find_file(self, ref: str) -> dict | None:
        """A training file row by id or by name."""
        rows = list(self.db.query("select * from files where id = ? or name = ?", [ref, ref]))
        return rows[0] if rows else None

    def file_ids_starting(self, prefix: str) -> list[str]:
        """Training file ids that start with `prefix` (lower case)."""
        return _ids_starting(self.db, "files", "id", prefix)

    def name_taken(self, name: str, other_than: str | None = None) -> bool:
        return bool(list(self.db.query("select 1 from files where name = ? and id is not ?", [name, other_than])))

    def list_files(self, status: str | None, created_by: str | None = None) -> list[dict]:
        """Training file rows, newest first; all statuses when status is None, every
        creator when created_by is None."""
        where = [(column, value) for column, value in (("status", status), ("created_by", created_by)) if value]
        sql = "select * from files" + (
            " where " + " and ".join(f"{column} = ?" for column, _ in where) if where else ""
        )
        return list(self.db.query(sql + " order by created_at desc, name", [value for _, value in where]))

    def file_count(self) -> int:
        return self.db.execute("select count(*) from files").fetchone()[0]

    def members(self, file_id: str) -> Iterator[dict]:
        """A training file's members in file order, as its commits record them."""
        return (
            member_row(row)
            for row in self.db.query("select * from members where file_id = ? order by position", [file_id])
        )

    def members_among(self, file_id: str, ids: list[str]) -> set[str]:
        """Those of `ids` that are members of the file (costs what `ids` holds, not the file)."""
        found = set()
        for start in range(0, len(ids), 500):  # SQLite's limit on parameters is 999 at worst
            batch = ids[start : start + 500]
            sql = f"select conversation_id from members where file_id = ? and conversation_id in ({', '.join('?' * len(batch))})"
            found.update(row[0] for row in self.db.execute(sql, [file_id, *batch]))
        return found

    def member_ids_starting(self, file_id: str, prefix: str) -> list[str]:
        """The file's members whose id starts with `prefix` (lower case)."""
        return [
            row[0]
            for row in self.db.execute(
                "select conversation_id from members where file_id = ? and conversation_id >= ? and conversation_id < ?",
                [file_id, prefix, prefix + "\uffff"],
            )
        ]

    def member_ids(self, file_id: str) -> list[str]:
        return [
            row["conversation_id"]
            for row in self.db.query(
                "select conversation_id from members where file_id = ? order by position", [file_id]
            )
        ]

    def versions(self, file_id: str) -> list[dict]:
        """Every version of a training file, oldest first."""
        return [
            _version(row)
            for row in self.db.query("select * from versions where file_id = ? order by version", [file_id])
        ]

    def version(self, file_id: str, number: int) -> dict | None:
        rows = list(self.db.query("select * from versions where file_id = ? and version = ?", [file_id, number]))
        return _version(rows[0]) if rows else None

    def trust(self, signatures: dict[str, tuple[int, int, int]]) -> None:
        """Remember outputs this machine has just written and hashed: key -> (size, mtime_ns, inode)."""
        with self.write():
            self.db["trusted_outputs"].upsert_all(
                [{"key": key, "size": s, "mtime_ns": m, "inode": i} for key, (s, m, i) in signatures.items()], pk="key"
            )

    def trusted(self, key: str) -> tuple[int, int, int] | None:
        rows = list(self.db.query("select size, mtime_ns, inode from trusted_outputs where key = ?", [key]))
        return (rows[0]["size"], rows[0]["mtime_ns"], rows[0]["inode"]) if rows else None

    # Store checkpoints (store/checkpoints.py): the index at one record of the log, and back

    def state(self, sequence: int) -> dict | None:
        """The index as a store checkpoint holds it, read in one transaction; None unless
        it has applied exactly the records 1 to `sequence`, and holds no registration
        values of its own (registry.py)."""
        with self.reading():
            if self.index_state()[1] != sequence or self.last_read() != sequence or self.holds_own_values():
                return None
            files = [
                {
                    "file": to_checkpoint(row),
                    "versions": [to_checkpoint(v, drop=("file_id",)) for v in self.versions(row["id"])],
                    "members": list(self.members(row["id"])),
                }
                for row in self.db.query("select * from files order by id")
            ]
            kept = [
                to_checkpoint({**row, "keys": json.loads(row["keys"])})
                for row in self.db.query("select * from bad_records order by sequence")
            ]
            return {"files": files, "conversations": self.registrations_state(), "bad_records": kept}

    def members_at(self, file_id: str, sequence: int) -> list[dict] | None:
        """A file's members, read in one transaction; None unless its newest version is the
        one record `sequence` gave (another process may have indexed newer ones)."""
        with self.reading():
            row = self.find_file(file_id)
            return list(self.members(file_id)) if row and row["sequence"] == sequence else None

    def holds_own_values(self) -> bool:
        """Whether a registration the store holds has values of this catalog's own (registry.py)."""
        sql = "select 1 from conversations where own_values and source_record is not null limit 1"
        return self.db.execute(sql).fetchone() is not None

    def load_state(self, checkpoint: dict) -> None:
        """Take a store checkpoint's state (inside a write, just after `reset_index`): the
        index as if it had applied every record up to the checkpoint's."""
        for state in checkpoint["files"]:
            file_id = state["file"]["id"]
            self.db["files"].insert(from_checkpoint(state["file"]))
            self.db["versions"].insert_all({**from_checkpoint(v), "file_id": file_id} for v in state["versions"])
            self._insert_members(file_id, state["members"])
        self.db["bad_records"].insert_all({**b, "keys": json.dumps(b["keys"])} for b in checkpoint["bad_records"])
        self.load_registrations(checkpoint["conversations"])
        self.db.execute("update index_state set last_sequence = ? where id = 1", [checkpoint["sequence"]])
        self.db.execute("insert or ignore into log_read (sequence) values (?)", [checkpoint["sequence"]])

    # Catalogs made before the store held versions (m001): their files, once

    def legacy_files(self) -> list[dict]:
        return list(self.db.query("select * from training_files order by created_at, id"))

    def legacy_members(self, file_id: str) -> list[dict]:
        return list(
            self.db.query("select * from training_file_members where training_file_id = ? order by position", [file_id])
        )

    def legacy_restores(self, file_id: str) -> dict[str, bytes]:
        """Previous outputs a failed add could not put back, by URL: they are the file's truth."""
        return {
            row["url"]: row["data"]
            for row in self.db.query("select url, data from pending_restores where training_file_id = ?", [file_id])
        }

    def drop_legacy(self, file_id: str) -> None:
        for table, column in (
            ("pending_restores", "training_file_id"),
            ("training_file_members", "training_file_id"),
            ("training_files", "id"),
        ):
            self.db.execute(f"delete from {table} where {column} = ?", [file_id])


def _change_problem(r: dict, version: int, ids: set[str]) -> str | None:
    """Why a commit/2 record cannot apply to a file at `version` with members `ids`, if so."""
    if r["parent"] != (version or None):
        return f"it changes version {r['parent']} of training file {r['file_id']}, whose version is {version}"
    added = [m["conversation_id"] for m in r.get("members_added", [])]
    if not set(r["removed"]) <= ids or ids & set(added):
        return "it removes conversations that are not members, or adds members again"
    if len(ids) - len(r["removed"]) + len(added) != r["statistics"]["total_conversations"]:
        return "its members do not make statistics.total_conversations"
    return None
