"""Trainer-ready rows from v4 JSONL rows: messages, prompt-completion, sharegpt and alpaca.

Pure: rows in, rows out. The input is streamed: rows of one conversation are consecutive and
in turn order, and only one conversation's rows are held at a time.

Every format is built from one *dialogue* per pair: the system prompt, the history, the
current user message once (the platform's history already ends with it) and the reply.

- `conversation` rows (default, except prompt-completion): one row per conversation, the
  last pair's dialogue, so with assistant-only loss every reply is trained exactly once. A
  pair whose dialogue a later pair does not extend (an edited or truncated history) keeps a
  row of its own, so no reply is ever dropped.
- `pair` rows: one row per reply, ending with it. With assistant-only loss the earlier
  replies in its history are trained again; prompt-completion has only this mode because
  its completion holds exactly the one reply.

With a `Fitting` (a context length and a way to measure a row), every row is fitted to it
(`fitting.fit`): a dialogue too long becomes several rows ending at a reply, and each reply is
trained by exactly one row (a reply too long with its whole user message, by a row of its own
with that message cut from its start). A context reply (before the replies a row trains) carries
`"weight": 0` in messages and sharegpt rows, a trained one `"weight": 1` (OpenAI's
convention; Axolotl's `message_field_training: weight`). prompt-completion, sharegpt and
alpaca rows train only their last reply, so they get one row per reply: a completion (TRL),
or the last turn as LLaMA-Factory trains it with `mask_history: true` (it ignores weights).

Odd data never raises: the row is written as it is (a history that does not end with the
current input gets it appended; consecutive same roles stay) and `preflight` reports it.
"""

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from typing import NamedTuple

from trainfiles.core import fitting

FORMATS = ("messages", "prompt-completion", "sharegpt", "alpaca")
ROW_MODES = ("conversation", "pair")
# The row modes each format supports, its default first.
MODES = {
    "messages": ROW_MODES,
    "prompt-completion": ("pair",),
    "sharegpt": ROW_MODES,
    "alpaca": ROW_MODES,
}
# Formats whose fitted rows train only their last reply (no per-message weight for some
# trainer that reads them: TRL's completion, LLaMA-Factory's mask_history).
LAST_REPLY_ONLY = ("prompt-completion", "sharegpt", "alpaca")
# ShareGPT speakers. The system prompt is a leading `from: system` turn; the recipes
# (`recipes.py`) give LLaMA-Factory and Axolotl the mappings they need to read it.
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
_SHAREGPT_SPEAKERS = {speaker: role for role, speaker in SHAREGPT_ROLES.items()}


class Parsed(NamedTuple):
    """A trainer row read back as chat messages (system first when present)."""

    messages: list[dict]
    trained: list[int]  # indices of the messages a trainer puts loss on


class Fitting(NamedTuple):
    """Fit rows to `max_tokens` as `length` measures them (the chat template applied).

    `too_long(conversation_id, pair_id, tokens)` is told of each reply that cannot fit, which
    is left out; `finished()` after the last row, which may then refuse them all. `trimmed(conversation_id, pair_id, trim)` is told of
    each reply kept with its user message cut (`fitting.Trim`)."""

    length: Callable[[list[dict]], int]
    max_tokens: int
    too_long: Callable[[str, object, int], None]
    trimmed: Callable[[str, object, fitting.Trim], None]
    finished: Callable[[], None] = lambda: None  # told once the last row is made; may raise


def rows(
    v4_rows: Iterable[dict],
    fmt: str,
    mode: str | None = None,
    metadata: Mapping[str, dict] | None = None,
    fit: Fitting | None = None,
) -> Iterator[dict]:
    """Trainer rows in `fmt`, one per conversation or per reply (`mode`, None: the format's default).

    `metadata` (conversation id -> {"quality_score": ...}) adds a `metadata` object to every
    row; None leaves it out. `fit` fits rows to a context length. The v4 `_meta` header
    line gives no row. Raises ValueError at once for an unknown format or mode.
    """
    return (row for _, row in rows_by_conversation(v4_rows, fmt, mode, metadata, fit))


def rows_by_conversation(
    v4_rows: Iterable[dict],
    fmt: str,
    mode: str | None = None,
    metadata: Mapping[str, dict] | None = None,
    fit: Fitting | None = None,
) -> Iterator[tuple[str, dict]]:
    """Like `rows`, with each row's conversation id: `(conversation_id, row)`, e.g. to split;
    fitted to a context length with `fit`."""
    mode = _checked_mode(fmt, mode)
    return _generate(v4_rows, fmt, mode, metadata, fit)


