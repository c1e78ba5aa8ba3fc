"""export --max-tokens on the real reference conversations, and check on exports, through the CLI."""

import re
from typing import NamedTuple

import orjson
import pytest
from test_cli_exports import lines, reference_file, stored_rows  # noqa: F401  (fixture)

from trainfiles.core import trainer_formats
from trainfiles.core.tokenizing import Tokens

import generate
from conftest import REFERENCE, require_reference, write_json

tokenizers = pytest.importorskip("tokenizers")
SPECIAL = ["<unk>", "<pad>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
SPECS = [(fmt, mode) for fmt in trainer_formats.FORMATS for mode in trainer_formats.MODES[fmt]]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A small byte-level BPE trained on the reference conversations: fast, and with fewer merges
    than a model's tokenizer, so rows are long enough at 1,024 tokens for fitting to cut and leave out."""
    require_reference()
    texts = []
    for path in sorted((REFERENCE / "enriched").glob("*.json")):
        for pair in orjson.loads(path.read_bytes())["training_pairs"]:
            texts += [pair["system_prompt"], pair["current_user_input"], pair.get("target_response") or ""]
    model = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=2000, special_tokens=SPECIAL, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()
    )
    model.train_from_iterator(texts, trainer=trainer)
    folder = tmp_path_factory.mktemp("bpe")
    model.save(str(folder / "tokenizer.json"))
    return folder


def replies(rec) -> list[str]:
    return [row["target_response"] for row in stored_rows(rec)[1:]]


def trained(rows, fmt) -> list[str]:
    """The replies the rows train, in order; alpaca rows as LLaMA-Factory trains fitted rows
    (`mask_history: true`: the output only)."""
    out = []
    for row in rows:
        parsed = trainer_formats.parse(row, fmt)
        out += [parsed.messages[i]["content"] for i in (parsed.trained[-1:] if fmt == "alpaca" else parsed.trained)]
    return out


class Fit(NamedTuple):
    """A reply of the reference file with only the system prompt and its user message."""

    conversation: str
    pair: str
    system: str
    user: str
    reply: str
    tokens: int  # with the whole user message
    shortest: int  # with only its last word


def row_of(system, user, reply) -> list[dict]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": reply},
    ]


def minimal_windows(rec, tokens) -> list[Fit]:
    out = []
    for row in stored_rows(rec)[1:]:
        system, user, reply = row["system_prompt"], row["current_user_input"], row["target_response"]
        last = re.search(r"\S+\s*$", user).group()
        out.append(
            Fit(
                row["conversation_id"],
                row["id"],
                system,
                user,
                reply,
                tokens.length(row_of(system, user, reply)),
                tokens.length(row_of(system, last, reply)),
            )
        )
    return out


@pytest.mark.parametrize(("fmt", "mode"), SPECS)
def test_fitted_rows_fit_and_train_every_reply_once_whole(cli, reference_file, bpe, fmt, mode):
    tokens = Tokens(str(bpe))
    out = lines(
        cli("export", "ref", "--format", fmt, "--rows", mode, "--max-tokens", 2048, "--tokenizer", bpe).stdout_bytes
    )
    assert max(tokens.length(trainer_formats.parse(row, fmt).messages) for row in out) <= 2048
    assert trained(out, fmt) == replies(reference_file)
    system = stored_rows(reference_file)[1]["system_prompt"]
    assert all(trainer_formats.parse(row, fmt).messages[0] == {"role": "system", "content": system} for row in out)
    # Unfitted, 5 of the 7 conversation rows are over 2048 tokens: fitting splits them.
    assert len(out) > (7 if mode == "conversation" and fmt == "messages" else 19)


def test_every_reply_that_cannot_fit_is_named_and_nothing_is_written(cli, reference_file, bpe, tmp_path):
    too_long = [w for w in minimal_windows(reference_file, Tokens(str(bpe))) if w.shortest > 1024]
    assert len(too_long) == 3
    expected = (
        "Error: replies that need more than --max-tokens 1024 tokens with the system prompt and only the last word of their "
        "user message: "
        + "; ".join(f"conversation {w.conversation} pair {w.pair} ({w.shortest} tokens)" for w in too_long)
        + " (--skip-invalid leaves them out)\n"
    )
    result = cli(
        "export", "ref", "--format", "messages", "--max-tokens", 1024, "--tokenizer", bpe, "-o", "out.jsonl", code=3
    )
    assert result.stderr == expected and not (tmp_path / "out.jsonl").exists()
    # To a pipe, nothing either: the refusal comes before the first row.
    result = cli("export", "ref", "--format", "messages", "--max-tokens", 1024, "--tokenizer", bpe, code=3)
    assert result.stderr == expected and result.stdout_bytes == b""


