"""Pure construction of a training file: records and documents in, JSON, JSONL and statistics out.

No I/O here. Layout, ordering and statistics follow `format-v4.md` sections 3 and 4.
"""

from collections.abc import Iterable, Iterator

import orjson

from trainfiles.core.enriched import round2, scaffolding_of, tier

VERSION = "4.0.0"
FORMAT_SPEC = "brightrun-lora-v4"
JSONL_KEYS = (
    "conversation_metadata",
    "system_prompt",
    "conversation_history",
    "current_user_input",
    "emotional_context",
    "target_response",
    "training_metadata",
)


def conversation_entry(member: dict, doc: dict) -> dict:
    """One `conversations[]` entry: our metadata, then the document's pairs verbatim.

    `member` holds the recorded values: conversation_id, created_at, batch_job_id,
    quality_score and the scaffolding keys.
    """
    names = scaffolding_of(doc)
    created = member.get("created_at") or doc["dataset_metadata"].get("created_date") or ""
    meta = {
        "conversation_id": member["conversation_id"],
        "source_file": f"fp_conversation_{member['conversation_id']}.json",
        "created_date": str(created)[:10],
    }
    if member.get("batch_job_id"):
        meta["batch_id"] = member["batch_job_id"]
    meta["total_turns"] = len(doc["training_pairs"])
    meta["quality_tier"] = tier(member.get("quality_score"))
    meta["scaffolding"] = {
        "persona_key": member.get("persona_key") or names["persona_key"],
        "persona_name": names["persona_name"],
        "emotional_arc_key": member.get("emotional_arc_key") or names["emotional_arc_key"],
        "emotional_arc": names["emotional_arc"],
        "training_topic_key": member.get("topic_key") or names["training_topic_key"],
        "training_topic": names["training_topic"],
    }
    return {"conversation_metadata": meta, "training_pairs": doc["training_pairs"]}


class Tally:
    """Statistics taken one member at a time, so a file of any size is never held whole.

    Exact: scores are summed in file order from zero, as `sum()` on Python 3.11 does, and
    never approximated from tiers. `result()` is format-v4's statistics object.
    """

    def __init__(self) -> None:
        self.count = self.pairs = self.reviewed = self.scored = 0
        self.score_sum = 0
        self.low: float | None = None
        self.high: float | None = None
        self.personas: dict[str, int] = {}
        self.arcs: dict[str, int] = {}
        self.topics: dict[str, int] = {}

    def add(self, member: dict) -> None:
        self.count += 1
        self.pairs += member["training_pairs"]
        score = member.get("quality_score")
        if score is not None:
            self.scored += 1
            self.score_sum += score
            self.low = score if self.low is None else min(self.low, score)
            self.high = score if self.high is None else max(self.high, score)
        if member.get("human_reviewed"):
            self.reviewed += 1
        for counts, key in (
            (self.personas, "persona_key"),
            (self.arcs, "emotional_arc_key"),
            (self.topics, "topic_key"),
        ):
            if value := member.get(key):
                counts[value] = counts.get(value, 0) + 1

    def result(self) -> dict:
        scored = self.scored
        return {
            "total_conversations": self.count,
            "total_training_pairs": self.pairs,
            "quality_summary": {
                "avg_quality_score": round2(self.score_sum / scored) if scored else None,
                "min_quality_score": round2(self.low) if scored else None,
                "max_quality_score": round2(self.high) if scored else None,
                "human_reviewed_count": self.reviewed,
                "human_reviewed_percentage": round2(100 * self.reviewed / self.count) if self.count else 0,
            },
            "scaffolding_distribution": {
                "personas": dict(self.personas),
                "emotional_arcs": dict(self.arcs),
                "training_topics": dict(self.topics),
            },
        }


def statistics(members: Iterable[dict]) -> dict:
    """Exact statistics over members' recorded values, in one pass."""
    tally = Tally()
    for member in members:
        tally.add(member)
    return tally.result()


