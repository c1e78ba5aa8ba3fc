"""Trainer formats: exact rows from a small conversation, properties on the real reference data."""

import orjson
import pytest

from trainfiles.core import builder, preflight
from trainfiles.core.trainer_formats import FORMATS, MODES, ROW_MODES, parse, rows, rows_by_conversation, split_of

from conftest import REFERENCE, require_reference

CID = "0a1b2c3d-1111-4222-8333-444455556666"
OTHER = "9f8e7d6c-aaaa-4bbb-8ccc-ddddeeeeffff"
SYSTEM = "Be kind → always."
U1, A2, U3, A4 = "Eldercare scares me — 💸", "That fear makes sense.", "What should I save?", "Start with $200 a month."
SCAFFOLDING = {
    "persona_archetype": "anxious_planner",
    "emotional_arc_key": "fear_to_confidence",
    "training_topic_key": "eldercare_costs",
}


def said(turn, role, content):
    # Real history entries carry more than role and content.
    return {"turn": turn, "role": role, "content": content, "emotional_state": {"primary": "anxiety"}}


def pair(turn, history, current, target, label="planning"):
    return {
        "id": f"{label}_turn{turn}",
        "conversation_id": label,
        "turn_number": turn,
        "conversation_metadata": dict(SCAFFOLDING),
        "system_prompt": SYSTEM,
        "conversation_history": history,
        "current_user_input": current,
        "emotional_context": {"detected_emotions": {"primary": "anxiety"}},
        "target_response": target,
        "training_metadata": {"quality_score": 4},
    }


def conversation(conversation_id, pairs):
    return {"conversation_metadata": {"conversation_id": conversation_id}, "training_pairs": pairs}


def planning_pairs():
    """Four turns as the platform writes them: user turns have no target, history ends with the current input."""
    return [
        pair(1, [], U1, None),
        pair(2, [said(1, "user", U1)], U1, A2),
        pair(3, [said(1, "user", U1), said(2, "assistant", A2)], U3, None),
        pair(4, [said(1, "user", U1), said(2, "assistant", A2), said(3, "user", U3)], U3, A4),
    ]


def v4(*conversations):
    return list(builder.jsonl_rows(conversations))


def synthetic():
    return v4(
        conversation(CID, planning_pairs()),
        conversation(OTHER, [pair(2, [said(1, "user", "Hi")], "Hi", "Hello!", "short")]),
    )


def msg(role, content):
    return {"role": role, "content": content}


S, M1, M2, M3, M4 = msg("system", SYSTEM), msg("user", U1), msg("assistant", A2), msg("user", U3), msg("assistant", A4)
SHORT = [S, msg("user", "Hi"), msg("assistant", "Hello!")]


def sharegpt(messages):
    speakers = {"system": "system", "user": "human", "assistant": "gpt"}
    return {"conversations": [{"from": speakers[m["role"]], "value": m["content"]} for m in messages]}


EXPECTED = {
    ("messages", "conversation"): [{"messages": [S, M1, M2, M3, M4]}, {"messages": SHORT}],
    ("messages", "pair"): [{"messages": [S, M1, M2]}, {"messages": [S, M1, M2, M3, M4]}, {"messages": SHORT}],
    ("prompt-completion", "pair"): [
        {"prompt": [S, M1], "completion": [M2]},
        {"prompt": [S, M1, M2, M3], "completion": [M4]},
        {"prompt": SHORT[:2], "completion": SHORT[2:]},
    ],
    ("sharegpt", "conversation"): [sharegpt([S, M1, M2, M3, M4]), sharegpt(SHORT)],
    ("sharegpt", "pair"): [sharegpt([S, M1, M2]), sharegpt([S, M1, M2, M3, M4]), sharegpt(SHORT)],
    ("alpaca", "conversation"): [
        {"instruction": U3, "input": "", "output": A4, "system": SYSTEM, "history": [[U1, A2]]},
        {"instruction": "Hi", "input": "", "output": "Hello!", "system": SYSTEM, "history": []},
    ],
    ("alpaca", "pair"): [
        {"instruction": U1, "input": "", "output": A2, "system": SYSTEM, "history": []},
        {"instruction": U3, "input": "", "output": A4, "system": SYSTEM, "history": [[U1, A2]]},
        {"instruction": "Hi", "input": "", "output": "Hello!", "system": SYSTEM, "history": []},
    ],
}


@pytest.mark.parametrize(("fmt", "mode"), list(EXPECTED))
def test_exact_rows(fmt, mode):
    assert list(rows(synthetic(), fmt, mode)) == EXPECTED[fmt, mode]


def test_every_format_and_mode_is_covered():
    assert FORMATS == ("messages", "prompt-completion", "sharegpt", "alpaca")
    assert ROW_MODES == ("conversation", "pair")
    assert set(EXPECTED) == {(fmt, mode) for fmt in FORMATS for mode in MODES[fmt]}