@pytest.mark.parametrize(("fmt", "mode"), SPECS)
def test_skip_invalid_leaves_out_what_cannot_fit_and_trims_user_messages(cli, reference_file, bpe, fmt, mode, tmp_path):
    tokens = Tokens(str(bpe))
    windows = minimal_windows(reference_file, tokens)
    too_long = [w for w in windows if w.shortest > 1024]
    trimmed = [w for w in windows if w.tokens > 1024 >= w.shortest]
    assert (len(too_long), len(trimmed)) == (3, 3)
    result = cli(
        "export",
        "ref",
        "--format",
        fmt,
        "--rows",
        mode,
        "--max-tokens",
        1024,
        "--tokenizer",
        bpe,
        "--skip-invalid",
        "--with-metadata",
    )
    out = lines(result.stdout_bytes)
    # Each trimmed reply: a row of its own, the reply whole after the longest tail of its user
    # message, at a word boundary, that fits (one word more would not).
    listed = []
    for w in trimmed:
        (row,) = [r for r in out if r["metadata"]["pair_ids"] == [w.pair]]
        messages = trainer_formats.parse(row, fmt).messages
        tail = messages[1]["content"]
        cut = len(w.user) - len(tail)
        assert messages == row_of(w.system, tail, w.reply) and w.user[cut:] == tail
        assert cut > 0 and w.user[cut - 1].isspace() and not tail[0].isspace()
        longer = re.search(r"\S+\s+$", w.user[:cut]).group() + tail
        assert tokens.length(messages) <= 1024 < tokens.length(row_of(w.system, longer, w.reply))
        listed.append(
            f"trimmed: conversation {w.conversation} pair {w.pair} ({w.tokens} tokens > 1024): its user message cut to its last {len(tail.split())} of {len(w.user.split())} words\n"
        )
    assert result.stderr == "".join(
        f"left out: conversation {w.conversation} pair {w.pair} ({w.shortest} tokens > 1024)\n" for w in too_long
    ) + "".join(listed)
    left_out = {w.pair for w in too_long}
    kept = [row["target_response"] for row in stored_rows(reference_file)[1:] if row["id"] not in left_out]
    assert trained(out, fmt) == kept
    # The fitted export, checked as a file: nothing over the limit, nothing a trainer would lose.
    (tmp_path / "fitted.jsonl").write_bytes(result.stdout_bytes)
    report = cli.json("check", tmp_path / "fitted.jsonl", "--tokenizer", bpe, "--max-tokens", 1024)
    assert report["format"] == fmt and report["warnings"]["over_max_tokens"]["count"] == 0
    cost = report["length_cost"]
    assert cost["truncating"]["lost"] == cost["dropping"]["lost"] == cost["fitted"]["lost"] == 0
    # Without mask_history, LLaMA-Factory would train an alpaca row's history again.
    assert (report["loss_tokens"]["repeated"] > 0) == (fmt == "alpaca")


@pytest.mark.slow
def test_check_tells_what_each_trainer_would_lose(cli, reference_file, bpe):
    tokens = Tokens(str(bpe))
    windows = minimal_windows(reference_file, tokens)
    report = cli.json("check", "ref", "--tokenizer", bpe, "--max-tokens", 1024)
    by_mode = report["length_cost_by_mode"]
    assert set(by_mode) == {"conversation", "pair"}
    for mode, cost in by_mode.items():
        total = report["loss_tokens_by_mode"][mode]
        assert cost["truncating"]["kept"] + cost["truncating"]["lost"] == total
        assert cost["dropping"]["kept"] + cost["dropping"]["lost"] == total
        assert 0 < cost["truncating"]["kept"] < total and cost["dropping"]["rows_dropped"] > 0
        assert cost["fitted"]["replies_too_long"] == 3 and cost["fitted"]["user_turns_trimmed"] == 3
        too_long = sum(
            len(tokens.encode(row_of(w.system, w.user, w.reply), [2]).loss[2]) for w in windows if w.shortest > 1024
        )
        assert (cost["fitted"]["kept"], cost["fitted"]["lost"]) == (
            report["loss_tokens"]["unique"] - too_long,
            too_long,
        )
    human = cli("check", "ref", "--tokenizer", bpe, "--max-tokens", 1024).stdout
    assert "truncated (TRL max_length)" in human and "3 replies too long, 3 user turns trimmed" in human


def test_check_an_export_file_or_split_folder(cli, reference_file, tmp_path):
    cli("export", "ref", "--format", "sharegpt", "--split", "validation=0.3", "--output-dir", tmp_path / "d")
    folder = cli.json("check", tmp_path / "d", "--max-tokens", 100000)
    assert folder["format"] == "sharegpt" and folder["rows"] == 7 and folder["ok"] is True
    assert [p.rsplit("/", 1)[1][:6] for p in folder["files"]] == ["train-", "valida"]
    cli("export", "ref", "--format", "alpaca", "-o", tmp_path / "a.jsonl")
    assert cli.json("check", tmp_path / "a.jsonl")["format"] == "alpaca"
    result = cli("check", tmp_path / "a.jsonl", "--format", "messages", code=3)
    assert result.stderr == f"Error: {tmp_path / 'a.jsonl'} holds alpaca rows, not messages\n"


