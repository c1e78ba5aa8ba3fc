"""The pure builder: exact documents, JSONL lines and statistics."""

import orjson
import pytest

from trainfiles.core import builder
from trainfiles.core.enriched import round2, tier

CID = "0a1b2c3d-1111-4222-8333-444455556666"


def pair(turn, target, *, quality=3, reviewed=False, extra=None):
    return {
        "id": f"educational_turn{turn}",
        "conversation_id": "educational",
        "turn_number": turn,
        "conversation_metadata": {"client_persona": "Ana → Ávila", "persona_archetype": "anxious_planner"},
        "system_prompt": "Be kind.",
        "conversation_history": [],
        "current_user_input": f"question {turn} — 💸",
        "emotional_context": {"detected_emotions": {"primary": "anxiety"}},
        "target_response": target,
        "training_metadata": {"quality_score": quality, "human_reviewed": reviewed, **(extra or {})},
    }


def document():
    return {
        "dataset_metadata": {"dataset_name": f"fp_conversation_{CID}", "created_date": "2025-12-02", "vertical": "fp"},
        "consultant_profile": {"name": "Elena"},
        "training_pairs": [pair(1, None), pair(2, "answer 2.8", extra={"score": 2.8}), pair(3, None), pair(4, "ok")],
        "input_parameters": {
            "persona_key": "anxious_planner",
            "persona_name": "Jennifer",
            "emotional_arc_key": "fear_to_confidence",
            "emotional_arc_name": "Fear → Confidence",
            "training_topic_key": "eldercare_costs",
            "training_topic_name": "Eldercare",
        },
    }


MEMBER = {
    "conversation_id": CID,
    "created_at": "2025-12-02",
    "batch_job_id": "b-1",
    "quality_score": 3.6,
    "persona_key": "anxious_planner",
    "emotional_arc_key": "fear_to_confidence",
    "topic_key": "eldercare_costs",
}


def test_conversation_entry_metadata_then_pairs_verbatim():
    doc = document()
    entry = builder.conversation_entry(MEMBER, doc)
    assert entry == {
        "conversation_metadata": {
            "conversation_id": CID,
            "source_file": f"fp_conversation_{CID}.json",
            "created_date": "2025-12-02",
            "batch_id": "b-1",
            "total_turns": 4,
            "quality_tier": "production",
            "scaffolding": {
                "persona_key": "anxious_planner",
                "persona_name": "Jennifer",
                "emotional_arc_key": "fear_to_confidence",
                "emotional_arc": "Fear → Confidence",
                "training_topic_key": "eldercare_costs",
                "training_topic": "Eldercare",
            },
        },
        "training_pairs": doc["training_pairs"],
    }


def test_entry_without_batch_or_input_parameters_falls_back_to_first_pair():
    doc = document()
    del doc["input_parameters"]
    entry = builder.conversation_entry({**MEMBER, "batch_job_id": None, "persona_key": None}, doc)
    meta = entry["conversation_metadata"]
    assert "batch_id" not in meta
    assert list(meta) == [
        "conversation_id",
        "source_file",
        "created_date",
        "total_turns",
        "quality_tier",
        "scaffolding",
    ]
    assert meta["scaffolding"] == {
        "persona_key": "anxious_planner",
        "persona_name": "Ana → Ávila",
        "emotional_arc_key": "fear_to_confidence",
        "emotional_arc": "",
        "training_topic_key": "eldercare_costs",
        "training_topic": "",
    }


def test_statistics_exact_from_members():
    members = [
        {
            "quality_score": 4.55,
            "human_reviewed": True,
            "persona_key": "a",
            "emotional_arc_key": "x",
            "topic_key": "t",
            "training_pairs": 8,
        },
        {
            "quality_score": 2.8,
            "human_reviewed": False,
            "persona_key": "b",
            "emotional_arc_key": "x",
            "topic_key": "t",
            "training_pairs": 5,
        },
        {
            "quality_score": None,
            "human_reviewed": True,
            "persona_key": "a",
            "emotional_arc_key": "y",
            "topic_key": "t",
            "training_pairs": 3,
        },
    ]
    assert builder.statistics(members) == {
        "total_conversations": 3,
        "total_training_pairs": 16,
        "quality_summary": {
            "avg_quality_score": 3.68,  # (4.55 + 2.8) / 2 = 3.675, half up
            "min_quality_score": 2.8,
            "max_quality_score": 4.55,
            "human_reviewed_count": 2,
            "human_reviewed_percentage": 66.67,
        },
        "scaffolding_distribution": {
            "personas": {"a": 2, "b": 1},
            "emotional_arcs": {"x": 2, "y": 1},
            "training_topics": {"t": 3},
        },
    }


