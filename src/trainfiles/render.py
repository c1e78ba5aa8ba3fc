"""Human output: aligned tables and summaries as plain text. Machines use `--json` instead."""

from datetime import datetime

from . import clock


def stdout():
    """A rich console for data on standard output: no colour or wrapping when piped."""
    from rich.console import Console

    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, highlight=False, width=240, no_color=True)
    return console


def size(n: int | None) -> str:
    """Bytes as a short human size: 512 B, 48.2 KB, 3.1 MB."""
    if n is None:
        return "-"
    if n < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def age(timestamp: str | None, now: datetime) -> str:
    """How long ago an ISO timestamp was: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "-"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((now - then).total_seconds()))
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds // span}{unit}"
    return f"{seconds}s"


def counts(mapping: dict[str, int]) -> str:
    """A distribution as `key count` pairs, most frequent first."""
    ordered = sorted(mapping.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{key} {n}" for key, n in ordered) or "-"


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def aligned(headers: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """A table as aligned text: a header, a rule, one line per row.

    Rich's Table takes 0.45 s or more to lay out 1,000 rows here, which alone breaks the
    `list` target of 0.3 s; cells here are single-line, so column widths are all we need.
    Widths count terminal cells (rich.cells), so wide characters still line up.
    """
    from rich.cells import cell_len

    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = []
        for i, (cell, width) in enumerate(zip(cells, widths)):
            gap = " " * (width - cell_len(cell))
            padded.append(gap + cell if i in right else cell + gap)
        return "  ".join(padded).rstrip()

    rule = "  ".join("─" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)]) + "\n"


FILE_COLUMNS = ["name", "conversations", "pairs", "avg quality", "personas", "arcs", "topics", "json", "jsonl", "age"]


def files_table(records: list[dict]) -> str:
    """The `list` table: one row per training file."""
    now = clock.now()
    rows = []
    for rec in records:
        dist = rec["scaffolding_distribution"]
        rows.append(
            [
                rec["name"] + ("" if rec["status"] == "active" else f" ({rec['status']})"),
                str(rec["conversation_count"]),
                str(rec["total_training_pairs"]),
                score(rec["avg_quality_score"]),
                counts(dist.get("personas", {})),
                counts(dist.get("emotional_arcs", {})),
                counts(dist.get("training_topics", {})),
                size(rec["json_file_size"]),
                size(rec["jsonl_file_size"]),
                age(rec["created_at"], now),
            ]
        )
    return aligned(FILE_COLUMNS, rows, right=frozenset({1, 2, 3, 7, 8, 9}))


def file_summary(rec: dict) -> str:
    """The `create`, `add` and `show` summary: one field per line (plain text: importing
    rich for it cost a tenth of `create`'s start-up)."""
    dist = rec["scaffolding_distribution"]
    rows = [
        ("name", rec["name"]),
        ("id", rec["id"]),
        ("status", rec["status"]),
        ("description", rec["description"] or "-"),
        ("conversations", str(rec["conversation_count"])),
        ("training pairs", str(rec["total_training_pairs"])),
        (
            "quality",
            f"avg {score(rec['avg_quality_score'])}, min {score(rec['min_quality_score'])}, "
            f"max {score(rec['max_quality_score'])}, human reviewed {rec['human_reviewed_count']}",
        ),
        ("personas", counts(dist.get("personas", {}))),
        ("emotional arcs", counts(dist.get("emotional_arcs", {}))),
        ("training topics", counts(dist.get("training_topics", {}))),
        ("json", f"{rec['json_file_path']} ({size(rec['json_file_size'])})"),
        ("jsonl", f"{rec['jsonl_file_path']} ({size(rec['jsonl_file_size'])})"),
        ("created", f"{rec['created_at']} by {rec['created_by']}"),
        ("last updated", rec["last_updated_at"]),
    ]
    rows += [("conversation ids" if i == 0 else "", cid) for i, cid in enumerate(rec.get("conversation_ids", []))]
    width = max(len(key) for key, _ in rows)
    return "".join(f"{key:<{width}}  {value}\n" for key, value in rows)


CONVERSATION_COLUMNS = ["conversation_id", "status", "batch", "persona", "arc", "topic", "quality", "reviewed", "created"]


def conversations_table(records: list[dict]) -> str:
    """The `conversations list` table."""
    rows = [
        [
            rec["conversation_id"],
            rec["enrichment_status"] or "-",
            rec["batch_job_id"] or "-",
            rec["persona_key"] or "-",
            rec["emotional_arc_key"] or "-",
            rec["topic_key"] or "-",
            score(rec["quality_score"]),
            {True: "yes", False: "no", None: "-"}[rec["human_reviewed"]],
            rec["created_at"] or "-",
        ]
        for rec in records
    ]
    return aligned(CONVERSATION_COLUMNS, rows, right=frozenset({6}))


VERSION_COLUMNS = ["version", "when", "by", "operation", "changed", "conversations", "pairs", "json sha256", "jsonl sha256"]


def versions_table(versions: list[dict]) -> str:
    """The `log` table: one row per version, oldest first."""
    rows = []
    for v in versions:
        changed = [f"+{len(v['added'])}" if v["added"] else "", f"-{len(v['removed'])}" if v["removed"] else ""]
        if v["restored_from"]:
            changed.append(f"= v{v['restored_from']}")
        rows.append(
            [
                str(v["version"]),
                v["created_at"],
                v["created_by"],
                v["operation"],
                " ".join(c for c in changed if c) or "-",
                str(v["conversation_count"]),
                str(v["total_training_pairs"]),
                v["json_sha256"][:12],
                v["jsonl_sha256"][:12],
            ]
        )
    return aligned(VERSION_COLUMNS, rows, right=frozenset({0, 5, 6}))
