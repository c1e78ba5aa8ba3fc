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
