"""Pre-flight check of trainer rows: the problems a trainer would choke on or silently learn.

Streams: per row it keeps a token count and hashes (for duplicates), never the row.

Token counts are of the row with the chat template applied (`tokenizing.Tokens`; without a
tokenizer, estimated as one token per 4 characters). Loss tokens are those of the assistant
messages a trainer puts loss on: every assistant message (TRL `assistant_only_loss`, Axolotl
and LLaMA-Factory defaults) but those with `weight: 0`, and in prompt-completion rows only
the completion (`completion_only_loss`).

The cost of a context length of `max_tokens`, in loss tokens and rows:
- `truncating`: a trainer that cuts every row after `max_tokens` tokens (TRL's `max_length`,
  `truncation_mode="keep_start"`), then drops the rows left with no loss;
- `dropping`: a trainer that drops every row longer than `max_tokens` (Axolotl's
  `sequence_len` with `excess_length_strategy: drop`, its default);
- `fitted`: `export --max-tokens`, which trains every reply once, whole, in rows that fit,
  cuts the user message of a reply too long with it whole (`user_turns_trimmed`), and
  leaves out only a reply that cannot fit even with the last word of it.
"""

import hashlib
import math
from array import array
from collections.abc import Iterable

import orjson

from trainfiles.core import fitting
from trainfiles.core.tokenizing import Tokens
from trainfiles.core.trainer_formats import parse

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
    "history_mismatch": "history replies that differ from the reply trained for that turn",
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


def check(
    rows: Iterable[dict],
    fmt: str,
    *,
    max_tokens: int = 1024,
    tokens: Tokens | None = None,
    history_mismatches: Iterable[int] = (),
) -> dict:
    """A JSON-ready report on trainer rows in `fmt`; `ok` is false when any error was found.

    `tokens` renders and counts rows (default: the estimate). `history_mismatches` are
    numbers of rows whose history differs from the replies trained (found on the source
    rows, see `trainer_formats.history_mismatches`). Row numbers are 1-based positions in
    `rows` (lines of a header-less export).
    """
    tokens = tokens or Tokens(None)
    errors = {category: _Hits() for category in ERRORS}
    warnings = {category: _Hits() for category in WARNINGS}
    seen_rows: set[bytes] = set()
    seen_replies: set[bytes] = set()
    lengths = array("q")
    loss = {"total": 0, "unique": 0, "repeated": 0}
    cost = {
        "truncating": {"kept": 0, "lost": 0, "rows_left_without_loss": 0},
        "dropping": {"kept": 0, "lost": 0, "rows_dropped": 0},
        "fitted": {"kept": 0, "lost": 0, "replies_too_long": 0, "user_turns_trimmed": 0},
    }
    for number, row in enumerate(rows, 1):
        messages, trained = parse(row, fmt)
        for category in problems(messages):
            errors[category].add(number)
        length, positions = tokens.encode(messages, trained)
        lengths.append(length)
        over = length > max_tokens
        if over:
            warnings["over_max_tokens"].add(number)
        if not _first_time(seen_rows, _identity(row)):
            warnings["duplicate_rows"].add(number)
        row_loss = sum(len(p) for p in positions.values())
        kept = sum(1 for p in positions.values() for position in p if position < max_tokens)
        _tally(cost["truncating"], kept, row_loss - kept, "rows_left_without_loss", row_loss > 0 and kept == 0)
        _tally(cost["dropping"], 0 if over else row_loss, row_loss if over else 0, "rows_dropped", over)
        too_long, trimmed = _fitted(messages, trained, tokens, max_tokens) if over else (set(), set())
        repeated = False
        for index in trained:
            loss["total"] += len(positions[index])
            if _first_time(seen_replies, _text(messages[index]["content"]).encode()):
                loss["unique"] += len(positions[index])
                fits = index not in too_long
                _tally(
                    cost["fitted"],
                    len(positions[index]) * fits,
                    len(positions[index]) * (not fits),
                    "replies_too_long",
                    not fits,
                )
                cost["fitted"]["user_turns_trimmed"] += int(index in trimmed)
            else:
                loss["repeated"] += len(positions[index])
                repeated = True
        if repeated:
            warnings["duplicate_replies"].add(number)
    for number in history_mismatches:  # read after the rows: it may be filled as they stream
        warnings["history_mismatch"].add(number)
    return {
        "format": fmt,
        "rows": len(lengths),
        "ok": not any(hits.count for hits in errors.values()),
        "errors": {category: hits.report() for category, hits in errors.items()},
        "warnings": {category: hits.report() for category, hits in warnings.items()},
        "max_tokens": max_tokens,
        "tokens": _statistics(lengths),
        "loss_tokens": loss,
        "length_cost": cost,
        "tokenizer": tokens.name,
    }


def _identity(row: object) -> bytes:
    """What makes two rows duplicates: everything but the `metadata` trainfiles adds."""
    if isinstance(row, dict) and "metadata" in row:
        row = {key: value for key, value in row.items() if key != "metadata"}
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _tally(entry: dict, kept: int, lost: int, counter: str, counted: bool) -> None:
    entry["kept"] += kept
    entry["lost"] += lost
    entry[counter] += int(counted)


def _fitted(messages: list[dict], trained: list[int], tokens: Tokens, max_tokens: int) -> tuple[set[int], set[int]]:
    """The trained replies of an over-long row that no fitted row could hold, and those a
    fitted row holds only with their user message cut."""
    windows, too_long = fitting.fit(messages, trained, tokens.length, max_tokens, one_reply_per_row=True)
    return {reply.index for reply in too_long}, {w.source[0] for w in windows if w.trim is not None}


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


def warned(report: dict) -> dict[str, int]:
    """The warning categories that occurred, with their counts."""
    return {category: hits["count"] for category, hits in report["warnings"].items() if hits["count"]}


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
