"""A Hugging Face dataset card (README.md) for an exported training file. Pure: text out.

The YAML header points the Hub's `configs` at the exported files, one split each, so
`load_dataset(repo)` finds them; the body summarises quality and scaffolding.
"""

import orjson

from .render import score

TAGS = ("conversational", "sft", "lora", "brightrun-lora-v4")
# The Hub's size_categories buckets: (upper bound, label), the last one open-ended.
SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (None, "n>10M"),
)
DIMENSIONS = (("personas", "persona"), ("emotional_arcs", "emotional arc"), ("training_topics", "training topic"))


def dataset_card(record: dict, files: dict[str, str], *, rows: int) -> str:
    """README.md for `record` (a training file record) whose export is `files`.

    `files` maps a split name to its path relative to the card, in split order (e.g.
    {"train": "train.jsonl", "validation": "validation.jsonl"}); `rows` is how many rows
    those files hold in all.
    """
    return "\n".join([*_header(record["name"], files, rows), *_body(record, files, rows)])


def size_category(rows: int) -> str:
    """The Hub's size bucket for a number of rows."""
    return next(label for bound, label in SIZES if bound is None or rows < bound)


def _header(name: str, files: dict[str, str], rows: int) -> list[str]:
    lines = ["---", f"pretty_name: {_quoted(name)}", "task_categories:", "- text-generation"]
    lines += ["size_categories:", f"- {size_category(rows)}", "tags:", *(f"- {tag}" for tag in TAGS)]
    lines += ["configs:", "- config_name: default", "  data_files:"]
    for split, path in files.items():
        lines += [f"  - split: {_quoted(split)}", f"    path: {_quoted(path)}"]
    return [*lines, "---", ""]


def _body(record: dict, files: dict[str, str], rows: int) -> list[str]:
    conversations = record["conversation_count"]
    reviewed = record["human_reviewed_count"]
    share = f" ({100 * reviewed / conversations:.2f}%)" if conversations else ""
    lines = [f"# {record['name']}", ""]
    if record.get("description"):
        lines += [record["description"], ""]
    lines += [
        "LoRA fine-tuning data exported by trainfiles from a brightrun-lora-v4 training file.",
        "",
        "## Files",
        "",
        *_table(("split", "file"), files.items()),
        "",
        "## Quality",
        "",
        *_table(
            ("measure", "value"),
            [
                ("conversations", conversations),
                ("training pairs (user turns included)", record["total_training_pairs"]),
                ("rows in the files", rows),
                ("quality score (avg)", score(record["avg_quality_score"])),
                ("quality score (min)", score(record["min_quality_score"])),
                ("quality score (max)", score(record["max_quality_score"])),
                ("human reviewed conversations", f"{reviewed} of {conversations}{share}"),
            ],
        ),
        "",
        "## Scaffolding",
    ]
    distribution = record["scaffolding_distribution"]
    for key, label in DIMENSIONS:
        counts = distribution.get(key) or {}
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        shares = [(k, n, f"{100 * n / conversations:.1f}%" if conversations else "-") for k, n in ordered]
        table = _table((label, "conversations", "share"), shares) if shares else [f"No {label} recorded."]
        lines += ["", f"### {label.capitalize()}s", "", *table]
    return [*lines, ""]


def _table(headers: tuple[str, ...], rows) -> list[str]:
    """A Markdown table; cells escaped so a `|` or a newline cannot break it."""
    return [_line(headers), "|" + "---|" * len(headers), *(_line(row) for row in rows)]


def _line(values) -> str:
    return "| " + " | ".join(" ".join(str(v).split()).replace("|", "\\|") for v in values) + " |"


def _quoted(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: safe for any name or path.
    return orjson.dumps(text).decode()
