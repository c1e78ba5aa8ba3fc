"""Catalog schema, as numbered migrations. Never edit one that has landed: add the next."""

import importlib
import sys


def _without_dataframes():
    """sqlite_utils, without the pandas and numpy it imports when they are installed (half a
    second in a trainer's environment, for column types we never store)."""
    absent = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # makes `import` raise ImportError, which sqlite_utils expects
    try:
        return importlib.import_module("sqlite_utils")
    finally:
        for name in absent:
            del sys.modules[name]


sqlite_utils = _without_dataframes()
Database = sqlite_utils.Database
migrations = sqlite_utils.Migrations("trainfiles")


@migrations()
def m001_initial(db: Database) -> None:
    db["conversations"].create(
        {
            "conversation_id": str,
            "enrichment_status": str,
            "enriched_file_path": str,
            "batch_job_id": str,
            "persona_key": str,
            "emotional_arc_key": str,
            "topic_key": str,
            "quality_score": float,
            "empathy_score": float,
            "clarity_score": float,
            "appropriateness_score": float,
            "brand_voice_alignment": float,
            "created_at": str,
            "tier": str,
            "human_reviewed": bool,
            "invalid_reason": str,
            # JSON list of the columns a manifest set: a later scan must not overwrite them.
            "manifest_fields": str,
            "registered_at": str,
            "updated_at": str,
        },
        pk="conversation_id",
    )
    db["conversations"].create_index(["enrichment_status"])
    db["conversations"].create_index(["batch_job_id"])

    db["batch_items"].create(
        {"batch_job_id": str, "conversation_id": str},
        pk=("batch_job_id", "conversation_id"),
        foreign_keys=[("conversation_id", "conversations", "conversation_id")],
    )
    db["batch_items"].create_index(["conversation_id"])

    db["training_files"].create(
        {
            "id": str,
            "name": str,
            "description": str,
            "json_file_path": str,
            "jsonl_file_path": str,
            "storage_bucket": str,
            "conversation_count": int,
            "total_training_pairs": int,
            "json_file_size": int,
            "jsonl_file_size": int,
            "json_sha256": str,
            "jsonl_sha256": str,
            "avg_quality_score": float,
            "min_quality_score": float,
            "max_quality_score": float,
            "human_reviewed_count": int,
            "scaffolding_distribution": str,
            "target_model": str,
            "vertical": str,
            "status": str,
            "last_updated_at": str,
            "created_by": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"name", "status", "created_by", "created_at"},
    )
    db["training_files"].create_index(["name"], unique=True)
    db["training_files"].create_index(["status", "created_at"])

    db["training_file_members"].create(
        {
            "training_file_id": str,
            "conversation_id": str,
            "position": int,
            "added_at": str,
            "added_by": str,
            "source_path": str,
            "source_sha256": str,
            # The values statistics are computed from, as recorded when the member was added.
            "quality_score": float,
            "human_reviewed": bool,
            "persona_key": str,
            "emotional_arc_key": str,
            "topic_key": str,
            "training_pairs": int,
        },
        pk=("training_file_id", "conversation_id"),
        foreign_keys=[
            ("training_file_id", "training_files", "id"),
            ("conversation_id", "conversations", "conversation_id"),
        ],
    )
    db["training_file_members"].create_index(["training_file_id", "position"], unique=True)
    db["training_file_members"].create_index(["conversation_id"])


@migrations()
def m002_pending_restores(db: Database) -> None:
    # Previous outputs a failed add could not put back (the store went away mid-write),
    # kept until the next command on the file restores them.
    db["pending_restores"].create(
        {"url": str, "training_file_id": str, "data": bytes},
        pk="url",
        foreign_keys=[("training_file_id", "training_files", "id")],
    )
    db["pending_restores"].create_index(["training_file_id"])


