"""Catalog rows from the store's records and from registrations, and back: the columns each
table keeps, in one place."""

import json
from typing import NamedTuple

from trainfiles.core.vocabulary import CONVERSATION_FIELDS

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


MEMBER_FIELDS = (
    "conversation_id",
    "source_path",
    "source_sha256",
    "batch_job_id",
    "created_at",
    *MEMBER_STAT_FIELDS,
    "added_at",
    "added_by",
)


def member_row(member: dict) -> dict:
    row = {k: member.get(k) for k in MEMBER_FIELDS}
    if row["human_reviewed"] is not None:
        row["human_reviewed"] = bool(row["human_reviewed"])
    return row


def file_row(r: dict) -> dict:
    """A commit record as the index's row of its file."""
    f, stats = r["file"], r["statistics"]
    quality = stats["quality_summary"]
    return {
        "id": r["file_id"],
        "version": r["version"],
        "sequence": r["sequence"],
        "name": f["name"],
        "description": f["description"],
        "target_model": f["target_model"],
        "vertical": f["vertical"],
        "status": f["status"],
        "created_by": f["created_by"],
        "created_at": f["created_at"],
        "updated_at": r["created_at"],
        "last_updated_at": f["last_updated"],
        "conversation_count": stats["total_conversations"],
        "total_training_pairs": stats["total_training_pairs"],
        **_output_columns(r["outputs"]),
        "avg_quality_score": quality["avg_quality_score"],
        "min_quality_score": quality["min_quality_score"],
        "max_quality_score": quality["max_quality_score"],
        "human_reviewed_count": quality["human_reviewed_count"],
        "scaffolding_distribution": json.dumps(stats["scaffolding_distribution"]),
        "consultant_profile": json.dumps(f["consultant_profile"]),
        "profile_set": bool(f.get("profile_set")),
    }


# A commit's `outputs` as columns, and back.
_OUTPUT_COLUMNS = {"key": "{}_key", "size": "{}_file_size", "sha256": "{}_sha256"}


def _keys(r: dict) -> list[str]:
    return [r["outputs"][kind]["key"] for kind in ("json", "jsonl")]


def _output_columns(outputs: dict) -> dict:
    return {column.format(kind): outputs[kind][field] for kind in outputs for field, column in _OUTPUT_COLUMNS.items()}


def outputs_of(row: dict) -> dict:
    """The `outputs` of a version from its row in `files` or `versions`."""
    return {
        kind: {field: row[column.format(kind)] for field, column in _OUTPUT_COLUMNS.items()}
        for kind in ("json", "jsonl")
    }


def _version_row(r: dict) -> dict:
    return {
        "file_id": r["file_id"],
        "version": r["version"],
        "sequence": r["sequence"],
        "parent": r["parent"],
        "operation": r["operation"],
        "created_at": r["created_at"],
        "created_by": r["created_by"],
        "added": json.dumps(r["added"]),
        "removed": json.dumps(r["removed"]),
        "restored_from": r.get("restored_from"),
        "conversation_count": r["statistics"]["total_conversations"],
        "total_training_pairs": r["statistics"]["total_training_pairs"],
        **_output_columns(r["outputs"]),
    }


def _version(row: dict) -> dict:
    return {**row, "added": json.loads(row["added"]), "removed": json.loads(row["removed"])}


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
    changes = {k: v for k, v in row.items() if k != "manifest_fields" and k not in protected and old.get(k) != v}
    fields = sorted(incoming | set(old["manifest_fields"]))
    if fields != old["manifest_fields"]:
        changes["manifest_fields"] = fields
    return changes


def _stored(row: dict) -> dict:
    if "manifest_fields" in row:
        return {**row, "manifest_fields": json.dumps(sorted(row["manifest_fields"]))}
    return row


class Changed(NamedTuple):
    """What registering rows would change (`Catalog.changed_conversations`)."""

    published: list[dict]
    registered: int
    updated: int
    moved: list[dict]


def _standing(old: dict, changes: dict) -> dict:
    """A registration as it stands here with `changes` applied, as a record holds it."""
    row = {k: v for k, v in old.items() if k != "source_record"}
    row.update(changes)
    if not row["manifest_fields"]:
        del row["manifest_fields"]
    return row


# A store checkpoint's rows (core/checkpoints.py) from the index's, and back: the same
# columns, with JSON values as JSON rather than as text.
_JSON_COLUMNS = ("scaffolding_distribution", "consultant_profile", "added", "removed", "manifest_fields")


def to_checkpoint(row: dict, drop: tuple[str, ...] = ()) -> dict:
    out = {
        k: (json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v) for k, v in row.items() if k not in drop
    }
    for flag in ("profile_set", "human_reviewed", "set_aside"):
        if flag in out and out[flag] is not None:
            out[flag] = bool(out[flag])
    return out


def from_checkpoint(row: dict) -> dict:
    return {k: (json.dumps(v) if k in _JSON_COLUMNS else v) for k, v in row.items()}
