"""Catalog schema, as numbered migrations. Never edit one that has landed: add the next."""

from sqlite_utils import Database, Migrations

migrations = Migrations("trainfiles")


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
