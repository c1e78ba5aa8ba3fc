"""The current time, which SOURCE_DATE_EPOCH pins for reproducible outputs and tests."""

import os
import re
from datetime import UTC, datetime, timedelta

from trainfiles.errors import InvalidInput

FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The extended ISO 8601 forms a database export writes; not the compact or week forms.
ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?")


def now() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return datetime.now(UTC)
    try:
        return datetime.fromtimestamp(int(epoch), UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(
            f"SOURCE_DATE_EPOCH must be whole seconds since 1970 up to year 9999, not {epoch!r}"
        ) from None


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


def normalize(value: str) -> str:
    """A date as YYYY-MM-DD, a date-time in UTC as YYYY-MM-DDTHH:MM:SS[.ffffff]Z: one form,
    so that dates in a file are right and batches sort in time order. ValueError for
    anything else, including a date-time whose UTC instant falls outside years 1 to 9999."""
    if not ISO_TIMESTAMP.fullmatch(value):
        raise ValueError(value)
    moment = datetime.fromisoformat(value)
    if len(value) == 10:
        return value
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    try:
        return utc(moment).strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    except OverflowError:
        raise ValueError(value) from None
