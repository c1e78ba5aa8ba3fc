"""What each page shows, gathered through the library: the files table, a file's statistics
and charts (its members read once, in one pass, for every chart and the page of members
shown), a conversation's transcript, and the conversations table with its filters. Both
the static report and the server render these with the same templates."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trainfiles import Trainfiles, TrainingFile
from trainfiles.core.trainer_formats import FORMATS as TRAINER_FORMATS
from trainfiles.web import charts

PER_PAGE = 100
QUALITY_BINS = charts.edges(1.0, 5.0, 8)
DIMENSIONS = (("persona_key", "persona"), ("emotional_arc_key", "emotional arc"), ("topic_key", "topic"))
EXPORT_FORMATS = ("json", "jsonl", *TRAINER_FORMATS, "card")
ROW_MODES = ("conversation", "pair")


@dataclass
class Tally:
    """A file's members read once: what the charts need and the page of members shown."""

    total: int = 0
    quality: list[float] = field(default_factory=list)
    reviewed: int = 0
    turns: dict[int, int] = field(default_factory=dict)
    by: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # key -> value -> [count, quality sum, scored]
    shown: list[dict] = field(default_factory=list)


def tally(members: Iterable[dict], offset: int = 0, limit: int = PER_PAGE) -> Tally:
    """Every member counted, those from `offset` (at most `limit`) kept to be listed."""
    t = Tally(by={key: {} for key, _ in DIMENSIONS})
    for i, m in enumerate(members):
        t.total += 1
        if offset <= i < offset + limit:
            t.shown.append(m)
        score = m.get("quality_score")
        if score is not None:
            t.quality.append(score)
        t.reviewed += bool(m.get("human_reviewed"))
        pairs = m.get("training_pairs") or 0
        t.turns[pairs] = t.turns.get(pairs, 0) + 1
        for key, _ in DIMENSIONS:
            cell = t.by[key].setdefault(m.get(key) or "(none)", [0, 0.0, 0])
            cell[0] += 1
            if score is not None:
                cell[1] += score
                cell[2] += 1
    return t


def file_charts(t: Tally, versions: list[Any], lengths: list[int], length_unit: str) -> dict[str, str]:
    """Every chart of a file page, by name, as SVG markup."""
    found = {
        "quality": charts.histogram(
            t.quality, QUALITY_BINS, title="Quality scores", x_label="quality score", y_label="conversations"
        ),
        "turns": charts.bars(
            [(f"{n} turn{'s' * (n != 1)}", c) for n, c in sorted(t.turns.items())],
            title="Conversations by their number of turns",
            unit="",
        ),
        "lengths": charts.histogram(
            lengths,
            charts.spread(lengths),
            title=f"Reply lengths ({length_unit})",
            x_label=length_unit,
            y_label="replies",
        ),
        "versions": charts.bars(
            [(f"v{v.version} {v.created_at[:10]} {v.operation}", v.conversation_count) for v in versions],
            title="Conversations in each version",
            unit="",
        ),
    }
    for key, name in DIMENSIONS:
        cells = sorted(t.by[key].items())
        found[f"{key}_count"] = charts.bars(
            [(value, cell[0]) for value, cell in cells], title=f"Conversations per {name}", unit=""
        )
        found[f"{key}_quality"] = charts.bars(
            [(value, cell[1] / cell[2]) for value, cell in cells if cell[2]],
            title=f"Mean quality per {name}",
            unit="",
            digits=2,
            scale=5.0,
        )
    return found


def pager(total: int, page: int, per_page: int = PER_PAGE) -> dict[str, int]:
    """The page asked for, kept within the pages there are: its number, count and offset."""
    pages = max(1, math.ceil(total / per_page))
    page = min(max(page, 1), pages)
    return {"page": page, "pages": pages, "offset": (page - 1) * per_page, "total": total}


def file_page(
    tf: Trainfiles,
    ref: str,
    page: int = 1,
    *,
    per_page: int | None = PER_PAGE,
    tokenizer: str | None = None,
    max_tokens: int | None = None,
    lengths: Callable[[TrainingFile], list[int]] | None = None,
) -> dict[str, Any]:
    """A training file's page: the file, its version log, charts, a page of its members
    (`per_page` None: all of them) and, with `max_tokens`, what that limit loses in each row
    mode (as `trainfiles check` reports). `lengths` gives the reply lengths (a cache may stand
    in for reading them)."""
    f = tf.get(ref)
    versions = f.log()
    where = pager(f.conversation_count, page, per_page or max(f.conversation_count, 1))
    t = tally(f.members(), where["offset"], per_page or f.conversation_count)
    replies = lengths(f) if lengths else f.reply_lengths(tokenizer)
    unit = "tokens" if tokenizer else "characters"
    losses = None
    if max_tokens:
        report = f.check("messages", max_tokens=max_tokens, tokenizer=tokenizer)
        losses = {"max_tokens": max_tokens, "tokenizer": report["tokenizer"], "modes": report["length_cost_by_mode"]}
    return {
        "file": f,
        "versions": list(reversed(versions)),
        "charts": file_charts(t, versions, replies, unit),
        "members": t.shown,
        "pager_state": where,
        "reviewed": t.reviewed,
        "losses": losses,
        "formats": EXPORT_FORMATS,
        "row_modes": ROW_MODES,
    }


