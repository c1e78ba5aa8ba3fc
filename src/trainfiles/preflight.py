"""Pre-flight check of trainer rows: the problems a trainer would choke on or silently learn.

Streams: per row it keeps a token count and hashes (for duplicates), never the row. Pure
apart from loading a tokenizer from a local path when one is given.

Token counts are content tokens (a chat template adds a few per message). Without a
tokenizer they are estimated as ceil(chars / 4), the usual rule of thumb for English with
BPE tokenizers. Loss tokens are the assistant messages a trainer puts loss on: every
assistant message (TRL `assistant_only_loss`, Axolotl and LLaMA-Factory defaults), except in
prompt-completion rows where only the completion is trained (`completion_only_loss`).
"""

import hashlib
import math
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from .errors import InvalidInput, NotFound
from .trainer_formats import parse

ESTIMATE = "estimate: ceil(chars/4)"
ERRORS = {
    "no_assistant_reply": "row does not end with an assistant reply",
    "empty_content": "empty or whitespace-only content",
    "roles_not_alternating": "roles not alternating user/assistant",
    "duplicate_user_turn": "same user message twice in a row",
    "missing_system_prompt": "missing or empty system prompt",
    "non_string_content": "content that is not a string",
}
WARNINGS = {
    "over_max_tokens": "rows over the token limit",
    "duplicate_rows": "exact duplicate rows",
    "duplicate_replies": "trained replies already trained in an earlier row",
}
FIRST_ROWS = 5  # row numbers listed per category


class _Hits:
    """A count and the first few row numbers (1-based) of one category."""

    def __init__(self):
        self.count = 0
        self.rows: list[int] = []

    def add(self, number: int) -> None:
        self.count += 1
        if len(self.rows) < FIRST_ROWS:
            self.rows.append(number)

    def report(self) -> dict:
        return {"count": self.count, "rows": self.rows}


def check(rows: Iterable[dict], fmt: str, *, max_tokens: int = 1024, tokenizer_path: str | None = None) -> dict:
    """A JSON-ready report on trainer rows in `fmt`; `ok` is false when any error was found.

    `tokenizer_path` is a `tokenizer.json` or a folder holding one; without it tokens are
    estimated. Row numbers are 1-based positions in `rows` (lines of a header-less export).
    """
    count = _token_counter(tokenizer_path)
    errors = {category: _Hits() for category in ERRORS}
    warnings = {category: _Hits() for category in WARNINGS}
    seen_rows: set[bytes] = set()
    seen_replies: set[bytes] = set()
    lengths = array("q")
    loss = {"total": 0, "unique": 0, "repeated": 0}
    for number, row in enumerate(rows, 1):
        messages, trained_from = parse(row, fmt)
        for category in problems(messages):
            errors[category].add(number)
        tokens = [count(message["content"]) for message in messages]
        lengths.append(sum(tokens))
        if lengths[-1] > max_tokens:
            warnings["over_max_tokens"].add(number)
        if not _first_time(seen_rows, orjson.dumps(row, option=orjson.OPT_SORT_KEYS)):
            warnings["duplicate_rows"].add(number)
        repeated = False
        for index in range(trained_from, len(messages)):
            if messages[index]["role"] != "assistant":
                continue
            loss["total"] += tokens[index]
            if _first_time(seen_replies, _text(messages[index]["content"]).encode()):
                loss["unique"] += tokens[index]
            else:
                loss["repeated"] += tokens[index]
                repeated = True
        if repeated:
            warnings["duplicate_replies"].add(number)
    return {
        "format": fmt,
        "rows": len(lengths),
        "ok": not any(hits.count for hits in errors.values()),
        "errors": {category: hits.report() for category, hits in errors.items()},
        "warnings": {category: hits.report() for category, hits in warnings.items()},
        "max_tokens": max_tokens,
        "tokens": _statistics(lengths),
        "loss_tokens": loss,
        "tokenizer": tokenizer_path or ESTIMATE,
    }


def problems(messages: list[dict]) -> set[str]:
    """The error categories of one row's messages (system first when present)."""
    found = set()
    has_system = bool(messages) and messages[0]["role"] == "system"
    body = messages[1:] if has_system else messages
    if not has_system or not _text(messages[0]["content"]).strip():
        found.add("missing_system_prompt")
    for message in messages:
        if not isinstance(message["content"], str):
            found.add("non_string_content")
        elif not message["content"].strip() and message["role"] != "system":
            found.add("empty_content")
    if not body or body[-1]["role"] != "assistant":
        found.add("no_assistant_reply")
    if (body and body[0]["role"] != "user") or any(m["role"] not in ("user", "assistant") for m in body):
        found.add("roles_not_alternating")
    for before, after in zip(body, body[1:]):
        if before["role"] != after["role"]:
            continue
        # The naive conversion's mistake: the history's last user turn written again.
        if after["role"] == "user" and after["content"] == before["content"]:
            found.add("duplicate_user_turn")
        else:
            found.add("roles_not_alternating")
    return found


def _token_counter(tokenizer_path: str | None) -> Callable[[object], int]:
    if tokenizer_path is None:
        return lambda content: math.ceil(len(_text(content)) / 4)
    path = Path(tokenizer_path)
    path = path / "tokenizer.json" if path.is_dir() else path
    if not path.is_file():
        raise NotFound(f"tokenizer not found: {path}")
    try:
        from tokenizers import Tokenizer  # optional: only real token counts need it
    except ImportError:
        raise InvalidInput(
            "counting with a tokenizer needs the tokenizers package: pip install 'trainfiles[trainers]'"
        ) from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for an unreadable file
        raise InvalidInput(f"not a tokenizer file: {path}: {e}") from None
    return lambda content: len(tokenizer.encode(_text(content), add_special_tokens=False).ids)


def _statistics(lengths: array) -> dict:
    """min, mean, nearest-rank p50 and p90, max; None for no rows."""
    if not lengths:
        return dict.fromkeys(("min", "mean", "p50", "p90", "max"))
    ordered = sorted(lengths)
    return {
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": _nearest_rank(ordered, 0.5),
        "p90": _nearest_rank(ordered, 0.9),
        "max": ordered[-1],
    }


def _nearest_rank(ordered: list[int], fraction: float) -> int:
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _first_time(seen: set[bytes], data: bytes) -> bool:
    """Record a 16-byte digest of `data`; False when it was already there."""
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if digest in seen:
        return False
    seen.add(digest)
    return True


def _text(content: object) -> str:
    return content if isinstance(content, str) else ""
