"""Trainer exports, splits, the dataset card and `check`, through the CLI runner."""

import hashlib

import orjson
import pytest

from trainfiles.core import trainer_formats

import generate
from conftest import FIXTURES, REFERENCE, require_reference, write_json

A = [generate.conversation_uuid(s) for s in range(1, 9)]


@pytest.fixture
def reference_file(cli):
    """A training file of the 7 real reference conversations, in a known order."""
    require_reference()
    cli("conversations", "scan", REFERENCE / "enriched")
    ids = [r["conversation_id"] for r in cli.json("conversations", "list")]
    return cli.json("create", "--name", "ref", *[f"--id={i}" for i in ids])


def lines(data: bytes) -> list[dict]:
    assert data.endswith(b"\n") and not data.startswith(b"\xef\xbb\xbf")
    return [orjson.loads(line) for line in data.splitlines()]


def stored_rows(rec) -> list[dict]:
    return lines(open(rec["jsonl_file_path"], "rb").read())


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("messages", None), ("messages", "pair"), ("prompt-completion", None), ("sharegpt", None), ("alpaca", "pair")],
)
def test_trainer_export_is_the_formats_rows_of_the_stored_jsonl(cli, reference_file, fmt, mode):
    args = ["export", "ref", "--format", fmt] + (["--rows", mode] if mode else [])
    rows = lines(cli(*args).stdout_bytes)
    assert rows == list(trainer_formats.rows(stored_rows(reference_file), fmt, mode))
    assert len({tuple(row) for row in rows}) == 1  # the same keys on every line