def split_of(conversation_id: str, validation_fraction: float) -> str:
    """The side a conversation falls on, "train" or "validation": a fixed function of its id,
    so no row changes side as the file grows and no conversation straddles the split."""
    if not 0 <= validation_fraction <= 1:
        raise ValueError(f"validation fraction must be between 0 and 1, not {validation_fraction}")
    digest = hashlib.sha256(conversation_id.encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return "validation" if position < validation_fraction else "train"


def parse(row: object, fmt: str) -> Parsed:
    """A trainer row in `fmt` read back as chat messages, whatever shape it has."""
    row = row if isinstance(row, Mapping) else {}
    if fmt == "messages":
        return _trained(_messages(row.get("messages")), row.get("messages"), 0)
    if fmt == "prompt-completion":
        prompt = _messages(row.get("prompt"))
        return _trained(prompt + _messages(row.get("completion")), None, len(prompt))
    if fmt == "sharegpt":
        turns = _messages(row.get("conversations"), "from", "value")
        said = [_message(_SHAREGPT_SPEAKERS.get(m["role"], m["role"]), m["content"]) for m in turns]
        return _trained(said, row.get("conversations"), 0)
    if fmt == "alpaca":
        messages = [] if row.get("system") is None else [_message("system", row["system"])]
        history = row.get("history")
        for exchange in history if isinstance(history, list) else ():
            user, reply = exchange if isinstance(exchange, list) and len(exchange) == 2 else (exchange, None)
            messages += [_message("user", user), _message("assistant", reply)]
        return _trained(messages + [_message("user", _query(row)), _message("assistant", row.get("output"))], None, 0)
    raise ValueError(_unknown_format(fmt))


def _trained(messages: list[dict], items: object, first: int) -> Parsed:
    """The assistant messages from `first` on, except those whose item has `weight: 0`."""
    weights = (
        [item.get("weight") if isinstance(item, Mapping) else None for item in items] if isinstance(items, list) else []
    )
    untrained = {index for index, weight in enumerate(weights) if weight == 0}
    return Parsed(
        messages,
        [i for i in range(first, len(messages)) if messages[i]["role"] == "assistant" and i not in untrained],
    )


def format_of(row: object) -> str:
    """The trainer format a row is in, told by its keys (OpenAI chat rows are messages rows)."""
    keys = set(row) if isinstance(row, Mapping) else set()
    for fmt, needed in (
        ("prompt-completion", {"prompt", "completion"}),
        ("sharegpt", {"conversations"}),
        ("alpaca", {"instruction", "output"}),
    ):
        if needed <= keys:
            return fmt
    return "messages"


def history_mismatches(v4_rows: Iterable[dict]) -> set:
    """Ids of pairs whose history holds an assistant turn that differs from the reply trained
    for that turn (the earlier pair's target_response): the history's draft is what a row
    built on it trains or shows as context."""
    found = set()
    for _, group in groupby(v4_rows, key=lambda row: row.get("conversation_id")):
        targets: list[object] = []
        for row in group:
            said = [m["content"] for m in _messages(row.get("conversation_history")) if m["role"] == "assistant"]
            if any(a != b for a, b in zip(said, targets)):
                found.add(row.get("id"))
            if row.get("target_response") is not None:
                targets.append(row["target_response"])
    return found


def _dialogue(v4_row: Mapping) -> list[dict]:
    """One pair as chat messages: system, history, the current user message once, the reply."""
    messages = [] if v4_row.get("system_prompt") is None else [_message("system", v4_row["system_prompt"])]
    messages += _messages(v4_row.get("conversation_history"))
    current = _message("user", v4_row.get("current_user_input"))
    # The platform's history already ends with the current user message: adding it again
    # would show the model every question twice.
    if not messages or messages[-1] != current:
        messages.append(current)
    messages.append(_message("assistant", v4_row.get("target_response")))
    return messages


def _checked_mode(fmt: str, mode: str | None) -> str:
    if fmt not in MODES:
        raise ValueError(_unknown_format(fmt))
    if mode is None:
        return MODES[fmt][0]
    if mode not in MODES[fmt]:
        raise ValueError(f"{fmt} supports rows {' or '.join(MODES[fmt])}, not {mode!r}")
    return mode


def _unknown_format(fmt: str) -> str:
    return f"unknown trainer format {fmt!r}: choose one of {', '.join(FORMATS)}"


def _generate(v4_rows, fmt, mode, metadata, fit: Fitting | None) -> Iterator[tuple[str, dict]]:
    build = _BUILDERS[fmt]
    for conversation_id, group in groupby(v4_rows, key=lambda row: row.get("conversation_id")):
        # Null targets are user turns (the v4 JSONL already leaves them out).
        pairs = [row for row in group if row.get("target_response") is not None]
        for covered, messages in _examples(pairs, mode):
            if fit is None:
                examples = [(covered, messages, None)]
            else:
                examples = _fitted(conversation_id, covered, messages, fit, fmt in LAST_REPLY_ONLY)
            for trains, row_messages, trained in examples:
                row = build(row_messages, trained)
                if metadata is not None:
                    row["metadata"] = _metadata(conversation_id, trains, metadata)
                yield conversation_id, row
    if fit is not None:
        fit.finished()


def _fitted(conversation_id, covered, messages, fit: Fitting, last_only: bool):
    """(pairs trained, messages, indices trained) per fitted row of one example."""
    # The example trains the replies of the pairs it covers: its last len(covered) replies.
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"][-len(covered) :]
    pair_of = dict(zip(replies, covered))
    windows, too_long = fitting.fit(messages, replies, fit.length, fit.max_tokens, one_reply_per_row=last_only)
    for reply in too_long:
        fit.too_long(conversation_id, pair_of[reply.index].get("id"), reply.tokens)
    for window in windows:
        if window.trim is not None:
            fit.trimmed(conversation_id, pair_of[window.source[0]].get("id"), window.trim)
    return [([pair_of[i] for i in w.source], w.messages, w.trained) for w in windows]


def _examples(pairs: list[dict], mode: str) -> Iterator[tuple[list[dict], list[dict]]]:
    """(pairs a row trains, its dialogue) for each row of one conversation."""
    dialogues = [_dialogue(pair) for pair in pairs]
    if mode == "pair":
        yield from (([pair], messages) for pair, messages in zip(pairs, dialogues))
        return
    covered: list[dict] = []
    for index, (pair, messages) in enumerate(zip(pairs, dialogues)):
        covered.append(pair)
        following = dialogues[index + 1] if index + 1 < len(dialogues) else None
        # A later dialogue that starts with this one trains this reply too.
        if following is None or following[: len(messages)] != messages:
            yield covered, messages
            covered = []


def _messages_row(messages: list[dict], trained: list[int] | None) -> dict:
    return {"messages": _weighted(messages, trained)}


def _weighted(messages: list[dict], trained: list[int] | None) -> list[dict]:
    """Fitted rows: `weight` 1 on the replies the row trains, 0 on context replies."""
    if trained is None:
        return messages
    return [
        {**m, "weight": int(index in trained)} if m["role"] == "assistant" else m for index, m in enumerate(messages)
    ]


def _prompt_completion_row(messages: list[dict], trained: list[int] | None) -> dict:
    # TRL's conversational prompt-completion: completion_only_loss trains the completion only.
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _sharegpt_row(messages: list[dict], trained: list[int] | None) -> dict:
    turns = []
    for m in _weighted(messages, trained):
        turn = {"from": SHAREGPT_ROLES.get(m["role"], m["role"]), "value": m["content"]}
        turns.append(turn if "weight" not in m else {**turn, "weight": m["weight"]})
    return {"conversations": turns}


def _alpaca_row(messages: list[dict], trained: list[int] | None) -> dict:
    """LLaMA-Factory's alpaca: the last exchange as instruction/output, the earlier ones as history."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    body = messages[1:] if messages[0]["role"] == "system" else messages
    # `_dialogue` always ends with the current user message and the reply.
    *earlier, query, reply = body
    return {
        "instruction": query["content"],
        "input": "",
        "output": reply["content"],
        "system": system,
        "history": _exchanges(earlier),
    }


def _exchanges(messages: list[dict]) -> list[list]:
    """[user, assistant] pairs; a side missing from a broken alternation is "" (preflight flags it)."""
    exchanges: list[list] = []
    for message in messages:
        if message["role"] == "assistant" and exchanges and exchanges[-1][1] is None:
            exchanges[-1][1] = message["content"]
        elif message["role"] == "assistant":
            exchanges.append(["", message["content"]])
        else:
            exchanges.append([message["content"], None])
    return [[user, "" if assistant is None else assistant] for user, assistant in exchanges]


_BUILDERS = {
    "messages": _messages_row,
    "prompt-completion": _prompt_completion_row,
    "sharegpt": _sharegpt_row,
    "alpaca": _alpaca_row,
}


def _metadata(conversation_id: str, pairs: list[dict], extras: Mapping[str, dict]) -> dict:
    """The same keys on every row, None where unknown; scaffolding from the row's last pair."""
    scaffolding = pairs[-1].get("conversation_metadata")
    scaffolding = scaffolding if isinstance(scaffolding, Mapping) else {}
    return {
        "conversation_id": conversation_id,
        "pair_ids": [pair.get("id") for pair in pairs],
        "persona_key": scaffolding.get("persona_archetype"),
        "emotional_arc_key": scaffolding.get("emotional_arc_key"),
        "training_topic_key": scaffolding.get("training_topic_key"),
        "quality_score": (extras.get(conversation_id) or {}).get("quality_score"),
    }


def _query(row: Mapping) -> object:
    """LLaMA-Factory's user message for an alpaca row: instruction, then input on a new line."""
    instruction, extra = row.get("instruction"), row.get("input")
    return (
        f"{instruction}\n{extra}" if isinstance(instruction, str) and isinstance(extra, str) and extra else instruction
    )


def _messages(items: object, role: str = "role", content: str = "content") -> list[dict]:
    """A list of chat messages as {"role", "content"}, whatever the input holds."""
    if not isinstance(items, list):
        return []
    return [
        _message(item.get(role), item.get(content)) if isinstance(item, Mapping) else _message(None, item)
        for item in items
    ]


def _message(role: object, content: object) -> dict:
    return {"role": role, "content": content}