def test_duplicates_are_never_a_silent_ok_and_strict_fails_on_warnings(cli, tmp_path):
    row = {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
    }
    other = [{"messages": row["messages"][:2] + [{"role": "assistant", "content": f"Hello {n}"}]} for n in range(7)]
    (tmp_path / "openai.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [row] * 593 + other))
    human = cli("check", tmp_path / "openai.jsonl").stdout
    assert "result          ok, with warnings (duplicate_rows, duplicate_replies)" in human
    result = cli("check", tmp_path / "openai.jsonl", "--strict", code=3)
    assert result.stderr == (
        f"Error: {tmp_path / 'openai.jsonl'} is not ready to train: duplicate_rows in 592 rows, duplicate_replies in 592 rows\n"
    )


def test_a_history_that_differs_from_the_trained_reply_is_reported(cli, tmp_path):
    doc = generate.make_conversation(50, turns=4)
    history = doc["training_pairs"][3]["conversation_history"]
    said = next(turn for turn in history if turn["role"] == "assistant")
    said["content"] = "A draft the platform never sent."
    write_json(tmp_path / "src" / "enriched.json", doc)
    cli("conversations", "scan", tmp_path / "src")
    cli("create", "--name", "drift", "--id", generate.conversation_uuid(50))
    report = cli.json("check", "drift", "--rows", "pair")
    assert report["warnings"]["history_mismatch"] == {"count": 1, "rows": [2]}
    assert "history replies that differ" in cli("check", "drift").stdout


def test_a_split_exported_again_names_new_files_and_removes_only_its_stale_ones(cli, tmp_path):
    from test_cli_exports import A

    from conftest import FIXTURES

    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "dec", *[f"--id={c}" for c in A[:4]])
    out = tmp_path / "data"
    (out / "keep").mkdir(parents=True)
    for name in ("notes.txt", "train.jsonl", "keep/train-0a1b2c3d.jsonl"):
        (out / name).write_text("mine\n")
    cli("export", "dec", "--format", "sharegpt", "--split", "validation=0.5", "--output-dir", out)
    first = sorted(p.name for p in out.glob("*.jsonl"))
    cli("add", "dec", *[f"--id={c}" for c in A[4:]])
    cli(
        "export",
        "dec",
        "--format",
        "sharegpt",
        "--split",
        "validation=0.5",
        "--output-dir",
        out,
        "--license",
        "cc-by-4.0",
        "--language",
        "en",
    )
    second = sorted(p.name for p in out.glob("*.jsonl"))
    assert len(first) == len(second) == 2 and not set(first) & set(second)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "axolotl.yaml", "dataset_info.json", "keep", "notes.txt", *second]
    )
    assert (out / "keep" / "train-0a1b2c3d.jsonl").read_text() == "mine\n"
    card = (out / "README.md").read_text()
    assert 'license: "cc-by-4.0"\nlanguage:\n- "en"\n' in card
    assert all(f'path: "{name}"' in card for name in second)
    info = orjson.loads((out / "dataset_info.json").read_bytes())
    train, validation = second[0], second[1]
    assert info == {
        f"dec-{side}": {
            "file_name": name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                "system_tag": "system",
            },
        }
        for side, name in (("train", train), ("validation", validation))
    }
    assert (
        (out / "axolotl.yaml").read_text()
        == f"""\
# Axolotl 0.19: paths are relative to this folder; prefix them with its location.
datasets:
  - path: "{train}"
    ds_type: json
    type: chat_template
    split: train
    field_messages: conversations
    message_property_mappings: {{role: from, content: value}}
    roles_to_train: [assistant]
    train_on_eos: turn
test_datasets:
  - path: "{validation}"
    ds_type: json
    type: chat_template
    split: train
    field_messages: conversations
    message_property_mappings: {{role: from, content: value}}
    roles_to_train: [assistant]
    train_on_eos: turn
"""
    )


def test_an_empty_side_gets_no_file_and_no_mention(cli, reference_file, tmp_path):
    ids = [r["conversation_id"] for r in stored_rows(reference_file)[1:]]
    fraction = 0.001
    assert all(trainer_formats.split_of(c, fraction) == "train" for c in ids)
    result = cli(
        "export", "ref", "--format", "alpaca", "--split", f"validation={fraction}", "--output-dir", tmp_path / "d"
    )
    (train,) = (tmp_path / "d").glob("*.jsonl")
    assert (
        result.stderr
        == f"train 7 rows, validation 0 rows in {tmp_path / 'd'}: README.md, {train.name}, dataset_info.json\n"
    )
    card = (tmp_path / "d" / "README.md").read_text()
    assert "validation" not in card
    assert orjson.loads((tmp_path / "d" / "dataset_info.json").read_bytes()) == {
        "ref-train": {
            "file_name": train.name,
            "formatting": "alpaca",
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "system": "system",
                "history": "history",
            },
        }
    }


def test_a_training_file_wins_over_a_path_of_the_same_name(cli, reference_file, tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "other.jsonl").write_text('{"prompt": [], "completion": []}\n')
    assert cli.json("check", "ref", "--max-tokens", 100000)["rows"] == 7  # cwd is tmp_path
