"""A Hugging Face dataset card (README.md) for an exported training file. Pure: text out.

The YAML header points the Hub's `configs` at the exported files, one split each, so
`load_dataset(repo)` finds them; the body summarises quality and scaffolding.
"""

import orjson

TAGS = ("conversational", "sft", "lora", "brightrun-lora-v4")
# The Hub's size_categories buckets by upper bound; above the last one: "n>1T".
SIZES = (
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)
DIMENSIONS = (("personas", "persona"), ("emotional_arcs", "emotional arc"), ("training_topics", "training topic"))


FORMATS = {
    "messages": "messages: chat messages (role, content), as TRL and OpenAI read them",
    "prompt-completion": "prompt-completion: chat messages as prompt, the reply as completion (TRL)",
    "sharegpt": "sharegpt: conversations of from/value turns (LLaMA-Factory, Axolotl)",
    "alpaca": "alpaca: instruction, input, output, system and history (LLaMA-Factory)",
}
MODES = {
    "conversation": "one row per conversation, every reply trained once",
    "pair": "one row per reply, ending with it",
}


def score(value: float | None) -> str:
    """A quality score as people read it: two decimals, `-` for none."""
    return "-" if value is None else f"{value:.2f}"


def dataset_card(
    record: dict,
    files: dict[str, str],
    *,
    rows: int,
    fmt: str = "messages",
    mode: str = "conversation",
    license: str | None = None,
    language: str | None = None,
    max_tokens: int | None = None,
) -> str:
    """README.md for `record` (a training file record) whose export is `files`.

    `files` maps a split name to its path relative to the card, in split order (e.g.
    {"train": "train.jsonl", "validation": "validation.jsonl"}); list only splits that have
    rows, since `datasets` refuses to load an empty one. `rows` is their total row count;
    `fmt` and `mode` the trainer format and row mode; `license` (a Hub license id) and
    `language` (ISO 639-1) are written when given; `max_tokens` when rows were fitted.
    """
    header = _header(record["name"], files, rows, license, language)
    return "\n".join([*header, *_body(record, files, rows, _layout(fmt, mode, max_tokens))])


def _layout(fmt: str, mode: str, max_tokens: int | None) -> list[str]:
    lines = [f"Format: {FORMATS[fmt]}.", "", f"Rows: {MODES[mode]}."]
    if max_tokens is not None:
        lines[-1] = (
            f"Rows: {MODES[mode]}, fitted to {max_tokens} tokens with the chat template applied: a longer "
            "conversation is split into rows ending at a reply, each reply trained by exactly one row; a "
            "reply too long with its whole user message has a row of its own with that message cut from its start."
        )
    return [*lines, ""]


def size_category(rows: int) -> str:
    """The Hub's size bucket for a number of rows."""
    return next((label for bound, label in SIZES if rows < bound), "n>1T")


def _header(name: str, files: dict[str, str], rows: int, license: str | None, language: str | None) -> list[str]:
    lines = ["---", f"pretty_name: {quoted(name)}"]
    lines += [f"license: {quoted(license)}"] if license else []
    lines += ["language:", f"- {quoted(language)}"] if language else []
    lines += ["task_categories:", "- text-generation"]
    lines += ["size_categories:", f"- {size_category(rows)}", "tags:", *(f"- {tag}" for tag in TAGS)]
    lines += ["configs:", "- config_name: default", "  data_files:"]
    for split, path in files.items():
        lines += [f"  - split: {quoted(split)}", f"    path: {quoted(path)}"]
    return [*lines, "---", ""]


def _body(record: dict, files: dict[str, str], rows: int, layout: list[str]) -> list[str]:
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
        *layout,
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


def quoted(text: str) -> str:
    """A YAML scalar for any text."""
    # A JSON string is a valid YAML double-quoted scalar: safe for any name or path.
    return orjson.dumps(text).decode()
