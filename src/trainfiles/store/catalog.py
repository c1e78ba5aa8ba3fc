"""The SQLite catalog: conversations, batches, training files and their members.

One small interface over sqlite-utils. Migrations run when the catalog opens, so an old
and a new catalog behave the same. Write transactions start with `BEGIN IMMEDIATE`: a
deferred `BEGIN` that reads first fails at once under a concurrent writer.
"""

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from trainfiles.core.vocabulary import CONVERSATION_FIELDS
from trainfiles.errors import StorageUnavailable
from trainfiles.store.members import after as members_after
from trainfiles.store.migrations import migrations, sqlite_utils
from trainfiles.store.rows import (
    MEMBER_FIELDS,
    Changed,
    _changes,
    _conversation,
    _keys,
    _standing,
    _stored,
    _version,
    _version_row,
    file_row,
    member_row,
)

if TYPE_CHECKING:
    from trainfiles.core.records import BadRecord


SAVE_BATCH = 5000  # conversation rows compared with the catalog's and written at a time


BUSY_TIMEOUT_MS = 30_000


# By instant, not by text: "10:07:00.5Z" sorts before "10:07:00Z" as text.
IN_TIME_ORDER = "julianday(c.created_at), c.created_at, c.conversation_id"


class Catalog:
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

    # Conversations

    def conversations(self, ids: Iterable[str]) -> dict[str, dict]:
        """The records of the given conversation ids that exist, by id."""
        return {row["conversation_id"]: _conversation(row) for row in self._conversation_rows(ids)}

    def _conversation_rows(self, ids: Iterable[str]) -> Iterator[dict]:
        ids = list(ids)
        # SQLite caps bound parameters; chunk so a request of any size works.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.query(f"select * from conversations where conversation_id in ({marks})", chunk)

    def locations(self, ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """(enrichment status, enriched file path) of the given ids that exist: what a large
        create needs of every conversation before it reads any (whole records come a window
        at a time)."""
        found = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                (cid, (status, path))
                for cid, status, path in self.db.execute(
                    f"select conversation_id, enrichment_status, enriched_file_path from conversations where conversation_id in ({marks})",
                    chunk,
                )
            )
        return found

    def list_conversations(self, status: str | None = None, batch: str | None = None) -> list[dict]:
        """Conversation records, filtered by status and batch, in created_at, id order."""
        where, params = [], []
        if status:
            where.append("c.enrichment_status = ?")
            params.append(status)
        if batch:
            where.append("c.conversation_id in (select conversation_id from batch_items where batch_job_id = ?)")
            params.append(batch)
        sql = "select c.* from conversations c"
        if where:
            sql += " where " + " and ".join(where)
        sql += f" order by {IN_TIME_ORDER}"
        return [_conversation(row) for row in self.db.query(sql, params)]

    def registered_paths(self, paths: list[str]) -> set[str]:
        """Those of `paths` that a conversation this machine registered itself was read from."""
        found = set()
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            sql = (
                "select enriched_file_path from conversations where registered_here "
                f"and enriched_file_path in ({','.join('?' * len(chunk))})"
            )
            found.update(row[0] for row in self.db.execute(sql, chunk))
        return found

    def conversation_ids_starting(self, prefix: str) -> list[str]:
        """Registered conversation ids that start with `prefix` (lower case)."""
        return _ids_starting(self.db, "conversations", "conversation_id", prefix)

    def batch_conversation_ids(self, batch: str) -> list[str]:
        """The conversations of a generation batch, in created_at then id order."""
        return [
            row["conversation_id"]
            for row in self.db.query(
                "select c.conversation_id from batch_items b join conversations c"
                " on c.conversation_id = b.conversation_id where b.batch_job_id = ?"
                f" order by {IN_TIME_ORDER}",
                [batch],
            )
        ]

    def apply_registration(self, record: dict, here: bool) -> None:
        """Apply a registration record (inside a write): register its conversations, or
        update the columns they give. `here`: whether this machine published it.

        A row's `manifest_fields` names the columns it sets from a manifest. Values a
        manifest set earlier are kept unless this row also comes from a manifest. Rows go a
        batch at a time, so the catalog's records held in memory are one batch's."""
        rows = record["conversations"]
        for start in range(0, len(rows), SAVE_BATCH):
            self._save_batch(rows[start : start + SAVE_BATCH], record["created_at"], here, record["sequence"])

    def changed_conversations(self, rows: list[dict]) -> "Changed":
        """What registering `rows` changes, and the rows a registration record publishes for
        it, in order: each new or changed one as given; one this store does not hold yet
        (registered here before registrations were shared, or for another store) as it
        stands here once `rows` are applied, so every machine ends with what this one has."""
        new, changed, moved, unpublished = self._diff(rows)
        existing = self._registered(row["conversation_id"] for row in [*unpublished, *(r for r, _ in changed)])
        published = {row["conversation_id"]: row for row in new}
        for row, changes in changed:
            old = existing[row["conversation_id"]]
            published[row["conversation_id"]] = row if old["source_record"] is not None else _standing(old, changes)
        for row in unpublished:
            published[row["conversation_id"]] = _standing(existing[row["conversation_id"]], {})
        order = [row["conversation_id"] for row in rows if row["conversation_id"] in published]
        return Changed([published[cid] for cid in order], len(new), len(changed), moved)

    def _diff(self, rows: list[dict]) -> tuple[list[dict], list[tuple[dict, dict]], list[dict], list[dict]]:
        existing = self._registered(row["conversation_id"] for row in rows)
        new, changed, moved, unpublished = [], [], [], []
        for row in rows:
            old = existing.get(row["conversation_id"])
            if old is None:
                new.append(row)
                continue
            changes = _changes(old, row)
            if "enriched_file_path" in changes and old["enriched_file_path"]:
                moved.append(
                    {
                        "conversation_id": row["conversation_id"],
                        "from": old["enriched_file_path"],
                        "to": row["enriched_file_path"],
                    }
                )
            if changes:
                changed.append((row, changes))
            elif old["source_record"] is None:
                unpublished.append(row)
        return new, changed, moved, unpublished

    def _registered(self, ids: Iterable[str]) -> dict[str, dict]:
        """Registrations as `conversations` gives them, with their sources' sha256 and the
        record of this store that last set them (None: none did)."""
        return {
            row["conversation_id"]: {
                **_conversation(row),
                "source_sha256": row["source_sha256"],
                "source_record": row["source_record"],
            }
            for row in self._conversation_rows(ids)
        }

    def _save_batch(self, rows: list[dict], now: str, here: bool, sequence: int) -> None:
        new, changed, _, _ = self._diff(rows)
        table = self.db["conversations"]
        for row, changes in changed:
            table.update(row["conversation_id"], {**_stored(changes), "updated_at": now})
        # executemany inside the caller's transaction: sqlite-utils' insert_all spent a
        # third of a large scan preparing values it can pass through as they are.
        columns = [*CONVERSATION_FIELDS, "invalid_reason", "manifest_fields", "source_sha256"]
        self.db.conn.executemany(
            f"insert into conversations ({', '.join(columns)}, registered_at, updated_at) "
            f"values ({', '.join('?' * (len(columns) + 2))})",
            ((*map(_stored(row).get, columns), now, now) for row in new),
        )
        self.db.conn.executemany(
            "update conversations set source_record = ?, registered_here = ? where conversation_id = ?",
            ((sequence, here, row["conversation_id"]) for row in rows),
        )
        self.db["batch_items"].insert_all(
            (
                {"batch_job_id": row["batch_job_id"], "conversation_id": row["conversation_id"]}
                for row in rows
                if row.get("batch_job_id")
            ),
            ignore=True,
            batch_size=500,
        )

    # Training files: the index of the store's commit log (commits.py)

    def index_state(self) -> tuple[str | None, int]:
        """The store this index mirrors and the last sequence applied from its log."""
        rows = list(self.db.query("select store, last_sequence from index_state where id = 1"))
        return (rows[0]["store"], rows[0]["last_sequence"]) if rows else (None, 0)

    def reset_index(self, store: str) -> None:
        """Forget every training file: the index is about to be rebuilt from `store`.
        Registrations stay, as not in this store: those it holds are applied again over
        them, and the others the next scan or import here publishes."""
        for table in ("members", "versions", "files", "log_read", "bad_records"):
            self.db.execute(f"delete from {table}")
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

        refused, accepted, state = [], [], {}
        for r in records:
            file_id, name = r["file_id"], r["file"]["name"]
            if file_id not in state:
                row = self.find_file(file_id)
                state[file_id] = (row["version"], row["name"]) if row else (0, None)
            holders = {f for f, (_, n) in state.items() if n == name} | {
                row[0] for row in self.db.execute("select id from files where name = ?", [name]) if row[0] not in state
            }
            if r["version"] <= state[file_id][0]:
                refused.append(
                    BadRecord(
                        r["sequence"],
                        f"version {r['version']} of training file {file_id} is in an earlier record",
                        file_id,
                        _keys(r),
                    )
                )
            elif holders - {file_id}:
                refused.append(
                    BadRecord(
                        r["sequence"],
                        f"name {name!r} is held by training file {min(holders - {file_id})} since an earlier record",
                        file_id,
                        _keys(r),
                    )
                )
            else:
                accepted.append(r)
                state[file_id] = (r["version"], name)
        latest = {r["file_id"]: r for r in accepted}  # only a file's newest state needs its members written
        for file_id, r in latest.items():
            current = self.find_file(file_id)
            self.db["files"].upsert(file_row(r), pk="id")
            if current and r["parent"] == current["version"] and not r["removed"] and r["operation"] != "restore":
                start = current["conversation_count"]  # the same members, then those it added
            else:
                self.db.execute("delete from members where file_id = ?", [file_id])
                start = 0
            self._insert_members(file_id, start, members_after(r["members"], start))
        self.db["versions"].insert_all((_version_row(r) for r in accepted), ignore=True)
        return refused

    def _insert_members(self, file_id: str, start: int, members: Iterable[dict]) -> None:
        # executemany, not insert_all: a file of 10,000 conversations is rewritten by every
        # command that indexes a new version of it, and sqlite-utils' per-value work was most
        # of an add's time.
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


def _ids_starting(db: "sqlite_utils.Database", table: str, column: str, prefix: str) -> list[str]:
    # A range on the primary key (ids are lower case): no LIKE escaping, uses the index.
    return [
        row[0]
        for row in db.execute(
            f"select {column} from {table} where {column} >= ? and {column} < ?", [prefix, prefix + "\uffff"]
        )
    ]
