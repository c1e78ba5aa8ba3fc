"""Which conversations a command names: ids from a file, the command line or a batch."""

import sys
from collections import Counter
from collections.abc import Iterable

from trainfiles.core.enriched import UUID_RE
from trainfiles.core.prefixes import MIN_LENGTH, looks_like
from trainfiles.errors import Conflict, InvalidInput, NotFound


def parse_ids(lines: Iterable[str], source: str) -> list[str]:
    """Ids or id prefixes in order, lower-cased; blank lines, `#` comments and a leading BOM skipped.

    Every malformed line is named in one InvalidInput.
    """
    ids, bad = [], []
    for number, line in enumerate(lines, 1):
        text = line.removeprefix("\ufeff").strip() if number == 1 else line.strip()
        if not text or text.startswith("#"):
            continue
        if not (UUID_RE.fullmatch(text) or looks_like(text)):
            bad.append(f"{source} line {number}: {text!r}")
            continue
        ids.append(text.lower())
    if bad:
        raise InvalidInput(
            "not a conversation id: ", bad, suffix=f" (an id, or a unique prefix of {MIN_LENGTH} characters or more)"
        )
    return ids


def read_ids_file(path: str) -> list[str]:
    """Ids from a file, or from standard input for `-`."""
    if path == "-":
        return parse_ids(sys.stdin, "stdin")
    try:
        with open(path, encoding="utf-8") as f:
            return parse_ids(f.read().splitlines(), path)
    except FileNotFoundError:
        raise NotFound(f"ids file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read ids file {path}: {e}") from None


def require_unique(ids: list[str]) -> None:
    """Refuse a request that names a conversation twice."""
    twice = [cid for cid, n in Counter(ids).items() if n > 1]
    if twice:
        raise Conflict("conversation ids given more than once: ", twice)