def metadata(*, name: str, created: str, updated: str, target_model: str | None, vertical: str, stats: dict) -> dict:
    """`training_file_metadata`, keys in the order of format-v4 section 3."""
    meta = {
        "file_name": name,
        "version": VERSION,
        "format_spec": FORMAT_SPEC,
        "created_date": created,
        "last_updated": updated,
    }
    if target_model:
        meta["target_model"] = target_model
    meta["vertical"] = vertical
    meta.update(stats)
    return meta


def build_document(
    *,
    name: str,
    created: str,
    updated: str,
    target_model: str | None,
    vertical: str,
    profile: dict,
    conversations: list[dict],
    stats: dict,
) -> dict:
    """The full training JSON document, keys in the order of format-v4 section 3."""
    meta = metadata(
        name=name, created=created, updated=updated, target_model=target_model, vertical=vertical, stats=stats
    )
    return {"training_file_metadata": meta, "consultant_profile": profile, "conversations": conversations}


# The full JSON in pieces, byte for byte what orjson writes for the whole document with a
# 2-space indent: a head (metadata and profile), the conversations one by one, a tail. A
# file of any size is written, and grown, one conversation at a time.
_INDENT = orjson.OPT_INDENT_2
JSON_ENTRIES_START = b'\n  "conversations": [\n'  # ends the head; nothing else has this shape
JSON_SEPARATOR = b",\n"
JSON_TAIL = b"\n  ]\n}\n"


def _nested(value, spaces: int) -> bytes:
    # Raw newlines only separate tokens (in strings they are escaped), so indenting every
    # line is a replace.
    return orjson.dumps(value, option=_INDENT).replace(b"\n", b"\n" + b" " * spaces)


def json_head(meta: dict, profile: dict) -> bytes:
    return (
        b'{\n  "training_file_metadata": '
        + _nested(meta, 2)
        + b',\n  "consultant_profile": '
        + _nested(profile, 2)
        + b","
        + JSON_ENTRIES_START
    )


def json_entry(entry: dict) -> bytes:
    """One `conversations[]` entry as it stands in the file (no separator)."""
    return b"    " + _nested(entry, 4)


def jsonl_head(file_name: str, total_pairs: int) -> bytes:
    """The JSONL's `_meta` line, counting the rows that follow."""
    header = {
        "_meta": {"file_name": file_name, "total_pairs": total_pairs, "version": VERSION, "format_spec": FORMAT_SPEC}
    }
    return orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE)


def jsonl_entry(entry: dict) -> tuple[bytes, int]:
    """One conversation's JSONL lines and how many there are."""
    lines = [orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in jsonl_rows([entry])]
    return b"".join(lines), len(lines)


def render_json(doc: dict) -> bytes:
    """UTF-8, unescaped, 2-space indent, final newline."""
    entries = JSON_SEPARATOR.join(json_entry(c) for c in doc["conversations"])
    return json_head(doc["training_file_metadata"], doc["consultant_profile"]) + entries + JSON_TAIL


def jsonl_rows(conversations: Iterable[dict]) -> Iterator[dict]:
    """One row per pair with a target response, keys in the order of format-v4 section 4."""
    for conversation in conversations:
        cid = conversation["conversation_metadata"]["conversation_id"]
        for pair in conversation["training_pairs"]:
            if pair["target_response"] is None:
                continue
            row = {"id": f"{pair['id']}_{cid[:8]}", "conversation_id": cid, "turn_number": pair["turn_number"]}
            row.update((key, pair[key]) for key in JSONL_KEYS)
            yield row


def render_jsonl(doc: dict) -> bytes:
    """The JSONL: a `_meta` header counting the rows that follow, then one row per line."""
    rows = [jsonl_entry(c) for c in doc["conversations"]]
    head = jsonl_head(doc["training_file_metadata"]["file_name"], sum(n for _, n in rows))
    return b"".join([head, *(lines for lines, _ in rows)])
