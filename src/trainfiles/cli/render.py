"""Human output, one look for every command: aligned plain-text tables and `label  value`
summaries. Machines use `--json` (or `list --csv/--tsv/--nl`) instead."""

import math
import os
import shutil
import sys
from datetime import datetime

from trainfiles.core import clock
from trainfiles.core.card import score


def terminal_width() -> int | None:
    """Columns a table may use: $COLUMNS, else the terminal's; None (no limit) when piped."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


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


def aligned(
    headers: list[str],
    rows: list[list[str]],
    right: frozenset[int] = frozenset(),
    width: int | None = None,
    optional: tuple[int, ...] = (),
    shrink: int | None = None,
) -> str:
    """A table as aligned text: a header, a rule, one line per row. Columns named in
    `optional` are left out, in that order, until the table fits in `width`; then the
    column `shrink` (kept whatever the width) is cut, its long cells ending in `…`.

    Rich's Table takes 0.45 s or more to lay out 1,000 rows here, which alone breaks the
    `list` target of 0.3 s; cells here are single-line, so column widths are all we need.
    Widths count terminal cells (rich.cells), so wide characters still line up.
    """
    from rich.cells import cell_len

    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    kept = list(range(len(headers)))
    for column in optional:
        if width is None or sum(widths[i] + 2 for i in kept) - 2 <= width:
            break
        kept.remove(column)
    if len(kept) < len(headers):
        headers, widths = [headers[i] for i in kept], [widths[i] for i in kept]
        right = frozenset(n for n, i in enumerate(kept) if i in right)
        rows = [[r[i] for i in kept] for r in rows]
    excess = sum(w + 2 for w in widths) - 2 - width if width is not None else 0
    if shrink is not None and excess > 0:
        from rich.cells import set_cell_size

        narrow = max(cell_len(headers[shrink]), widths[shrink] - excess, 4)
        rows = [
            [set_cell_size(c, narrow - 1) + "…" if i == shrink and cell_len(c) > narrow else c for i, c in enumerate(r)]
            for r in rows
        ]
        widths[shrink] = narrow

    def line(cells: list[str]) -> str:
        padded = []
        for i, (cell, width) in enumerate(zip(cells, widths)):
            gap = " " * (width - cell_len(cell))
            padded.append(gap + cell if i in right else cell + gap)
        return "  ".join(padded).rstrip()

    rule = "  ".join("─" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)]) + "\n"


FILE_COLUMNS = ["name", "id", "conversations", "pairs", "quality", "scaffolding", "target model", "jsonl", "by", "age"]
# Left out in this order when the terminal is too narrow for them; never the id, which
# prefixes are typed from.
FILE_OPTIONAL = (6, 8, 5, 7, 4, 3, 9)


def files_table(records: list[dict], width: int | None = None) -> str:
    """The `list` table: one row per training file, in `width` columns when given."""
    now = clock.now()
    rows = [
        [
            rec["name"] + ("" if rec["status"] == "active" else f" ({rec['status']})"),
            rec["id"][:8],
            str(rec["conversation_count"]),
            str(rec["total_training_pairs"]),
            score(rec["avg_quality_score"]),
            scaffolding(rec["scaffolding_distribution"]),
            rec["target_model"] or "-",
            size(rec["jsonl_file_size"]),
            rec["created_by"],
            age(rec["created_at"], now),
        ]
        for rec in records
    ]
    return aligned(FILE_COLUMNS, rows, right=frozenset({2, 3, 4, 7, 9}), width=width, optional=FILE_OPTIONAL, shrink=0)


def scaffolding(distribution: dict[str, dict[str, int]]) -> str:
    """The scaffolding distribution summarised: `3 personas, 2 arcs, 4 topics`."""
    parts = [
        f"{len(distribution[key])} {label if len(distribution[key]) != 1 else label[:-1]}"
        for key, label in (("personas", "personas"), ("emotional_arcs", "arcs"), ("training_topics", "topics"))
        if distribution.get(key)
    ]
    return ", ".join(parts) or "-"


def fields(rows: list[tuple[str, str]]) -> str:
    """A summary: one `label  value` line per field, values aligned."""
    width = max(len(label) for label, _ in rows)
    return "".join(f"{label:<{width}}  {value}".rstrip() + "\n" for label, value in rows)


def file_summary(rec: dict) -> str:
    """The summary `create`, `add`, `show` and the other changes print: every field, the
    full scaffolding distribution, and with `show` the JSONL's rows and the member ids."""
    dist = rec["scaffolding_distribution"]
    rows = [
        ("name", rec["name"]),
        ("id", rec["id"]),
        ("status", rec["status"]),
        ("version", str(rec["version"])),
        ("description", rec["description"] or "-"),
        ("target model", rec["target_model"] or "-"),
        ("conversations", str(rec["conversation_count"])),
        ("training pairs", str(rec["total_training_pairs"])),
    ]
    if "jsonl_rows" in rec:
        rows.append(
            ("jsonl rows", f"{rec['jsonl_rows']} (training pairs with a target response; the others are user turns)")
        )
    rows += [
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
    return fields(rows)


CONVERSATION_COLUMNS = [
    "conversation_id",
    "status",
    "batch",
    "persona",
    "arc",
    "topic",
    "quality",
    "reviewed",
    "created",
    "source",
]
CONVERSATION_OPTIONAL = (4, 5, 3, 2, 8, 7)


def conversations_table(records: list[dict], width: int | None = None) -> str:
    """The `conversations list` table, with each conversation's source file."""
    rows = [
        [
            rec["conversation_id"],
            rec["enrichment_status"] or "-",
            rec["batch_job_id"] or "-",
            rec["persona_key"] or "-",
            rec["emotional_arc_key"] or "-",
            rec["topic_key"] or "-",
            score(rec["quality_score"]),
            _yes_no(rec["human_reviewed"]),
            rec["created_at"] or "-",
            rec["enriched_file_path"] or "-",
        ]
        for rec in records
    ]
    return aligned(CONVERSATION_COLUMNS, rows, right=frozenset({6}), width=width, optional=CONVERSATION_OPTIONAL)


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[value]


def conversation_summary(rec: dict) -> str:
    """`conversations show`: the record, then one line per training pair of the source."""
    pairs = "-" if rec["training_pairs"] is None else str(rec["training_pairs"])
    rows = [
        ("conversation id", rec["conversation_id"]),
        ("status", rec["enrichment_status"] or "-"),
        ("source", rec["enriched_file_path"] or "-"),
        ("batch", rec["batch_job_id"] or "-"),
        ("persona", rec["persona_key"] or "-"),
        ("emotional arc", rec["emotional_arc_key"] or "-"),
        ("topic", rec["topic_key"] or "-"),
        ("quality", f"{score(rec['quality_score'])} ({rec['tier'] or '-'})"),
        ("human reviewed", _yes_no(rec["human_reviewed"])),
        ("created", rec["created_at"] or "-"),
        ("training pairs", pairs if rec["source_error"] is None else f"- ({rec['source_error']})"),
    ]
    if rec["invalid_reason"]:
        rows.append(("invalid", rec["invalid_reason"]))
    if rec["jsonl_rows"] is not None:
        rows.append(
            ("jsonl rows", f"{rec['jsonl_rows']} (training pairs with a target response; the others are user turns)")
        )
    text = fields(rows)
    if rec["turns"]:
        turns = [
            [
                str(t["turn_number"]),
                _yes_no(t["has_target_response"]),
                score(t["quality_score"]),
                _yes_no(t["human_reviewed"]),
            ]
            for t in rec["turns"]
        ]
        text += "\n" + aligned(["turn", "target response", "quality", "reviewed"], turns, right=frozenset({0, 2}))
    return text


def check_report(report: dict) -> str:
    """`check`: a summary, what the context length costs, then the errors and warnings that
    occurred, one table each."""
    from trainfiles.core.preflight import ERRORS, WARNINGS, warned

    tokens, loss = report["tokens"], report["loss_tokens"]
    warnings = warned(report)
    result = "errors found" if not report["ok"] else f"ok, with warnings ({', '.join(warnings)})" if warnings else "ok"
    text = fields(
        [
            *(
                [("source", report["source"] + f", as {report['format']} rows ({report['rows_mode']} mode)")]
                if "source" in report
                else []
            ),
            ("format", report["format"]),
            ("rows", str(report["rows"])),
            ("tokenizer", report["tokenizer"]),
            ("tokens per row", " ".join(f"{key} {tokens[key]}" for key in ("min", "mean", "p50", "p90", "max"))),
            ("loss tokens", f"{loss['total']} ({loss['unique']} unique, {loss['repeated']} repeated)"),
            ("result", result),
        ]
    )
    text += f"\nloss tokens kept at {report['max_tokens']} tokens per row\n" + _length_cost(report)
    for title, labels in (("errors", ERRORS), ("warnings", WARNINGS)):
        found = [
            [
                labels[category] + (f" ({report['max_tokens']})" if category == "over_max_tokens" else ""),
                str(hits["count"]),
                ", ".join(map(str, hits["rows"])),
            ]
            for category, hits in report[title].items()
            if hits["count"]
        ]
        if found:
            text += f"\n{title}\n" + aligned(["problem", "rows", "first rows"], found, right=frozenset({1}))
    return text


def _length_cost(report: dict) -> str:
    """Loss tokens kept per row mode by each way of handling rows over the length."""
    by_mode = report.get("length_cost_by_mode") or {report.get("rows_mode") or "as exported": report["length_cost"]}
    rows = [
        [
            mode,
            f"{_share(cost['truncating'])}, {counted(cost['truncating']['rows_left_without_loss'], 'row', 'rows')} left with no loss",
            f"{_share(cost['dropping'])}, {counted(cost['dropping']['rows_dropped'], 'row', 'rows')} dropped",
            f"{_share(cost['fitted'])}, {counted(cost['fitted']['replies_too_long'], 'reply', 'replies')} too long, "
            f"{counted(cost['fitted']['user_turns_trimmed'], 'user turn', 'user turns')} trimmed",
        ]
        for mode, cost in by_mode.items()
    ]
    return aligned(
        ["rows", "truncated (TRL max_length)", "dropped (Axolotl sequence_len)", "export --max-tokens"], rows
    )


def _share(entry: dict) -> str:
    total = entry["kept"] + entry["lost"]
    # Rounded down: 100.0% only when nothing is lost.
    return f"{entry['kept']} of {total} ({math.floor(1000 * entry['kept'] / total) / 10:.1f}%)" if total else "0 of 0"


def counted(n: int, one: str, many: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{n} {one if n == 1 else many}"


VERSION_COLUMNS = [
    "version",
    "when",
    "by",
    "operation",
    "changed",
    "conversations",
    "pairs",
    "json sha256",
    "jsonl sha256",
]


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


# What would include conversations left out for a reason, where something would.
LEFT_OUT_HINTS = {
    "consultant_profile differs from the file's": "a file created with --profile FILE takes conversations whatever their profile",
}


def left_out(skipped: list[dict]) -> str:
    """One line: how many `--skip-invalid` left out for each reason, and what would include them."""
    reasons: dict[str, int] = {}
    for item in skipped:
        reason = item["reason"].split(": ", 1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = [
        f"{n} {reason}" + (f" ({LEFT_OUT_HINTS[reason]})" if reason in LEFT_OUT_HINTS else "")
        for reason, n in reasons.items()
    ]
    return f"left out {counted(len(skipped), 'conversation', 'conversations')}: " + "; ".join(parts)
