"""Pre-flight check: each error category from a crafted row, duplicates, tokens and the report."""

import gc
import sys
import weakref

import pytest

from trainfiles.cli import render
from trainfiles.core import preflight
from trainfiles.core.tokenizing import Tokens
from trainfiles.errors import InvalidInput, NotFound

SYSTEM = {"role": "system", "content": "Be kind."}


def chat(*turns, system=SYSTEM):
    """A messages row from (role, content) turns."""
    return {"messages": ([system] if system else []) + [{"role": r, "content": c} for r, c in turns]}


GOOD = chat(("user", "Hi there"), ("assistant", "Hello, friend"))
NO_ERRORS = {category: {"count": 0, "rows": []} for category in preflight.ERRORS}

BAD_ROWS = {
    "no_assistant_reply": chat(("user", "Hi there"), ("assistant", "Hello"), ("user", "And?")),
    "empty_content": chat(("user", "Hi there"), ("assistant", "  \n")),
    "roles_not_alternating": chat(("assistant", "Hello"), ("user", "Hi"), ("assistant", "Yes")),
    "duplicate_user_turn": chat(("user", "Hi there"), ("user", "Hi there"), ("assistant", "Hello")),
    "missing_system_prompt": chat(("user", "Hi there"), ("assistant", "Hello"), system=None),
    "non_string_content": chat(("user", ["Hi", "there"]), ("assistant", "Hello")),
}


@pytest.mark.parametrize("category", list(preflight.ERRORS))
def test_each_error_category_is_found_in_its_row(category):
    report = preflight.check([GOOD, BAD_ROWS[category], GOOD], "messages")
    assert report["errors"] == {**NO_ERRORS, category: {"count": 1, "rows": [2]}}
    assert report["ok"] is False and report["rows"] == 3


def test_bad_rows_cover_every_category():
    assert set(BAD_ROWS) == set(preflight.ERRORS)


@pytest.mark.parametrize(
    ("fmt", "row", "expected"),
    [
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
            {"missing_system_prompt"},
        ),
        (
            "sharegpt",
            {
                "conversations": [
                    {"from": "system", "value": "Be kind."},
                    {"from": "human", "value": "Hi"},
                    {"from": "bot", "value": "Hello"},
                ]
            },
            {"roles_not_alternating", "no_assistant_reply"},
        ),
        (
            "prompt-completion",
            {"prompt": [SYSTEM, {"role": "user", "content": "Hi"}], "completion": [{"role": "user", "content": "Hi"}]},
            {"duplicate_user_turn", "no_assistant_reply"},
        ),
        (
            "alpaca",
            {"instruction": "Hi", "input": "", "output": "", "system": "Be kind.", "history": []},
            {"empty_content"},
        ),
        (
            "alpaca",
            {"instruction": "Hi", "input": "", "output": "Yes", "system": "Be kind.", "history": [["", "Hello"]]},
            {"empty_content"},
        ),
        (
            "alpaca",
            {"instruction": "Hi", "input": "", "output": None, "system": "", "history": []},
            {"non_string_content", "missing_system_prompt"},
        ),
        ("messages", {"messages": "not a list"}, {"missing_system_prompt", "no_assistant_reply"}),
        ("messages", ["not", "an", "object"], {"missing_system_prompt", "no_assistant_reply"}),
    ],
)
def test_other_formats_and_odd_shapes_are_reported_not_raised(fmt, row, expected):
    report = preflight.check([row], fmt)
    assert {category for category, hits in report["errors"].items() if hits["count"]} == expected


