"""Fitting to a context length: exact windows from a dialogue and a length that counts characters."""

import pytest

from trainfiles.core import trainer_formats
from trainfiles.core.fitting import TooLong, Trim, Window, fit


def msg(role, content):
    return {"role": role, "content": content}


S = msg("system", "s" * 10)
U1, A1, U2, A2, U3, A3 = (
    msg(r, c * n)
    for r, c, n in (
        ("user", "a", 10),
        ("assistant", "b", 20),
        ("user", "c", 10),
        ("assistant", "d", 20),
        ("user", "e", 10),
        ("assistant", "f", 20),
    )
)
DIALOGUE = [S, U1, A1, U2, A2, U3, A3]  # 10 + 3 * 30 = 100 characters


def length(messages):
    return sum(len(m["content"]) for m in messages)


def test_a_dialogue_that_fits_stays_one_window():
    assert fit(DIALOGUE, [2, 4, 6], length, 100) == ([Window(DIALOGUE, [2, 4, 6], [2, 4, 6])], [])


def test_windows_end_at_a_reply_and_carry_as_much_context_as_fits():
    windows, too_long = fit(DIALOGUE, [2, 4, 6], length, 75)
    assert too_long == []
    # The first two exchanges fit with the system prompt (70); the third needs its own row,
    # which carries the second exchange as context (70), not the first too (100).
    assert windows == [
        Window([S, U1, A1, U2, A2], [2, 4], [2, 4]),
        Window([S, U2, A2, U3, A3], [4], [6]),
    ]


def test_one_reply_per_row():
    windows, _ = fit(DIALOGUE, [2, 4, 6], length, 100, one_reply_per_row=True)
    assert windows == [
        Window([S, U1, A1], [2], [2]),
        Window([S, U1, A1, U2, A2], [4], [4]),
        Window([S, U1, A1, U2, A2, U3, A3], [6], [6]),
    ]


def test_only_the_replies_asked_for_are_trained():
    windows, _ = fit(DIALOGUE, [6], length, 45)
    assert windows == [Window([S, U3, A3], [2], [6])]


def test_a_reply_that_cannot_fit_is_reported_and_the_others_still_trained():
    dialogue = [S, U1, msg("assistant", "x" * 50), U2, A2]
    windows, too_long = fit(dialogue, [2, 4], length, 45)
    assert too_long == [TooLong(2, 70)]
    assert windows == [Window([S, U2, A2], [2], [4])]


# A reply too long with its whole user message: that message cut from its start.
QUESTION = msg("user", "one two  three\nfour five")  # 24 characters, 5 words
REPLY = msg("assistant", "r" * 20)


def test_a_reply_is_kept_whole_with_its_user_message_cut_at_a_word_boundary():
    # Whole: 10 + 24 + 20 = 54. "three\nfour five" (15) gives 45, over 44; "four five" 39.
    windows, too_long = fit([S, QUESTION, REPLY], [2], length, 44)
    assert too_long == []
    assert windows == [Window([S, msg("user", "four five"), REPLY], [2], [2], Trim(2, 5, 54))]


def test_the_cut_keeps_the_longest_tail_that_fits():
    windows, _ = fit([S, QUESTION, REPLY], [2], length, 45)
    assert windows == [Window([S, msg("user", "three\nfour five"), REPLY], [2], [2], Trim(3, 5, 54))]
    # Leading whitespace goes first: the whole text from its first word.
    spaced = msg("user", "  one two")
    assert fit([S, spaced, REPLY], [2], length, 37)[0] == [
        Window([S, msg("user", "one two"), REPLY], [2], [2], Trim(2, 2, 39))
    ]


def test_a_trimmed_reply_has_a_row_of_its_own_and_the_next_reply_its_context():
    dialogue = [S, U1, A1, QUESTION, REPLY, U3, A3]  # 10 + 30 + 44 + 30
    windows, too_long = fit(dialogue, [2, 4, 6], length, 44)
    assert too_long == []
    assert windows == [
        Window([S, U1, A1], [2], [2]),
        Window([S, msg("user", "four five"), REPLY], [2], [4], Trim(2, 5, 54)),
        Window([S, U3, A3], [2], [6]),
    ]


def test_a_reply_too_long_even_with_the_last_word_of_its_user_message_is_too_long():
    # The shortest row: 10 + len("five") + 30 = 44.
    windows, too_long = fit([S, QUESTION, msg("assistant", "r" * 30), U2, A2], [2, 4], length, 43)
    assert too_long == [TooLong(2, 44)]
    assert windows == [Window([S, U2, A2], [2], [4])]
    # A one-word user message has no cut: the row's length as it is.
    assert fit([S, msg("user", "x" * 30), REPLY], [2], length, 59)[1] == [TooLong(2, 60)]


