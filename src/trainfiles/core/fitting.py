"""Fit a dialogue to a context length: rows that end at a reply, each within `max_tokens`.

Pure: a dialogue (chat messages, system first when present), the indices of the replies it
must train, and a function giving a row's length in tokens (the chat template applied).
Every trained reply is trained by exactly one window, whole; the window carries as much of
the dialogue before it as fits, from the start of an exchange, the system prompt always
kept. Earlier replies in a window are context: the caller marks them untrained.

A reply that does not fit even with only the system prompt and its own user message gets a
row of its own with that user message cut from its start, at a whitespace boundary, to the
longest tail that fits (no marker added): the question's end, closest to the reply, stays.
"""

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

_WORD_AFTER_SPACE = re.compile(r"(?<=\s)\S")  # where a tail at a whitespace boundary can start


class Trim(NamedTuple):
    """A row's user message cut from its start: its words kept, of how many, and the row's
    length with the message whole."""

    kept: int
    words: int
    tokens: int


class Window(NamedTuple):
    """One row: its messages, the indices (in them) of the replies it trains, and those
    replies' indices in the dialogue; `trim` when its user message was cut to fit."""

    messages: list[dict]
    trained: list[int]
    source: list[int]
    trim: Trim | None = None


class TooLong(NamedTuple):
    """A reply that cannot fit even with the system prompt and the last word of its user
    message: its index and the length of that shortest row."""

    index: int
    tokens: int


def fit(
    messages: Sequence[dict],
    trained: Sequence[int],
    length: Callable[[list[dict]], int],
    max_tokens: int,
    *,
    one_reply_per_row: bool = False,
) -> tuple[list[Window], list[TooLong]]:
    """Windows training every index of `trained` once, and the replies that cannot fit.

    `one_reply_per_row` gives each trained reply a window of its own (for trainers that can
    only train a row's last reply). A dialogue that fits whole stays one window.
    """
    head = list(messages[:1]) if messages and messages[0]["role"] == "system" else []
    starts = [
        i
        for i in range(len(head), len(messages))
        if messages[i]["role"] != "assistant" and (i == len(head) or messages[i - 1]["role"] == "assistant")
    ]

    def window(start: int, end: int) -> list[dict]:
        return head + list(messages[start : end + 1])

    pending = list(trained)
    if not one_reply_per_row and pending and length(list(messages)) <= max_tokens:
        return [Window(list(messages), pending, pending)], []
    windows, too_long = [], []
    while pending:
        first = pending[0]
        own = max((s for s in starts if s < first), default=len(head))
        tokens = length(window(own, first))
        if tokens > max_tokens:
            pending.pop(0)
            cut = _trimmed(head, messages[own : first + 1], length, max_tokens, tokens)
            if isinstance(cut, int):
                too_long.append(TooLong(first, cut))
            else:
                windows.append(Window(cut[0], [len(head) + 1], [first], cut[1]))
            continue
        count = 1
        while not one_reply_per_row and count < len(pending) and length(window(own, pending[count])) <= max_tokens:
            count += 1
        end = pending[count - 1]
        start = own
        for earlier in sorted((s for s in starts if s < own), reverse=True):
            if length(window(earlier, end)) > max_tokens:
                break
            start = earlier
        shift = len(head) - start
        windows.append(Window(window(start, end), [i + shift for i in pending[:count]], pending[:count]))
        del pending[:count]
    return windows, too_long


def _trimmed(
    head: list[dict], exchange: Sequence[dict], length: Callable[[list[dict]], int], max_tokens: int, whole: int
) -> tuple[list[dict], Trim] | int:
    """The row `head` + `exchange` (a user message and its reply) with the user message cut
    to its longest whitespace-boundary tail that fits, or the length of the shortest row
    tried when none fits (`whole`: the row's length uncut)."""
    user = exchange[0]
    text = user["content"] if isinstance(user["content"], str) else ""
    trimmable = len(exchange) == 2 and user["role"] == "user"
    cuts = [match.start() for match in _WORD_AFTER_SPACE.finditer(text)] if trimmable else []
    if not cuts:
        return whole

    def row(cut: int) -> list[dict]:
        return head + [{**user, "content": text[cut:]}, exchange[1]]

    shortest = length(row(cuts[-1]))
    if shortest > max_tokens:
        return shortest
    # Binary search for the first cut that fits: cuts[low] does not (low = -1: the whole
    # message), cuts[high] does. A later cut keeps less text, so (tokenizers merging
    # across words aside) no more tokens; the cut returned was measured to fit.
    low, high = -1, len(cuts) - 1
    while high - low > 1:
        middle = (low + high) // 2
        if length(row(cuts[middle])) <= max_tokens:
            high = middle
        else:
            low = middle
    kept = text[cuts[high] :]
    return row(cuts[high]), Trim(len(kept.split()), len(text.split()), whole)
