"""Closed vocabularies of the catalog (format-v4 section 2, cli.md)."""

ENRICHMENT_STATUSES = (
    "not_started",
    "validation_failed",
    "validated",
    "enrichment_in_progress",
    "enriched",
    "normalization_failed",
    "completed",
)

FILE_STATUSES = ("active", "archived", "processing", "failed")
# `list --sort`: the column, and whether the largest comes first. Ties keep newest first.
FILE_SORTS = {
    "newest": ("created_at", True),
    "oldest": ("created_at", False),
    "updated": ("updated_at", True),
    "name": ("name", False),
    "conversations": ("conversation_count", True),
    "pairs": ("total_training_pairs", True),
    "quality": ("avg_quality_score", True),
}

# The catalog's columns of a registered conversation, in order (a manifest's columns too).
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

MAX_NUMBER = 2**53  # of a sequence, a version or a count: what SQLite and every JSON reader hold exactly
