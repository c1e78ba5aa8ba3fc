"""Fit a dialogue to a context length: rows that end at a reply, each within `max_tokens`.

Pure: a dialogue (chat messages, system first when present), the indices of the replies it
must train, and a function giving a row's length in tokens (the chat template applied).
Every trained reply is trained by exactly one window, whole; the window carries as much of
the dialogue before it as fits, from the start of an exchange, the system prompt always
kept. Earlier replies in a window are context: the caller marks them untrained.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple


class Window(NamedTuple):
    """One row: its messages, the indices (in them) of the replies it trains, and those
    replies' indices in the dialogue."""

    messages: list[dict]
    trained: list[int]
    source: list[int]


class TooLong(NamedTuple):
    """A reply that cannot fit even with its own user message alone: its index and length."""

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
            too_long.append(TooLong(first, tokens))
            pending.pop(0)
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
