"""Pre-flight check: each error category from a crafted row, duplicates, tokens and the report."""

import gc
import sys
import weakref

import pytest

from trainfiles import preflight, render
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
    assert preflight.check(rows, "messages", max_tokens=20) == {
        "format": "messages",
        "rows": 2,
        "ok": True,
        "errors": NO_ERRORS,
        "warnings": {
            "over_max_tokens": {"count": 1, "rows": [2]},
            "duplicate_rows": {"count": 0, "rows": []},
            "duplicate_replies": {"count": 0, "rows": []},
        },
        "max_tokens": 20,
        # ceil(chars/4) per message: 2 + 2 + 4 = 8 and 2 + 10 + 11 = 23
        "tokens": {"min": 8, "mean": 15.5, "p50": 8, "p90": 23, "max": 23},
        "loss_tokens": {"total": 15, "unique": 15, "repeated": 0},
        "tokenizer": "estimate: ceil(chars/4)",
    }


def test_duplicate_rows_and_repeated_replies_are_warnings():
    first = chat(("user", "Hi there"), ("assistant", "Hello, friend"))
    longer = chat(("user", "Hi there"), ("assistant", "Hello, friend"), ("user", "More"), ("assistant", "Sure"))
    report = preflight.check([first, first, longer], "messages")
    assert report["ok"] is True
    assert report["warnings"]["duplicate_rows"] == {"count": 1, "rows": [2]}
    assert report["warnings"]["duplicate_replies"] == {"count": 2, "rows": [2, 3]}
    # "Hello, friend" is 4 tokens, trained three times; "Sure" is 1.
    assert report["loss_tokens"] == {"total": 13, "unique": 5, "repeated": 8}


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
    assert preflight.check([row], "prompt-completion")["loss_tokens"] == {"total": 1, "unique": 1, "repeated": 0}


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
    with pytest.raises(NotFound, match="tokenizer.json"):
        preflight.check([GOOD], "messages", tokenizer_path=str(tmp_path))


def test_tokenizer_without_the_tokenizers_package(tmp_path, monkeypatch):
    (tmp_path / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as when not installed
    with pytest.raises(InvalidInput, match="trainers"):
        preflight.check([GOOD], "messages", tokenizer_path=str(tmp_path))


def test_counts_with_a_real_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "Hi": 1, "there": 2, "Hello": 3, ",": 4, "friend": 5, "Be": 6, "kind": 7, ".": 8}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    report = preflight.check([GOOD], "messages", tokenizer_path=str(tmp_path / "tokenizer.json"))
    assert report["tokenizer"] == str(tmp_path / "tokenizer.json")
    assert report["tokens"]["max"] == 3 + 2 + 3  # "Be kind ." "Hi there" "Hello , friend"
    assert report["loss_tokens"]["total"] == 3
    with pytest.raises(InvalidInput, match="not a tokenizer"):
        (tmp_path / "bad.json").write_text("{}")
        preflight.check([GOOD], "messages", tokenizer_path=str(tmp_path / "bad.json"))


def test_render_names_the_problems_found():
    report = preflight.check([GOOD, BAD_ROWS["duplicate_user_turn"], GOOD], "messages", max_tokens=1)
    text = render.check_report(report)
    assert "same user message twice in a row" in text and "rows over the token limit (1)" in text
    assert "errors found" in text
    assert "empty or whitespace-only content" not in text  # categories that did not occur stay out
