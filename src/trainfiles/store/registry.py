"""The catalog's registrations of conversations and their batches: what scans and imports
registered, applied from the store's registration records (a part of `Catalog`)."""

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from trainfiles.core.vocabulary import CONVERSATION_FIELDS
from trainfiles.store.rows import Changed, _changes, _conversation, _standing, _stored

if TYPE_CHECKING:
    from trainfiles.store.migrations import sqlite_utils

SAVE_BATCH = 5000  # conversation rows compared with the catalog's and written at a time


# By instant, not by text: "10:07:00.5Z" sorts before "10:07:00Z" as text.
IN_TIME_ORDER = "julianday(c.created_at), c.created_at, c.conversation_id"
# What a store checkpoint holds of a registration beyond its values.
_CHECKPOINTED = ("source_sha256", "registered_at", "updated_at", "source_record")
# A registration's values, as a record gives them.
_VALUES = (*CONVERSATION_FIELDS[1:], "invalid_reason", "source_sha256", "manifest_fields")


class Registrations:
    """Conversations, batches and how they were registered; `self.db` is the catalog's."""

    db: "sqlite_utils.Database"

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
        it, in order: each new or changed one, or one joining a batch, as given; one this
        store does not hold yet (registered here before registrations were shared, or for
        another store) as it stands here once `rows` are applied, so every machine ends
        with what this one has."""
        existing = self._registered(row["conversation_id"] for row in rows)
        new, changed, moved, unpublished = self._diff(rows, existing)
        published = {row["conversation_id"]: row for row in new}
        for row, changes in changed:
            old = existing[row["conversation_id"]]
            published[row["conversation_id"]] = row if old["source_record"] is not None else _standing(old, changes)
        for row in unpublished:
            published[row["conversation_id"]] = _standing(existing[row["conversation_id"]], {})
        joined = self._batch_pairs([row["conversation_id"] for row in rows])
        for row in rows:
            if row.get("batch_job_id") and (row["batch_job_id"], row["conversation_id"]) not in joined:
                published.setdefault(row["conversation_id"], row)
        order = [row["conversation_id"] for row in rows if row["conversation_id"] in published]
        return Changed([published[cid] for cid in order], len(new), len(changed), moved)

    def mark_registered_here(self, rows: list[dict]) -> None:
        """This machine's own scan or import found these conversations at these paths (inside
        a write): `verify --sources` may read them there."""
        self.db.conn.executemany(
            "update conversations set registered_here = 1 where conversation_id = ? and enriched_file_path = ?",
            ((row["conversation_id"], row["enriched_file_path"]) for row in rows if row.get("enriched_file_path")),
        )

    def registrations_state(self) -> list[dict]:
        """Every conversation the store's records registered, as a store checkpoint holds it."""
        batches: dict[str, list[str]] = {}
        for batch, cid in self.db.execute("select batch_job_id, conversation_id from batch_items order by 1"):
            batches.setdefault(cid, []).append(batch)
        return [
            {
                **_conversation(row),
                **{k: row[k] for k in _CHECKPOINTED},
                "batches": batches.get(row["conversation_id"], []),
            }
            for row in self.db.query(
                "select * from conversations where source_record is not null order by conversation_id"
            )
        ]

    def load_registrations(self, conversations: list[dict]) -> None:
        """Take a store checkpoint's registrations (inside a write) over this catalog's:
        as the records they stand for would. A conversation still found where this
        machine's own scan found it stays registered here."""
        columns = [*CONVERSATION_FIELDS, "invalid_reason", "manifest_fields", *_CHECKPOINTED]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        self.db.conn.executemany(
            f"insert into conversations ({', '.join(columns)}, registered_here) values ({', '.join('?' * len(columns))}, 0)"
            f" on conflict (conversation_id) do update set {updates}, own_values = 0, registered_here = conversations.registered_here"
            " and conversations.enriched_file_path is excluded.enriched_file_path",
            ([_stored(c).get(k) for k in columns] for c in conversations),
        )
        self.db.conn.executemany(
            "insert or ignore into batch_items (batch_job_id, conversation_id) values (?, ?)",
            ((batch, c["conversation_id"]) for c in conversations for batch in c["batches"]),
        )

    def _batch_pairs(self, ids: list[str]) -> set[tuple[str, str]]:
        pairs = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = f"select batch_job_id, conversation_id from batch_items where conversation_id in ({','.join('?' * len(chunk))})"
            pairs.update((b, c) for b, c in self.db.execute(sql, chunk))
        return pairs

    def _diff(
        self, rows: list[dict], existing: dict[str, dict]
    ) -> tuple[list[dict], list[tuple[dict, dict]], list[dict], list[dict]]:
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
        existing = self._registered(row["conversation_id"] for row in rows)
        new, changed, _, _ = self._diff(rows, existing)
        self.db.conn.executemany(
            "update conversations set own_values = 1 where conversation_id = ?",
            ((cid,) for cid in _kept_own_values(rows, existing, {row["conversation_id"]: c for row, c in changed})),
        )
        table = self.db["conversations"]
        for row, changes in changed:
            # Who registered a conversation at its path changes only with the path.
            moved = {"registered_here": here} if "enriched_file_path" in changes else {}
            table.update(row["conversation_id"], {**_stored(changes), "updated_at": now, **moved})
        # executemany inside the caller's transaction: sqlite-utils' insert_all spent a
        # third of a large scan preparing values it can pass through as they are.
        columns = [*CONVERSATION_FIELDS, "invalid_reason", "manifest_fields", "source_sha256"]
        self.db.conn.executemany(
            f"insert into conversations ({', '.join(columns)}, registered_at, updated_at, registered_here) "
            f"values ({', '.join('?' * (len(columns) + 3))})",
            ((*map(_stored(row).get, columns), now, now, here) for row in new),
        )
        # Held by the store from now on, unless values only this catalog holds (a manifest's,
        # from before registrations were shared) overrode the record's: those are published
        # by the next scan or import here.
        self.db.conn.executemany(
            "update conversations set source_record = ? where conversation_id = ?",
            (
                (sequence, row["conversation_id"])
                for row in rows
                if (old := existing.get(row["conversation_id"])) is None
                or old["source_record"] is not None
                or not _overridden(old, row)
            ),
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


def _kept_own_values(rows: list[dict], existing: dict[str, dict], changes: dict[str, dict]) -> Iterator[str]:
    """The conversations registered here before any record of this store named them whose
    values, once `rows` (a record's) apply, are not what that record alone gives."""
    for row in rows:
        old = existing.get(row["conversation_id"])
        if old is None or old["source_record"] is not None:
            continue
        merged = {**old, **changes.get(row["conversation_id"], {})}
        alone = {**row, "manifest_fields": sorted(row.get("manifest_fields") or ())}
        if any(merged.get(k) != alone.get(k) for k in _VALUES):
            yield row["conversation_id"]


def _overridden(old: dict, row: dict) -> bool:
    """Whether values a manifest set here keep `row`'s own from applying."""
    kept = set(old["manifest_fields"]) - set(row.get("manifest_fields") or ())
    return any(key in row and row[key] != old.get(key) for key in kept)


def _ids_starting(db: "sqlite_utils.Database", table: str, column: str, prefix: str) -> list[str]:
    # A range on the primary key (ids are lower case): no LIKE escaping, uses the index.
    return [
        row[0]
        for row in db.execute(
            f"select {column} from {table} where {column} >= ? and {column} < ?", [prefix, prefix + "\uffff"]
        )
    ]
