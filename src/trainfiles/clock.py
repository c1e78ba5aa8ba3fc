"""The current time, which SOURCE_DATE_EPOCH pins for reproducible outputs and tests."""

import os
from datetime import UTC, datetime


def now() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)


def stamp() -> str:
    """Now as ISO 8601 UTC to the second, ending in Z."""
    return now().strftime("%Y-%m-%dT%H:%M:%SZ")
