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

from sqlite_utils import Database

from .errors import NotFound, StorageUnavailable
from .migrations import migrations

CONVERSATION_FIELDS = (
    "conversation_id",
    "enrichment_status",
    "enriched_file_path",
    "batch_job_id",
    "persona_key",
    "emotional_arc_key",
    "topic_key",
    "quality_score",
    "empathy_score",
    "clarity_score",
    "appropriateness_score",
    "brand_voice_alignment",
    "created_at",
    "tier",
    "human_reviewed",
)

RECORD_FIELDS = (
    "id",
    "name",
    "description",
    "json_file_path",
    "jsonl_file_path",
    "storage_bucket",
    "conversation_count",
    "total_training_pairs",
    "json_file_size",
    "jsonl_file_size",
    "avg_quality_score",
    "min_quality_score",
    "max_quality_score",
    "human_reviewed_count",
    "scaffolding_distribution",
    "status",
    "last_updated_at",
    "created_by",
    "created_at",
    "updated_at",
)

MEMBER_STAT_FIELDS = (
    "quality_score",
    "human_reviewed",
    "persona_key",
    "emotional_arc_key",
    "topic_key",
    "training_pairs",
)

BUSY_TIMEOUT_MS = 30_000
# By instant, not by text: "10:07:00.5Z" sorts before "10:07:00Z" as text.
IN_TIME_ORDER = "julianday(c.created_at), c.created_at, c.conversation_id"


class Catalog:
    """A catalog file, migrated to the current schema on open.

    Only registering conversations creates a catalog (`create=True`); every other command
    reports a missing one, so a mistyped path is an error, not a new empty catalog.
    """

    def __init__(self, path: str, create: bool = False):
        if not create and not Path(path).exists():
            raise NotFound(f"no catalog at {path}: register conversations first with `trainfiles conversations scan` or `import`")
        self.path = path
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = Database(path, execute_plugins=False)
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
    def undoable(self) -> Iterator[None]:
        """Inside a write transaction: on an error, undo only what was done in here and
        re-raise, so the transaction can still record something and commit."""
        self.db.execute("SAVEPOINT undoable")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO undoable")
            self.db.execute("RELEASE undoable")
            raise
        self.db.execute("RELEASE undoable")

    # Conversations

    def conversations(self, ids: Iterable[str]) -> dict[str, dict]:
        """The records of the given conversation ids that exist, by id."""
        ids = list(ids)
        found: dict[str, dict] = {}
        # SQLite caps bound parameters; chunk so a request of any size works.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(
                f"select * from conversations where conversation_id in ({marks})", chunk
            ):
                found[row["conversation_id"]] = _conversation(row)
        return found

    def list_conversations(self, status: str | None = None, batch: str | None = None) -> list[dict]:
        """Conversation records, filtered by status and batch, in created_at, id order."""
        where, params = [], []
        if status:
            where.append("c.enrichment_status = ?")
            params.append(status)
        if batch:
            where.append(
                "c.conversation_id in (select conversation_id from batch_items where batch_job_id = ?)"
            )
            params.append(batch)
        sql = "select c.* from conversations c"
        if where:
            sql += " where " + " and ".join(where)
        sql += f" order by {IN_TIME_ORDER}"
        return [_conversation(row) for row in self.db.query(sql, params)]

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

    def save_conversations(self, rows: list[dict], now: str) -> tuple[int, int]:
        """Insert or update conversation rows; returns (registered, updated).

        A row's `manifest_fields` names the columns it sets from a manifest. Values a
        manifest set earlier are kept unless this row also comes from a manifest.
        Unchanged rows are left alone and counted in neither.
        """
        existing = self.conversations(row["conversation_id"] for row in rows)
        registered = updated = 0
        table = self.db["conversations"]
        for row in rows:
            cid = row["conversation_id"]
            old = existing.get(cid)
            if old is None:
                table.insert({**_stored(row), "registered_at": now, "updated_at": now})
                registered += 1
            else:
                changes = _changes(old, row)
                if changes:
                    table.update(cid, {**_stored(changes), "updated_at": now})
                    updated += 1
            if row.get("batch_job_id"):
                self.db["batch_items"].insert(
                    {"batch_job_id": row["batch_job_id"], "conversation_id": cid}, ignore=True
                )
        return registered, updated

    # Training files

    def find_file(self, ref: str) -> dict | None:
        """A training file row by id or by name."""
        rows = list(
            self.db.query("select * from training_files where id = ? or name = ?", [ref, ref])
        )
        return rows[0] if rows else None

    def name_taken(self, name: str) -> bool:
        return bool(list(self.db.query("select 1 from training_files where name = ?", [name])))

    def list_files(self, status: str | None) -> list[dict]:
        """Training file rows, newest first; all statuses when status is None."""
        sql = "select * from training_files"
        params = []
        if status:
            sql += " where status = ?"
            params.append(status)
        return list(self.db.query(sql + " order by created_at desc, name", params))

    def members(self, file_id: str) -> list[dict]:
        """A training file's members in file order."""
        return list(
            self.db.query(
                "select * from training_file_members where training_file_id = ? order by position",
                [file_id],
            )
        )

    def member_ids(self, file_id: str) -> list[str]:
        return [m["conversation_id"] for m in self.members(file_id)]

    def save_file(self, row: dict, new_members: list[dict]) -> None:
        """Insert or replace a training file row and append its new members."""
        self.db["training_files"].upsert(row, pk="id")
        self.db["training_file_members"].insert_all(new_members)

    def save_restores(self, file_id: str, restores: dict[str, bytes]) -> None:
        """Keep previous outputs that could not be put back, by URL."""
        self.db["pending_restores"].upsert_all(
            [{"url": url, "training_file_id": file_id, "data": data} for url, data in restores.items()], pk="url"
        )

    def pending_restores(self, file_id: str) -> dict[str, bytes]:
        return {
            row["url"]: row["data"]
            for row in self.db.query("select url, data from pending_restores where training_file_id = ?", [file_id])
        }

    def clear_restores(self, file_id: str) -> None:
        self.db.execute("delete from pending_restores where training_file_id = ?", [file_id])

    def set_status(self, file_id: str, status: str, now: str) -> None:
        self.db["training_files"].update(file_id, {"status": status, "updated_at": now})


def _conversation(row: dict) -> dict:
    record = {k: row.get(k) for k in CONVERSATION_FIELDS}
    if record["human_reviewed"] is not None:
        record["human_reviewed"] = bool(record["human_reviewed"])
    record["invalid_reason"] = row.get("invalid_reason")
    record["manifest_fields"] = json.loads(row.get("manifest_fields") or "[]")
    return record


def _changes(old: dict, row: dict) -> dict:
    """The columns of `row` that differ from `old`; values a manifest set win over derived ones."""
    incoming = set(row.get("manifest_fields") or ())
    protected = set(old["manifest_fields"]) - incoming
    changes = {
        k: v
        for k, v in row.items()
        if k != "manifest_fields" and k not in protected and old.get(k) != v
    }
    fields = sorted(incoming | set(old["manifest_fields"]))
    if fields != old["manifest_fields"]:
        changes["manifest_fields"] = fields
    return changes


def _stored(row: dict) -> dict:
    if "manifest_fields" in row:
        return {**row, "manifest_fields": json.dumps(sorted(row["manifest_fields"]))}
    return row