def test_messages_by_conversation_trains_every_reply_once(cli, reference_file):
    rows = lines(cli("export", "ref", "--format", "messages").stdout_bytes)
    assert len(rows) == 7
    replies = [m["content"] for row in rows for m in row["messages"] if m["role"] == "assistant"]
    targets = [r["target_response"] for r in stored_rows(reference_file)[1:]]
    assert sorted(replies) == sorted(targets) and len(replies) == 20
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "system"
        assert roles[1:] == ["user", "assistant"] * (len(roles[1:]) // 2)


def test_with_metadata_carries_ids_scaffolding_and_recorded_quality(cli):
    cli("conversations", "import", FIXTURES / "manifest.csv")
    cli("create", "--name", "dec", "--id", A[5])  # manifest quality 4.80 wins over the file's 3.83
    (row,) = lines(cli("export", "dec", "--format", "messages", "--with-metadata").stdout_bytes)
    doc = generate.make_conversation(6)  # pairs: user, assistant, user
    assert row["metadata"] == {
        "conversation_id": A[5],
        "pair_ids": ["conflict_resolution_turn2_14a03569"],
        "persona_key": doc["input_parameters"]["persona_key"],
        "emotional_arc_key": doc["input_parameters"]["emotional_arc_key"],
        "training_topic_key": doc["input_parameters"]["training_topic_key"],
        "quality_score": 4.8,
    }


def test_export_to_a_file(cli, reference_file, tmp_path):
    (tmp_path / "out").mkdir()
    cli("export", "ref", "--format", "sharegpt", "--output", tmp_path / "out" / "sharegpt.jsonl")
    assert (tmp_path / "out" / "sharegpt.jsonl").read_bytes() == cli(
        "export", "ref", "--format", "sharegpt"
    ).stdout_bytes


def test_split_is_by_conversation_and_stable_as_the_file_grows(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "dec", *[f"--id={c}" for c in A[:4]])
    result = cli("export", "dec", "--format", "messages", "--split", "validation=0.5", "--output-dir", tmp_path / "v1")
    sides = {side: lines(split_file(tmp_path / "v1", side).read_bytes()) for side in ("train", "validation")}
    names = ", ".join(
        ["README.md", *(split_file(tmp_path / "v1", side).name for side in sides), "dataset_info.json", "axolotl.yaml"]
    )
    assert (
        result.stderr
        == f"train {len(sides['train'])} rows, validation {len(sides['validation'])} rows in {tmp_path / 'v1'}: {names}\n"
    )
    assert len(sides["train"]) + len(sides["validation"]) == 4
    cli("add", "dec", *[f"--id={c}" for c in A[4:]])
    cli(
        "export",
        "dec",
        "--format",
        "messages",
        "--split",
        "validation=0.5",
        "--output-dir",
        tmp_path / "v2",
        "--with-metadata",
    )
    grown = {side: lines(split_file(tmp_path / "v2", side).read_bytes()) for side in ("train", "validation")}
    ids = {side: {row["metadata"]["conversation_id"] for row in rows} for side, rows in grown.items()}
    assert not ids["train"] & ids["validation"]
    assert ids["train"] | ids["validation"] == set(A)
    for side in ("train", "validation"):
        assert all(row in grown_row_messages(grown[side]) for row in sides[side])
    card = (tmp_path / "v2" / "README.md").read_text()
    for side in ("train", "validation"):
        assert f'path: "{split_file(tmp_path / "v2", side).name}"' in card


def split_file(folder, side):
    """The one split file of a side, named by its content."""
    (path,) = folder.glob(f"{side}-*.jsonl")
    assert path.name == f"{side}-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}.jsonl"
    return path


def grown_row_messages(rows):
    return [{"messages": row["messages"]} for row in rows]


def test_card_export(cli, reference_file):
    card = cli("export", "ref", "--format", "card").stdout
    assert card.startswith("---\n")
    assert "size_categories:\n- n<1K" in card
    assert "| anxious_planner | 3 |" in card


def test_check_passes_clean_data_and_reports_loss_tokens_per_mode(cli, reference_file):
    report = cli.json("check", "ref")
    assert report["ok"] is True and report["rows"] == 7 and report["rows_mode"] == "conversation"
    assert report["tokenizer"] == "estimate: ceil(chars/4)"
    by_mode = report["loss_tokens_by_mode"]
    assert set(by_mode) == {"conversation", "pair"} and by_mode["pair"] > 2 * by_mode["conversation"]
    human = [
        line.rstrip() for line in cli("check", "ref", "--format", "alpaca", "--max-tokens", "8192").stdout.splitlines()
    ]
    assert human[:2] == ["format          alpaca", "rows            7"]
    assert "result          ok" in human


def test_check_exits_3_and_names_the_errors(cli, tmp_path):
    doc = generate.make_conversation(50, turns=4)
    doc["training_pairs"][3]["target_response"] = "   "
    write_json(tmp_path / "src" / "enriched.json", doc)
    cli("conversations", "scan", tmp_path / "src")
    cli("create", "--name", "blank", "--id", generate.conversation_uuid(50))
    result = cli("check", "blank", "--json", code=3)
    report = orjson.loads(result.stdout)
    assert report["ok"] is False
    assert report["errors"]["empty_content"] == {"count": 1, "rows": [1]}
    assert result.stderr == "Error: blank is not ready to train: empty_content in 1 rows\n"


def test_check_with_a_missing_tokenizer_is_not_found(cli, reference_file, tmp_path):
    result = cli("check", "ref", "--tokenizer", tmp_path / "none.json", code=4)
    assert result.stderr == f"Error: tokenizer not found: {tmp_path / 'none.json'}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["--split", "validation=0.1"],
        ["--split", "test=0.1", "--output-dir", "x"],
        ["--split", "validation=1.5", "--output-dir", "x"],
        ["--format", "json", "--split", "validation=0.1", "--output-dir", "x"],
        ["--format", "prompt-completion", "--rows", "conversation"],
        ["--format", "messages", "--no-header"],
        ["--format", "messages", "--url"],
        ["--format", "jsonl", "--rows", "pair"],
    ],
)
def test_export_option_misuse_is_a_usage_error(cli, reference_file, args):
    cli("export", "ref", *args, code=2)