@pytest.mark.parametrize(
    ("fmt", "default"),
    [
        ("messages", "conversation"),
        ("sharegpt", "conversation"),
        ("alpaca", "conversation"),
        ("prompt-completion", "pair"),
    ],
)
def test_default_mode(fmt, default):
    assert list(rows(synthetic(), fmt)) == EXPECTED[fmt, default]


def test_rows_read_back_as_the_same_messages():
    for fmt, mode in EXPECTED:
        assert [parse(row, fmt).messages for row in rows(synthetic(), fmt, mode)] == [
            parse(row, "messages").messages for row in rows(synthetic(), "messages", mode)
        ]


def test_prompt_completion_trains_only_the_completion():
    parsed = [parse(row, "prompt-completion") for row in rows(synthetic(), "prompt-completion")]
    assert [p.trained for p in parsed] == [[2], [4], [2]]


def test_metadata_on_every_row_with_the_same_keys():
    out = list(rows(synthetic(), "messages", "pair", metadata={CID: {"quality_score": 4.25}}))
    assert [row["metadata"] for row in out] == [
        {
            "conversation_id": CID,
            "pair_ids": ["planning_turn2_0a1b2c3d"],
            "persona_key": "anxious_planner",
            "emotional_arc_key": "fear_to_confidence",
            "training_topic_key": "eldercare_costs",
            "quality_score": 4.25,
        },
        {
            "conversation_id": CID,
            "pair_ids": ["planning_turn4_0a1b2c3d"],
            "persona_key": "anxious_planner",
            "emotional_arc_key": "fear_to_confidence",
            "training_topic_key": "eldercare_costs",
            "quality_score": 4.25,
        },
        {
            "conversation_id": OTHER,
            "pair_ids": ["short_turn2_9f8e7d6c"],
            "persona_key": "anxious_planner",
            "emotional_arc_key": "fear_to_confidence",
            "training_topic_key": "eldercare_costs",
            "quality_score": None,
        },
    ]


def test_metadata_in_conversation_mode_names_every_pair_the_row_trains():
    out = list(rows(synthetic(), "alpaca", "conversation", metadata={}))
    assert [row["metadata"]["pair_ids"] for row in out] == [
        ["planning_turn2_0a1b2c3d", "planning_turn4_0a1b2c3d"],
        ["short_turn2_9f8e7d6c"],
    ]
    assert list(out[0]) == ["instruction", "input", "output", "system", "history", "metadata"]


def test_missing_scaffolding_still_gives_every_key():
    row = v4(conversation(CID, planning_pairs()))[0]
    row["conversation_metadata"] = None
    (out,) = rows([row], "messages", metadata={})
    assert out["metadata"] == {
        "conversation_id": CID,
        "pair_ids": [row["id"]],
        "persona_key": None,
        "emotional_arc_key": None,
        "training_topic_key": None,
        "quality_score": None,
    }


def test_without_metadata_rows_have_no_metadata_key():
    assert all("metadata" not in row for fmt in FORMATS for row in rows(synthetic(), fmt))


def test_history_without_the_current_input_gets_it_appended():
    pairs = planning_pairs()
    pairs[1]["conversation_history"] = []
    pairs[3]["conversation_history"] = pairs[3]["conversation_history"][:2]
    assert list(rows(v4(conversation(CID, pairs)), "messages", "pair")) == [
        {"messages": [S, M1, M2]},
        {"messages": [S, M1, M2, M3, M4]},
    ]


def test_consecutive_same_roles_are_kept_for_the_checker():
    pairs = planning_pairs()
    pairs[3]["conversation_history"] = [said(1, "user", U1), said(3, "user", U3)]
    (out,) = rows(v4(conversation(CID, pairs[3:])), "messages")
    assert out == {"messages": [S, M1, M3, M4]}
    assert preflight.problems(out["messages"]) == {"roles_not_alternating"}


def test_a_reply_whose_dialogue_is_not_continued_keeps_its_own_row():
    pairs = planning_pairs()
    # The later history quotes an edited reply: the first reply would be lost in one row.
    pairs[3]["conversation_history"][1]["content"] = "edited"
    out = list(rows(v4(conversation(CID, pairs)), "messages", "conversation", metadata={}))
    assert [row["messages"] for row in out] == [[S, M1, M2], [S, M1, msg("assistant", "edited"), M3, M4]]
    assert [row["metadata"]["pair_ids"] for row in out] == [["planning_turn2_0a1b2c3d"], ["planning_turn4_0a1b2c3d"]]


def test_the_v4_header_line_gives_no_row():
    header = {"_meta": {"file_name": "f", "total_pairs": 3, "version": "4.0.0", "format_spec": "brightrun-lora-v4"}}
    assert list(rows([header, *synthetic()], "messages")) == EXPECTED["messages", "conversation"]


