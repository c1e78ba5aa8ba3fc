"""The current time, which SOURCE_DATE_EPOCH pins for reproducible outputs and tests."""

import os
from datetime import UTC, datetime, timedelta

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)


def stamp() -> str:
    """Now as ISO 8601 UTC to the second, ending in Z."""
    return now().strftime(FORMAT)


def stamp_after(previous: str) -> str:
    """Now, or one second after `previous` when now is not later: a stamp that must change
    at every update still does for two updates within one second (or a pinned clock)."""
    earliest = utc(datetime.fromisoformat(previous)) + timedelta(seconds=1)
    return max(now().replace(microsecond=0), earliest).strftime(FORMAT)


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; one without a time zone is taken to be UTC already, as the
    platform writes its timestamps."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