# Through the formats: the synthetic conversation of test_trainer_formats, two replies.
SYSTEM = "Be kind."
CID = "c1"


def v4(pairs):
    return [
        {
            "id": f"p{n}",
            "conversation_id": CID,
            "system_prompt": SYSTEM,
            "conversation_history": history,
            "current_user_input": user,
            "target_response": target,
        }
        for n, (history, user, target) in enumerate(pairs, 1)
    ]


PAIRS = v4(
    [
        ([], "u" * 30, "A" * 30),
        (
            [
                {"role": "user", "content": "u" * 30},
                {"role": "assistant", "content": "A" * 30},
                {"role": "user", "content": "v" * 30},
            ],
            "v" * 30,
            "B" * 30,
        ),
    ]
)


def fitting(max_tokens, calls=None):
    def too_long(cid, pair_id, tokens):
        calls.append((cid, pair_id, tokens))

    def trimmed(cid, pair_id, trim):
        calls.append((cid, pair_id, trim))

    return trainer_formats.Fitting(length, max_tokens, too_long, trimmed)


def rows(fmt, mode, max_tokens, calls=None):
    return list(trainer_formats.rows(PAIRS, fmt, mode, metadata={}, fit=fitting(max_tokens, calls)))


S_, U, A, V, B = (
    msg("system", SYSTEM),
    msg("user", "u" * 30),
    msg("assistant", "A" * 30),
    msg("user", "v" * 30),
    msg("assistant", "B" * 30),
)


def weighted(m, w):
    return {**m, "weight": w}


@pytest.mark.parametrize(
    ("fmt", "mode", "expected"),
    [
        # 128 characters: one row trains both replies.
        ("messages", "conversation", [{"messages": [S_, U, weighted(A, 1), V, weighted(B, 1)]}]),
        # pair rows train their last reply only: the earlier one is context.
        (
            "messages",
            "pair",
            [{"messages": [S_, U, weighted(A, 1)]}, {"messages": [S_, U, weighted(A, 0), V, weighted(B, 1)]}],
        ),
        (
            "prompt-completion",
            "pair",
            [{"prompt": [S_, U], "completion": [A]}, {"prompt": [S_, U, A, V], "completion": [B]}],
        ),
        # sharegpt too (LLaMA-Factory's mask_history), with weights for Axolotl.
        (
            "sharegpt",
            "conversation",
            [
                {
                    "conversations": [
                        {"from": "system", "value": SYSTEM},
                        {"from": "human", "value": "u" * 30},
                        {"from": "gpt", "value": "A" * 30, "weight": 1},
                    ]
                },
                {
                    "conversations": [
                        {"from": "system", "value": SYSTEM},
                        {"from": "human", "value": "u" * 30},
                        {"from": "gpt", "value": "A" * 30, "weight": 0},
                        {"from": "human", "value": "v" * 30},
                        {"from": "gpt", "value": "B" * 30, "weight": 1},
                    ]
                },
            ],
        ),
        # alpaca trains only its output: a row per reply.
        (
            "alpaca",
            "conversation",
            [
                {"instruction": "u" * 30, "input": "", "output": "A" * 30, "system": SYSTEM, "history": []},
                {
                    "instruction": "v" * 30,
                    "input": "",
                    "output": "B" * 30,
                    "system": SYSTEM,
                    "history": [["u" * 30, "A" * 30]],
                },
            ],
        ),
    ],
)
def test_fitted_rows_that_fit(fmt, mode, expected):
    assert [{k: v for k, v in row.items() if k != "metadata"} for row in rows(fmt, mode, 128)] == expected


def test_a_long_conversation_becomes_rows_each_reply_trained_once():
    out = rows("messages", "conversation", 100)
    assert [row["messages"] for row in out] == [[S_, U, weighted(A, 1)], [S_, V, weighted(B, 1)]]
    assert [row["metadata"]["pair_ids"] for row in out] == [["p1"], ["p2"]]


def test_a_reply_too_long_is_told_with_its_conversation_and_pair():
    calls = []
    out = rows("prompt-completion", "pair", 60, calls)
    assert calls == [(CID, "p1", 68), (CID, "p2", 68)] and out == []


def test_a_trimmed_user_message_is_told_with_its_conversation_and_pair():
    pairs = v4([([], "why is the sky blue at noon", "B" * 30)])  # 8 + 27 + 30 = 65
    calls = []
    out = list(trainer_formats.rows(pairs, "alpaca", "pair", fit=fitting(56, calls)))
    # "at noon": 8 + 7 + 30 = 45; "blue at noon" 50; "sky blue at noon" 54; "the sky ..." 58.
    assert out == [
        {"instruction": "sky blue at noon", "input": "", "output": "B" * 30, "system": SYSTEM, "history": []}
    ]
    assert calls == [(CID, "p1", Trim(4, 7, 65))]
