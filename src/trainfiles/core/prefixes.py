"""Ids by a unique prefix, as git, docker and gh accept them: the one rule for training files
and conversations."""

from collections.abc import Callable

from trainfiles.core.enriched import UUID_RE
from trainfiles.errors import Conflict

MIN_LENGTH = 4
_SHAPE = "00000000-0000-0000-0000-000000000000"


def looks_like(text: str) -> bool:
    """Whether `text` can be an id prefix: 4 characters or more of a UUID's shape, not a whole id."""
    return MIN_LENGTH <= len(text) < len(_SHAPE) and bool(UUID_RE.fullmatch(text + _SHAPE[len(text) :]))


def expand(refs: list[str], starting: Callable[[str], list[str]], what: str) -> list[str]:
    """Each reference in full: a prefix becomes the one id it starts (`starting(prefix)` lists
    them); anything else stays as given, so an unknown prefix is reported like an unknown id.
    Every ambiguous prefix is named, with its matches, in one Conflict."""
    full, ambiguous = [], []
    for ref in refs:
        matches = sorted(starting(ref.lower())) if looks_like(ref) else []
        if len(matches) > 1:
            ambiguous.append(f"{ref!r} starts {', '.join(matches)}")
        full.append(matches[0] if len(matches) == 1 else ref)
    if ambiguous:
        raise Conflict(f"ambiguous {what} id prefix: " + "; ".join(ambiguous))
    return full
