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