# What a conversation's page shows of its record: a member this catalog has not registered
# (a store written before registrations were shared) has none of it.
RECORD = (
    "enrichment_status",
    "quality_score",
    "human_reviewed",
    "persona_key",
    "emotional_arc_key",
    "topic_key",
    "batch_job_id",
    "created_at",
    "invalid_reason",
    "source_error",
)


def transcript(conversation: dict, member: dict | None = None) -> dict[str, Any]:
    """A conversation's page: its metadata and its turns as a chat (each pair's user message,
    reply and emotional context; the system prompt once, as its first pair has it). What
    its record lacks, the `member` row of a file (its statistics as committed) gives."""
    conversation = {**dict.fromkeys(RECORD), **(member or {}), **conversation}
    pairs = conversation.get("pairs") or []
    turns = [
        {
            "number": p.get("turn_number"),
            "user": p.get("current_user_input"),
            "assistant": p.get("target_response"),
            "emotions": _emotions((p.get("emotional_context") or {}).get("detected_emotions")),
            "quality": (p.get("training_metadata") or {}).get("quality_score"),
            "reviewed": (p.get("training_metadata") or {}).get("human_reviewed"),
        }
        for p in pairs
    ]
    meta = (pairs[0].get("conversation_metadata") or {}) if pairs else {}
    return {
        "conversation": conversation,
        "system_prompt": pairs[0].get("system_prompt") if pairs else None,
        "metadata": {k: v for k, v in meta.items() if isinstance(v, str | int | float)},
        "turns": turns,
    }


EMOTIONS = ("primary", "primary_confidence", "secondary", "secondary_confidence", "intensity", "valence")


def _emotions(detected: object) -> dict[str, Any]:
    """A pair's detected emotions, every one the page shows named (None where the file has
    none: format-v4 requires only `primary`)."""
    return {key: detected.get(key) for key in EMOTIONS} if isinstance(detected, dict) and detected else {}


FILTERS = ("status", "batch", "persona", "arc", "topic", "quality_min", "quality_max", "review")
_COLUMNS = {"persona": "persona_key", "arc": "emotional_arc_key", "topic": "topic_key"}


def parse_filters(params: dict[str, str]) -> dict[str, Any]:
    """The conversations table's filters from query or form fields (blank ones left out);
    quality bounds as numbers (one that is not a number is ignored)."""
    found: dict[str, Any] = {}
    for name in FILTERS:
        value = (params.get(name) or "").strip()
        if not value:
            continue
        if name.startswith("quality_"):
            try:
                found[name] = float(value)
            except ValueError:
                continue
        else:
            found[name] = value
    return found


def matching(conversations: Iterable[dict], filters: dict[str, Any]) -> Iterator[dict]:
    """The conversations every filter lets through: status, batch, persona, arc, topic (equal),
    quality_min and quality_max (inclusive; no score fails both), review ("reviewed" or "not")."""
    for c in conversations:
        if "status" in filters and c.get("enrichment_status") != filters["status"]:
            continue
        if "batch" in filters and c.get("batch_job_id") != filters["batch"]:
            continue
        if any(name in filters and c.get(column) != filters[name] for name, column in _COLUMNS.items()):
            continue
        score = c.get("quality_score")
        if "quality_min" in filters and (score is None or score < filters["quality_min"]):
            continue
        if "quality_max" in filters and (score is None or score > filters["quality_max"]):
            continue
        if "review" in filters and bool(c.get("human_reviewed")) != (filters["review"] == "reviewed"):
            continue
        yield c


def conversations_page(tf: Trainfiles, filters: dict[str, Any], page: int = 1) -> dict[str, Any]:
    """The conversations table: those matching `filters`, a page of them, the values each
    filter can take, and the active files one may add to."""
    everything = tf.conversations()
    found = list(matching(everything, filters))
    where = pager(len(found), page)
    choices = {
        "status": sorted({c["enrichment_status"] for c in everything if c.get("enrichment_status")}),
        "batch": sorted({c["batch_job_id"] for c in everything if c.get("batch_job_id")}),
        **{name: sorted({c[column] for c in everything if c.get(column)}) for name, column in _COLUMNS.items()},
    }
    return {
        "rows": found[where["offset"] : where["offset"] + PER_PAGE],
        "pager_state": where,
        "filters": filters,
        "choices": choices,
        "files": tf.files(status="active"),
    }


def matching_ids(tf: Trainfiles, filters: dict[str, Any]) -> list[str]:
    """Every conversation id the filters let through: "select all that match"."""
    return [c["conversation_id"] for c in matching(tf.conversations(), filters)]


def index_page(tf: Trainfiles, refs: Iterable[str] = (), status: str = "all") -> dict[str, Any]:
    """The files table: the files named, or every file of `status`."""
    names = list(refs)
    files = [tf.get(ref) for ref in names] if names else tf.files(status=status)
    return {"files": files, "status": status, "statuses": ("all", "active", "archived")}