def test_clean_rows_exact_report():
    rows = [GOOD, chat(("user", "x" * 40), ("assistant", "y" * 41))]
    # The plain template renders "<|role|>\n" + content + "<|end|>\n" per message: GOOD is
    # 27 + 25 + 35 = 87 characters, 22 estimated tokens (one per 4 characters, from 0); its
    # reply and <|end|> are characters 66-85: the tokens starting at 68, 72, ..., 84, 5.
    # Row 2 is 27 + 57 + 63 = 147 characters, 37 tokens; its loss is characters 98-145,
    # tokens 25-36 (12), of which 25-29 are before 30.
    assert preflight.check(rows, "messages", max_tokens=30) == {
        "format": "messages",
        "rows": 2,
        "ok": True,
        "errors": NO_ERRORS,
        "warnings": {
            "over_max_tokens": {"count": 1, "rows": [2]},
            "duplicate_rows": {"count": 0, "rows": []},
            "duplicate_replies": {"count": 0, "rows": []},
            "history_mismatch": {"count": 0, "rows": []},
        },
        "max_tokens": 30,
        "tokens": {"min": 22, "mean": 29.5, "p50": 22, "p90": 37, "max": 37},
        "loss_tokens": {"total": 17, "unique": 17, "repeated": 0},
        "length_cost": {
            "truncating": {"kept": 10, "lost": 7, "rows_left_without_loss": 0},
            "dropping": {"kept": 5, "lost": 12, "rows_dropped": 1},
            "fitted": {"kept": 5, "lost": 12, "replies_too_long": 1, "user_turns_trimmed": 0},
        },
        "tokenizer": "estimate: ceil(chars/4)",
    }


def test_truncation_that_leaves_a_row_without_loss_is_counted():
    row = chat(("user", "x" * 200), ("assistant", "Fine"))
    cost = preflight.check([row], "messages", max_tokens=40)["length_cost"]
    # 27 + 217 + 26 = 270 characters: 68 tokens, the reply's 3 at 65-67, all cut at 40.
    assert cost["truncating"] == {"kept": 0, "lost": 3, "rows_left_without_loss": 1}


def test_a_long_conversation_fits_whole_replies():
    row = chat(("user", "a" * 60), ("assistant", "b" * 60), ("user", "c" * 60), ("assistant", "d" * 60))
    cost = preflight.check([row], "messages", max_tokens=50)["length_cost"]
    # 27 + 77 + 82 + 77 + 82 = 345 characters, 87 tokens; each exchange with the system
    # prompt is 186 characters, 47 tokens: fitting keeps both replies (17 and 16 tokens, as
    # their characters fall on the 4-character grid of the estimate).
    assert cost["fitted"] == {"kept": 33, "lost": 0, "replies_too_long": 0, "user_turns_trimmed": 0}
    assert cost["dropping"] == {"kept": 0, "lost": 33, "rows_dropped": 1}


def test_a_reply_too_long_with_its_whole_user_message_is_kept_with_it_trimmed():
    row = chat(("user", " ".join(["word"] * 30)), ("assistant", "y" * 41))
    cost = preflight.check([row], "messages", max_tokens=30)["length_cost"]
    # 27 + 166 + 63 = 256 characters, 64 tokens; with only "word" 27 + 21 + 63 = 111, 28
    # tokens. The reply and <|end|> are characters 207-254: the 12 tokens from 208 to 252.
    assert cost["fitted"] == {"kept": 12, "lost": 0, "replies_too_long": 0, "user_turns_trimmed": 1}
    assert cost["dropping"] == {"kept": 0, "lost": 12, "rows_dropped": 1}


def test_duplicate_rows_and_repeated_replies_are_warnings():
    first = chat(("user", "Hi there"), ("assistant", "Hello, friend"))
    longer = chat(("user", "Hi there"), ("assistant", "Hello, friend"), ("user", "More"), ("assistant", "Sure"))
    report = preflight.check([first, first, longer], "messages")
    assert report["ok"] is True
    assert report["warnings"]["duplicate_rows"] == {"count": 1, "rows": [2]}
    assert report["warnings"]["duplicate_replies"] == {"count": 2, "rows": [2, 3]}
    # "Hello, friend<|end|>" is 5 tokens, trained three times; "Sure<|end|>" is 3.
    assert report["loss_tokens"] == {"total": 18, "unique": 8, "repeated": 10}


