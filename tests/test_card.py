"""Dataset card: the Hub's YAML header and the Markdown summary."""

import pytest
import yaml

from trainfiles.core.card import dataset_card, size_category

RECORD = {
    "name": "demo-file",
    "description": "Pilot set | first batch",
    "conversation_count": 4,
    "total_training_pairs": 26,
    "avg_quality_score": 3.5,
    "min_quality_score": 3.0,
    "max_quality_score": 4.0,
    "human_reviewed_count": 1,
    "scaffolding_distribution": {
        "personas": {"pragmatic_optimist": 1, "anxious_planner": 3},
        "emotional_arcs": {"fear_to_confidence": 4},
        "training_topics": {},
    },
}
FILES = {"train": "train.jsonl", "validation": "validation.jsonl"}


def header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_exact_card():
    assert (
        dataset_card(RECORD, FILES, rows=12)
        == """\
---
pretty_name: "demo-file"
task_categories:
- text-generation
size_categories:
- n<1K
tags:
- conversational
- sft
- lora
- brightrun-lora-v4
configs:
- config_name: default
  data_files:
  - split: "train"
    path: "train.jsonl"
  - split: "validation"
    path: "validation.jsonl"
---

# demo-file

Pilot set | first batch

LoRA fine-tuning data exported by trainfiles from a brightrun-lora-v4 training file.

## Files

| split | file |
|---|---|
| train | train.jsonl |
| validation | validation.jsonl |

Format: messages: chat messages (role, content), as TRL and OpenAI read them.

Rows: one row per conversation, every reply trained once.

## Quality

| measure | value |
|---|---|
| conversations | 4 |
| training pairs (user turns included) | 26 |
| rows in the files | 12 |
| quality score (avg) | 3.50 |
| quality score (min) | 3.00 |
| quality score (max) | 4.00 |
| human reviewed conversations | 1 of 4 (25.00%) |

## Scaffolding

### Personas

| persona | conversations | share |
|---|---|---|
| anxious_planner | 3 | 75.0% |
| pragmatic_optimist | 1 | 25.0% |

### Emotional arcs

| emotional arc | conversations | share |
|---|---|---|
| fear_to_confidence | 4 | 100.0% |

### Training topics

No training topic recorded.
"""
    )


def test_header_is_what_the_hub_reads():
    assert header(dataset_card(RECORD, FILES, rows=12)) == {
        "pretty_name": "demo-file",
        "task_categories": ["text-generation"],
        "size_categories": ["n<1K"],
        "tags": ["conversational", "sft", "lora", "brightrun-lora-v4"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": "train", "path": "train.jsonl"},
                    {"split": "validation", "path": "validation.jsonl"},
                ],
            }
        ],
    }


def test_license_language_format_and_fitted_rows_are_stated():
    card = dataset_card(
        RECORD,
        {"train": "train-0a1b2c3d.jsonl"},
        rows=3,
        fmt="sharegpt",
        mode="pair",
        license="cc-by-4.0",
        language="en",
        max_tokens=1024,
    )
    meta = header(card)
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["en"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "train-0a1b2c3d.jsonl"}]
    assert "Format: sharegpt: conversations of from/value turns (LLaMA-Factory, Axolotl).\n" in card
    assert (
        "Rows: one row per reply, ending with it, fitted to 1024 tokens with the chat template applied: a longer "
        "conversation is split into rows ending at a reply, each reply trained by exactly one row; a reply too long "
        "with its whole user message has a row of its own with that message cut from its start.\n"
    ) in card


def test_odd_names_and_paths_stay_valid_yaml_and_markdown():
    record = {
        **RECORD,
        "name": 'a: "b" # c',
        "description": None,
        "avg_quality_score": None,
        "scaffolding_distribution": {"personas": {"x|y\nz": 4}},
    }
    card = dataset_card(record, {"train": "out/a: b.jsonl"}, rows=1000)
    meta = header(card)
    assert meta["pretty_name"] == 'a: "b" # c'
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "out/a: b.jsonl"}]
    assert meta["size_categories"] == ["1K<n<10K"]
    assert "| x\\|y z | 4 | 100.0% |" in card
    assert "| quality score (avg) | - |" in card
    assert "No emotional arc recorded." in card


def test_no_conversations():
    record = {**RECORD, "conversation_count": 0, "human_reviewed_count": 0, "scaffolding_distribution": {}}
    card = dataset_card(record, {"train": "train.jsonl"}, rows=0)
    assert "| human reviewed conversations | 0 of 0 |" in card


@pytest.mark.parametrize(
    ("rows", "label"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1000, "1K<n<10K"),
        (99_999, "10K<n<100K"),
        (100_000, "100K<n<1M"),
        (5_000_000, "1M<n<10M"),
        (10_000_000, "10M<n<100M"),
        (10**12 - 1, "100B<n<1T"),
        (10**12, "n>1T"),
    ],
)
def test_size_categories(rows, label):
    assert size_category(rows) == label