@migrations()
def m003_index_of_the_store(db: Database) -> None:
    # From here the store's commit log is the truth and these tables are its index: the
    # latest version of every training file, its members, and every version's summary.
    # m001's training_files, training_file_members and pending_restores keep the files of
    # catalogs made before; the first command against a store publishes them there as
    # version 1 (legacy.py) and empties them.
    db["files"].create(
        {
            "id": str,
            "version": int,
            "sequence": int,
            "name": str,
            "description": str,
            "target_model": str,
            "vertical": str,
            "status": str,
            "created_by": str,
            "created_at": str,
            "updated_at": str,
            "last_updated_at": str,
            "conversation_count": int,
            "total_training_pairs": int,
            "json_key": str,
            "jsonl_key": str,
            "json_file_size": int,
            "jsonl_file_size": int,
            "json_sha256": str,
            "jsonl_sha256": str,
            "avg_quality_score": float,
            "min_quality_score": float,
            "max_quality_score": float,
            "human_reviewed_count": int,
            "scaffolding_distribution": str,
            "consultant_profile": str,
        },
        pk="id",
        not_null={"name", "status", "created_by", "created_at"},
    )
    # Not unique: names are unique in the store, but the index may pass through a moment
    # where a rename has not been applied yet.
    db["files"].create_index(["name"])
    db["files"].create_index(["status", "created_at"])

    db["members"].create(
        {
            "file_id": str,
            "conversation_id": str,
            "position": int,
            "source_path": str,
            "source_sha256": str,
            "batch_job_id": str,
            "created_at": str,
            "quality_score": float,
            "human_reviewed": bool,
            "persona_key": str,
            "emotional_arc_key": str,
            "topic_key": str,
            "training_pairs": int,
            "added_at": str,
            "added_by": str,
        },
        pk=("file_id", "conversation_id"),
        foreign_keys=[("file_id", "files", "id")],
    )
    db["members"].create_index(["file_id", "position"], unique=True)

    db["versions"].create(
        {
            "file_id": str,
            "version": int,
            "sequence": int,
            "parent": int,
            "operation": str,
            "created_at": str,
            "created_by": str,
            "added": str,
            "removed": str,
            "restored_from": int,
            "conversation_count": int,
            "total_training_pairs": int,
            "json_key": str,
            "jsonl_key": str,
            "json_file_size": int,
            "jsonl_file_size": int,
            "json_sha256": str,
            "jsonl_sha256": str,
        },
        pk=("file_id", "version"),
        foreign_keys=[("file_id", "files", "id")],
    )
    db["versions"].create_index(["sequence"], unique=True)

    # Which store the index mirrors, and the last commit of its log applied here.
    db["index_state"].create({"id": int, "store": str, "last_sequence": int}, pk="id")


@migrations()
def m004_trusted_outputs(db: Database) -> None:
    # Outputs this machine wrote, with their size, modification time and inode then: an add
    # copies a parent whose signature still matches without hashing it again (as git trusts
    # its index). `verify`, `export` and `check` always hash.
    db["trusted_outputs"].create({"key": str, "size": int, "mtime_ns": int, "inode": int}, pk="key")


@migrations()
def m005_records_read(db: Database) -> None:
    # Every record of the store's log this index has read, good or not: a record landing in
    # a gap below the newest one read is still found (index_state.last_sequence now says
    # "every record up to here is read"). Records that cannot be believed are kept apart with
    # the reason, the file they touch and the output keys they name, until a repair record
    # sets them aside.
    db["log_read"].create({"sequence": int}, pk="sequence")
    db.execute("insert into log_read (sequence) select sequence from versions")
    db["bad_records"].create(
        {"sequence": int, "file_id": str, "reason": str, "keys": str, "set_aside": bool}, pk="sequence"
    )
    db["bad_records"].create_index(["file_id"])


@migrations()
def m006_profile_set(db: Database) -> None:
    # Whether the file's consultant profile was given with `create --profile`: such a file
    # takes conversations whatever their own profile, at create and at every add.
    db["files"].add_column("profile_set", bool, not_null_default=False)


@migrations()
def m007_shared_registrations(db: Database) -> None:
    # The store's protocol versions, once read (its object is written once: never asked for
    # again); the sha256 of each registered source, which registration records carry; the
    # record of the store that last set a registration (none yet: the next scan or import
    # publishes it); and whether this machine registered the conversation at its path
    # itself (others' registrations are their word: `verify --sources` does not read there).
    db["index_state"].add_column("reader_version", int)
    db["index_state"].add_column("writer_version", int)
    db["conversations"].add_column("source_sha256", str)
    db["conversations"].add_column("source_record", int)
    db["conversations"].add_column("registered_here", bool, not_null_default=True)


@migrations()
def m008_own_values(db: Database) -> None:
    # Whether a registration holds values of this catalog's own that the store's records do
    # not give (it was registered here before a record named it, and that record gave fewer
    # columns or other values): while one does, this catalog writes no store checkpoint.
    db["conversations"].add_column("own_values", bool, not_null_default=False)