def test_prompt_completion_loss_is_the_completion_only():
    row = {
        "prompt": [
            SYSTEM,
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there"},
            {"role": "user", "content": "More"},
        ],
        "completion": [{"role": "assistant", "content": "Sure"}],
    }
    # "Sure<|end|>": 11 characters, 3 tokens; "Hello there" is context.
    assert preflight.check([row], "prompt-completion")["loss_tokens"] == {"total": 3, "unique": 3, "repeated": 0}


def test_replies_with_weight_0_carry_no_loss():
    row = chat(("user", "Hi there"), ("assistant", "Hello, friend"), ("user", "More"), ("assistant", "Sure"))
    row["messages"][2]["weight"] = 0
    assert preflight.check([row], "messages")["loss_tokens"] == {"total": 3, "unique": 3, "repeated": 0}


def test_metadata_does_not_hide_duplicates():
    rows = [{**GOOD, "metadata": {"pair_ids": [n]}} for n in range(3)]
    assert preflight.check(rows, "messages")["warnings"]["duplicate_rows"] == {"count": 2, "rows": [2, 3]}


def test_history_mismatches_are_warnings():
    report = preflight.check([GOOD, GOOD], "messages", history_mismatches=[2])
    assert report["warnings"]["history_mismatch"] == {"count": 1, "rows": [2]}


def test_row_numbers_list_the_first_five():
    report = preflight.check([BAD_ROWS["empty_content"]] * 7, "messages")
    assert report["errors"]["empty_content"] == {"count": 7, "rows": [1, 2, 3, 4, 5]}


def test_no_rows():
    report = preflight.check([], "messages")
    assert report["ok"] is True and report["rows"] == 0
    assert report["tokens"] == {"min": None, "mean": None, "p50": None, "p90": None, "max": None}


def test_rows_are_streamed_not_kept():
    class Row(dict):
        """A dict that a weak reference can watch."""

    watched = []

    def source():
        for n in range(3):
            row = Row(chat(("user", f"Hi {n}"), ("assistant", "Hello")))
            watched.append(weakref.ref(row))
            yield row

    report = preflight.check(source(), "messages")
    gc.collect()
    assert report["rows"] == 3 and [ref() for ref in watched] == [None, None, None]


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(NotFound, match=r"tokenizer\.json"):
        Tokens(str(tmp_path))


def test_tokenizer_without_the_tokenizers_package(tmp_path, monkeypatch):
    (tmp_path / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as when not installed
    with pytest.raises(InvalidInput, match="trainers"):
        Tokens(str(tmp_path))


def test_counts_with_a_real_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "Hi": 1, "there": 2, "Hello": 3, ",": 4, "friend": 5, "Be": 6, "kind": 7, ".": 8}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    report = preflight.check([GOOD], "messages", tokens=Tokens(str(tmp_path / "tokenizer.json")))
    assert report["tokenizer"] == str(tmp_path / "tokenizer.json")
    # Words and runs of punctuation of the plain template: "<| system |> Be kind .<| end |>",
    # "<| user |> Hi there <| end |>", "<| assistant |> Hello , friend <| end |>".
    assert report["tokens"]["max"] == 8 + 8 + 9
    assert report["loss_tokens"]["total"] == 6  # Hello , friend <| end |>
    with pytest.raises(InvalidInput, match="not a tokenizer"):
        (tmp_path / "bad.json").write_text("{}")
        Tokens(str(tmp_path / "bad.json"))


def test_render_names_the_problems_found():
    report = preflight.check([GOOD, BAD_ROWS["duplicate_user_turn"], GOOD], "messages", max_tokens=1)
    text = render.check_report(report)
    assert "same user message twice in a row" in text and "rows over the token limit (1)" in text
    assert "errors found" in text
    assert "0 of 13 (0.0%), 3 rows dropped" in text  # the cost of the limit, for a dropping trainer
    assert "empty or whitespace-only content" not in text  # categories that did not occur stay out


def test_warnings_never_read_as_a_plain_ok():
    text = render.check_report(preflight.check([GOOD] * 600, "messages"))
    assert "result          ok, with warnings (duplicate_rows, duplicate_replies)\n" in text