def test_statistics_without_scores_are_null():
    stats = builder.statistics([{"quality_score": None, "human_reviewed": False, "training_pairs": 2}])
    assert stats["quality_summary"] == {
        "avg_quality_score": None,
        "min_quality_score": None,
        "max_quality_score": None,
        "human_reviewed_count": 0,
        "human_reviewed_percentage": 0.0,
    }


def build(target_model=None):
    doc = document()
    entry = builder.conversation_entry(MEMBER, doc)
    stats = builder.statistics([{**MEMBER, "human_reviewed": False, "training_pairs": 4}])
    return builder.build_document(
        name="dec",
        created="2025-12-01T00:00:00Z",
        updated="2025-12-02T00:00:00Z",
        target_model=target_model,
        vertical="fp",
        profile=doc["consultant_profile"],
        conversations=[entry],
        stats=stats,
    )


def test_document_metadata_key_order():
    doc = build(target_model="llama-3.1-8b")
    assert list(doc) == ["training_file_metadata", "consultant_profile", "conversations"]
    assert list(doc["training_file_metadata"]) == [
        "file_name",
        "version",
        "format_spec",
        "created_date",
        "last_updated",
        "target_model",
        "vertical",
        "total_conversations",
        "total_training_pairs",
        "quality_summary",
        "scaffolding_distribution",
    ]
    assert "target_model" not in build()["training_file_metadata"]


def test_render_json_is_utf8_indented_and_keeps_numbers():
    text = builder.render_json(build()).decode("utf-8")
    assert text.startswith('{\n  "training_file_metadata": {\n    "file_name": "dec",\n')
    assert "Fear → Confidence" in text and "💸" in text and "\\u" not in text
    assert '"score": 2.8' in text
    assert text.endswith("}\n")


def test_render_jsonl_header_and_rows():
    lines = builder.render_jsonl(build()).split(b"\n")
    assert lines[-1] == b""  # final newline
    assert orjson.loads(lines[0]) == {
        "_meta": {"file_name": "dec", "total_pairs": 2, "version": "4.0.0", "format_spec": "brightrun-lora-v4"}
    }
    rows = [orjson.loads(line) for line in lines[1:-1]]
    assert [r["id"] for r in rows] == ["educational_turn2_0a1b2c3d", "educational_turn4_0a1b2c3d"]
    source = document()["training_pairs"][1]
    assert rows[0] == {
        "id": "educational_turn2_0a1b2c3d",
        "conversation_id": CID,
        "turn_number": 2,
        "conversation_metadata": source["conversation_metadata"],
        "system_prompt": source["system_prompt"],
        "conversation_history": source["conversation_history"],
        "current_user_input": source["current_user_input"],
        "emotional_context": source["emotional_context"],
        "target_response": "answer 2.8",
        "training_metadata": source["training_metadata"],
    }
    assert list(rows[0]) == list(rows[1])
    assert lines[1].startswith(b'{"id":"educational_turn2_0a1b2c3d","conversation_id":')


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (None, "experimental"),
        (4.5, "seed_dataset"),
        (4.49, "production"),
        (3.5, "production"),
        (2.5, "experimental"),
        (2.49, "rejected"),
    ],
)
def test_tier(score, expected):
    assert tier(score) == expected


@pytest.mark.parametrize(("value", "expected"), [(2.675, 2.68), (2.665, 2.67), (1 / 3, 0.33), (3, 3.0)])
def test_round2_half_up_on_the_decimal_value(value, expected):
    assert round2(value) == expected


def test_the_json_in_pieces_is_byte_for_byte_what_orjson_writes_for_the_whole_document():
    """Head, entries and tail: the streaming writer's pieces, on tricky values and the real
    reference conversations (nested lists, newlines in strings, empty maps, unicode)."""
    from conftest import REFERENCE, require_reference

    require_reference()

    docs = [document()] + [orjson.loads(p.read_bytes()) for p in sorted((REFERENCE / "enriched").glob("*.json"))]
    entries = [builder.conversation_entry({"conversation_id": CID, "quality_score": 4.2}, d) for d in docs]
    profile = {"name": "Elena", "empty": {}, "list": [], "text": 'line\nnext \u2028 "quoted"'}
    doc = builder.build_document(
        name="dec",
        created="2025-12-01T00:00:00Z",
        updated="2025-12-02T00:00:00Z",
        target_model=None,
        vertical="fp",
        profile=profile,
        conversations=entries,
        stats=builder.statistics([]),
    )
    whole = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    assert builder.render_json(doc) == whole
    head = builder.json_head(doc["training_file_metadata"], profile)
    assert whole.startswith(head) and whole.endswith(builder.JSON_TAIL)
    assert whole[len(head) : -len(builder.JSON_TAIL)] == builder.JSON_SEPARATOR.join(
        builder.json_entry(e) for e in entries
    )
    assert whole.count(builder.JSON_ENTRIES_START) == 1