def test_user_turns_in_the_input_are_skipped():
    every_pair = [dict(p, id=f"{p['id']}_x", conversation_id=CID) for p in planning_pairs()]
    assert list(rows(every_pair, "messages")) == [{"messages": [S, M1, M2, M3, M4]}]


def test_a_missing_system_prompt_is_left_out_for_the_checker():
    row = v4(conversation(CID, planning_pairs()))[0]
    row["system_prompt"] = None
    assert list(rows([row], "messages")) == [{"messages": [M1, M2]}]
    assert list(rows([row], "alpaca")) == [{"instruction": U1, "input": "", "output": A2, "system": "", "history": []}]
    assert "missing_system_prompt" in preflight.problems(parse(next(rows([row], "alpaca")), "alpaca").messages)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("prompt-completion", "conversation"), ("messages", "turn"), ("chatml", None)]
)
def test_unknown_format_or_mode_refused_before_reading(fmt, mode):
    def never():
        raise AssertionError("read the input")
        yield

    with pytest.raises(ValueError, match=fmt if mode is None else mode):
        rows(never(), fmt, mode)


def test_streaming_holds_one_conversation_at_a_time():
    read = []

    def source():
        for row in synthetic():
            read.append(row["conversation_id"])
            yield row

    out = rows(source(), "messages", "pair")
    next(out)
    # The first conversation (2 rows) plus the row that shows it has ended.
    assert read == [CID, CID, OTHER]


def test_rows_by_conversation_gives_each_rows_conversation():
    assert [cid for cid, _ in rows_by_conversation(synthetic(), "sharegpt", "pair")] == [CID, CID, OTHER]


def test_split_is_a_stable_function_of_the_conversation_id():
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(2000)]
    sides = [split_of(cid, 0.2) for cid in ids]
    assert set(sides) == {"train", "validation"}
    assert 0.16 < sides.count("validation") / len(ids) < 0.24
    # A larger fraction only moves conversations to validation, never back.
    assert all(split_of(cid, 0.5) == "validation" for cid, side in zip(ids, sides) if side == "validation")
    assert {split_of(cid, 0) for cid in ids} == {"train"} and {split_of(cid, 1) for cid in ids} == {"validation"}
    # Pinned: the same ids land on the same side in every release.
    assert [split_of(cid, 0.5) for cid in ids[:8]] == PINNED_SPLIT


PINNED_SPLIT = ["train", "train", "validation", "validation", "validation", "train", "validation", "train"]


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_split_refuses_a_fraction_outside_0_1(fraction):
    with pytest.raises(ValueError):
        split_of(CID, fraction)


# Real data: the 7 reference conversations.


def reference_conversations():
    require_reference()
    out = []
    for path in sorted((REFERENCE / "enriched").glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        cid = doc["dataset_metadata"]["dataset_name"].removeprefix("fp_conversation_")
        member = {
            "conversation_id": cid,
            "created_at": None,
            "batch_job_id": None,
            "quality_score": 3.0,
            "persona_key": None,
            "emotional_arc_key": None,
            "topic_key": None,
        }
        out.append(builder.conversation_entry(member, doc))
    return out


@pytest.fixture(scope="module")
def reference():
    conversations = reference_conversations()
    assert len(conversations) == 7 and sum(len(c["training_pairs"]) for c in conversations) == 44
    return conversations


@pytest.mark.parametrize(("fmt", "mode"), list(EXPECTED))
def test_reference_rows_are_clean(reference, fmt, mode):
    v4_rows = v4(*reference)
    out = list(rows(v4_rows, fmt, mode, metadata={}))
    assert len(out) == (7 if mode == "conversation" else 20)
    assert len({tuple(row) for row in out}) == 1  # same keys on every line
    assert len({tuple(row["metadata"]) for row in out}) == 1
    for row in out:
        messages = parse(row, fmt).messages
        assert preflight.problems(messages) == set()
        assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * ((len(messages) - 1) // 2)
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert len(users) == len(set(users))  # no user turn written twice
    # Every pair with a target is named by exactly one row.
    assert [pid for row in out for pid in row["metadata"]["pair_ids"]] == [row["id"] for row in v4_rows]


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "alpaca"])
def test_reference_conversation_rows_train_every_reply_exactly_once(reference, fmt):
    replies = [
        pair["target_response"]
        for c in reference
        for pair in c["training_pairs"]
        if pair["target_response"] is not None
    ]
    trained = [
        m["content"]
        for row in rows(v4(*reference), fmt, "conversation")
        for m in parse(row, fmt).messages
        if m["role"] == "assistant"
    ]
    assert len(replies) == 20 and trained == replies
