"""Help, usage errors, option placement, id prefixes, list outputs, the export guard and shell
completion, through the CLI runner: the command line as a new user meets it."""

import types
import uuid

import orjson
import pytest
from typer.main import get_command

from trainfiles import __version__
from trainfiles.cli import app
from trainfiles.cli import exports as cli_exports
from trainfiles.usecases import training_files

import generate
from conftest import FIXTURES, reference_tool

A = [generate.conversation_uuid(s) for s in range(1, 9)]
EPOCH_LATER = "1764633600"  # 2025-12-02T00:00:00Z
GROUPS = {(), ("conversations",)}
# Every command's words, e.g. ("conversations", "scan"), from the CLI itself.
ALL = sorted(set(reference_tool().commands(get_command(app))) - GROUPS)


@pytest.fixture
def registered(cli):
    cli("conversations", "import", FIXTURES / "manifest.csv")
    cli("conversations", "scan", FIXTURES / "conversations")
    return cli


@pytest.fixture
def file_ids(monkeypatch):
    """Training file ids chosen by the test, so that prefixes can collide."""
    ids = iter(uuid.UUID(i) for i in ("7c48120d-0000-4000-8000-000000000001", "7c48aaaa-0000-4000-8000-000000000002"))
    monkeypatch.setattr(training_files, "uuid", types.SimpleNamespace(uuid4=lambda: next(ids)))


# Help


def listed(help_text: str) -> dict[str, str]:
    """The Commands section of a group's help: each name with its summary, unwrapped."""
    rows: dict[str, str] = {}
    for line in help_text.split("Commands:\n")[1].splitlines():
        if line[2:3].strip():
            name, _, summary = line.strip().partition(" ")
            rows[name] = summary.strip()
        elif line.strip():
            rows[name] += " " + line.strip()
    return rows


def test_every_command_is_listed_with_its_whole_summary(cli):
    assert len(ALL) == 22
    groups = {words: listed(cli(*words, "--help").stdout) for words in GROUPS}
    assert sorted(groups[()]) == sorted({w[0] for w in ALL})
    for words in ALL:
        summary = " ".join(cli(*words, "--help").stdout.split("\n\n")[1].split())
        assert groups[words[:-1]][words[-1]] == summary
        assert summary.endswith(".") and "..." not in summary


@pytest.mark.parametrize("words", ALL, ids=["-".join(w) for w in ALL])
def test_every_command_help_has_an_example_and_names_users_know(cli, words):
    text = cli(*words, "--help").stdout
    examples = [line for line in text.splitlines() if line.strip().startswith("Example: trainfiles ")]
    assert examples and examples[0].strip().startswith(f"Example: trainfiles {' '.join(words)} ")
    assert "{" not in text and "<" not in text and "..." not in text.split("Options:")[1]
    assert "go before or after the command." in text


def test_show_help_exactly(cli):
    assert cli("show", "--help", env={"COLUMNS": "80"}).stdout == (
        "Usage: root show [OPTIONS] FILE\n"
        "\n"
        "  Show one training file: statistics, storage and member conversation ids.\n"
        "\n"
        "  Example: trainfiles show dec-batch --json\n"
        "\n"
        "Arguments:\n"
        "  FILE  A training file's name, id or unique id prefix (4 characters or more).\n"
        "        [required]\n"
        "\n"
        "Options:\n"
        "  --json  Print one JSON document on stdout.\n"
        "  --help  Show this message and exit.\n"
        "\n"
        "--catalog PATH, --store URL, --user NAME and --debug (see `trainfiles --help`)\n"
        "go before or after the command.\n"
    )


def test_verify_shows_its_optional_file_in_brackets(cli):
    assert cli("verify", "--help").stdout.startswith("Usage: root verify [OPTIONS] [FILE]\n")


def test_version(cli):
    assert cli("--version").stdout == f"trainfiles {__version__}\n"


# Usage errors: our words, the valid choices, any case


USAGE_ERRORS = [
    (
        ["export", "dec", "--format", "csv"],
        "Invalid value for '--format': 'csv' is not one of: json, jsonl, messages, prompt-completion, sharegpt, alpaca, card",
    ),
    (
        ["list", "--status", "deleted"],
        "Invalid value for '--status': 'deleted' is not one of: active, archived, processing, failed, all",
    ),
    (
        ["conversations", "list", "--status", "done"],
        "Invalid value for '--status': 'done' is not one of: not_started, validation_failed, validated, "
        "enrichment_in_progress, enriched, normalization_failed, completed",
    ),
    (["export", "dec", "--rows", "turn"], "Invalid value for '--rows': 'turn' is not one of: conversation, pair"),
    (
        ["export", "dec", "--url", "--expires", "0"],
        "Invalid value for '--expires': expected a whole number from 1 to 604800, got '0'",
    ),
    (
        ["export", "dec", "--version", "two"],
        "Invalid value for '--version': expected a whole number 1 or more, got 'two'",
    ),
    (
        ["check", "dec", "--max-tokens", "-3"],
        "Invalid value for '--max-tokens': expected a whole number 1 or more, got '-3'",
    ),
    (["restore", "dec", "--version", "0"], "Invalid value for '--version': expected a whole number 1 or more, got '0'"),
    (["gc", "--keep", "1.5"], "Invalid value for '--keep': expected a whole number 1 or more, got '1.5'"),
    (["gc", "--min-age", "soon"], "Invalid value for '--min-age': expected a number of seconds, 0 or more, got 'soon'"),
    (["list", "--csv", "--nl"], "Invalid value: give one of --json, --csv, --tsv or --nl (got --csv, --nl)"),
]


@pytest.mark.parametrize(
    ("args", "message"), USAGE_ERRORS, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(USAGE_ERRORS)]
)
def test_usage_errors_in_our_words(cli, args, message):
    stderr = cli(*args, code=2).stderr
    assert stderr.endswith(f"\nError: {message}\n"), stderr
    assert "Value error" not in stderr and "Input should" not in stderr


def test_choices_take_any_case(registered):
    registered("create", "--name", "dec", "--id", A[0])
    jsonl = registered("export", "dec", "--format", "jsonl").stdout_bytes
    assert registered("export", "dec", "--format", "JSONL").stdout_bytes == jsonl
    assert (
        registered("export", "dec", "--format", "Messages", "--rows", "PAIR").stdout
        == registered("export", "dec", "--format", "messages", "--rows", "pair").stdout
    )
    registered("archive", "dec")
    assert [r["name"] for r in registered.json("list", "--status", "ARCHIVED")] == ["dec"]


# Common options before or after the command


def test_common_options_before_or_after_the_command(registered, tmp_path):
    other = ("--catalog", tmp_path / "other.db", "--store", tmp_path / "other-store")
    registered(*other, "conversations", "scan", FIXTURES / "conversations")
    registered("create", "--name", "dec", "--id", A[0], *other, "--user", "bob")
    assert [(r["name"], r["created_by"]) for r in registered.json("list", *other)] == [("dec", "bob")]
    assert registered.json(*other, "list") == registered.json("list", *other)
    assert registered.json("list") == []  # the default catalog was never touched
    after = registered("list", f"--catalog={tmp_path / 'other.db'}", "--store", tmp_path / "other-store").stdout
    assert after.splitlines()[2].startswith("dec ")
    assert len(registered.json("conversations", "list", "--catalog", tmp_path / "other.db")) == 13


def test_json_before_the_command_applies_to_it(registered):
    registered("create", "--name", "dec", "--id", A[0])
    before = registered("--json", "show", "dec").stdout
    assert orjson.loads(before) == registered.json("show", "dec")
    assert registered("--json", "conversations", "list").stdout == registered("conversations", "list", "--json").stdout


def test_debug_after_the_command(registered, monkeypatch):
    from trainfiles.core import builder

    monkeypatch.setattr(builder, "json_entry", lambda entry: 1 / 0)
    result = registered.runner.invoke(app, ["create", "--name", "x", "--id", A[0], "--debug"])
    assert result.exit_code == 1 and "Traceback" in result.stderr


# Unique id prefixes


def test_a_training_file_by_a_unique_id_prefix(registered, file_ids):
    registered("create", "--name", "one", "--id", A[0])
    registered("create", "--name", "two", "--id", A[1])
    assert registered.json("show", "7c48120d")["name"] == "one"
    assert registered.json("show", "7C48A")["name"] == "two"
    assert registered.json("add", "7c481", "--id", A[2])["conversation_count"] == 2


def test_an_ambiguous_prefix_lists_the_matches_and_exits_5(registered, file_ids):
    registered("create", "--name", "one", "--id", A[0])
    registered("create", "--name", "two", "--id", A[1])
    for command in (["show", "7c48"], ["export", "7c48"], ["log", "7c48"], ["add", "7c48", "--id", A[2]]):
        assert registered(*command, code=5).stderr == (
            "Error: ambiguous training file id prefix: '7c48' starts "
            "7c48120d-0000-4000-8000-000000000001, 7c48aaaa-0000-4000-8000-000000000002\n"
        )


def test_a_prefix_needs_4_characters(registered, file_ids):
    registered("create", "--name", "one", "--id", A[0])
    assert registered("show", "7c4", code=4).stderr == "Error: no training file with id or name '7c4'\n"
    assert registered("create", "--name", "x", "--id", A[1][:3], code=3).stderr == (
        f"Error: not a conversation id: --id line 1: '{A[1][:3]}' (an id, or a unique prefix of 4 characters or more)\n"
    )


def test_conversation_ids_by_unique_prefix(registered, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{A[2][:8].upper()}\n{A[0][:4]}\n")
    rec = registered.json("create", "--name", "dec", "--ids-file", ids)
    assert registered.json("show", "dec")["conversation_ids"] == [A[2], A[0]]
    assert rec["conversation_count"] == 2
    registered("add", "dec", "--id", A[1][:6])
    assert registered.json("remove", "dec", "--id", A[0][:5])["conversation_count"] == 2
    assert registered.json("show", "dec")["conversation_ids"] == [A[2], A[1]]
    # a prefix and the full id of one conversation are one conversation named twice
    assert registered("add", "dec", "--id", A[3], "--id", A[3][:6], code=5).stderr == (
        f"Error: conversation ids given more than once: {A[3]}\n"
    )


def test_unknown_and_ambiguous_conversation_prefixes(registered, tmp_path):
    manifest = tmp_path / "twins.csv"
    manifest.write_text(
        "conversation_id,enrichment_status\n"
        "abcd0000-0000-4000-8000-000000000001,completed\n"
        "abcd0000-0000-4000-8000-000000000002,completed\n"
    )
    registered("conversations", "import", manifest)
    assert registered("create", "--name", "x", "--id", "abcd0000", "--id", A[0], code=5).stderr == (
        "Error: ambiguous conversation id prefix: 'abcd0000' starts "
        "abcd0000-0000-4000-8000-000000000001, abcd0000-0000-4000-8000-000000000002\n"
    )
    assert registered("create", "--name", "x", "--id", "ffff1234", "--id", A[0], code=4).stderr == (
        "Error: unknown conversation ids: ffff1234\n"
    )
    assert registered("conversations", "show", "abcd", code=5).stderr.startswith(
        "Error: ambiguous conversation id prefix: 'abcd' starts "
    )
    assert (
        registered("conversations", "show", "ffff1234", code=4).stderr == "Error: unknown conversation id: ffff1234\n"
    )


# conversations list and show


def test_conversations_list_shows_the_source(registered):
    out = registered("conversations", "list", "--batch", generate.BATCH_B).stdout.splitlines()
    assert out[0].split() == [
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
    b9 = generate.conversation_uuid(9)
    source = FIXTURES / "conversations" / generate.USER_ID / b9 / "enriched.json"
    assert any(line.startswith(b9) and line.endswith(str(source)) for line in out)


def test_conversations_list_as_csv_tsv_and_json_lines(cli, tmp_path):
    manifest = tmp_path / "one.csv"
    manifest.write_text(
        "conversation_id,enrichment_status,enriched_file_path,quality_score,human_reviewed\n"
        'abcd0000-0000-4000-8000-000000000001,completed,"a, b.json",4.5,yes\n'
    )
    cli("conversations", "import", manifest)
    rec = cli.json("conversations", "list")[0]
    assert rec["enriched_file_path"] == str(tmp_path / "a, b.json")
    header = ",".join(rec)
    cells = {
        "conversation_id": "abcd0000-0000-4000-8000-000000000001",
        "enrichment_status": "completed",
        "enriched_file_path": str(tmp_path / "a, b.json"),
        "quality_score": "4.5",
        "human_reviewed": "true",
        "manifest_fields": '["enriched_file_path","enrichment_status","human_reviewed","quality_score"]',
    }
    values = [cells.get(key, "") for key in rec]
    csv_cells = ['"' + v.replace('"', '""') + '"' if ("," in v or '"' in v) else v for v in values]
    assert cli("conversations", "list", "--csv").stdout == header + "\n" + ",".join(csv_cells) + "\n"
    tsv_cells = ['"' + v.replace('"', '""') + '"' if '"' in v else v for v in values]
    assert cli("conversations", "list", "--tsv").stdout == "\t".join(rec) + "\n" + "\t".join(tsv_cells) + "\n"
    assert cli("conversations", "list", "--nl").stdout == orjson.dumps(rec).decode() + "\n"


def test_conversations_show(registered):
    cid = A[1]  # seed 2: four pairs, replies at turns 2 and 4 (scores 3.5 and 4.2, reviewed)
    rec = registered.json("conversations", "show", cid[:8])
    assert {k: rec[k] for k in ("conversation_id", "training_pairs", "jsonl_rows", "source_error")} == {
        "conversation_id": cid,
        "training_pairs": 4,
        "jsonl_rows": 2,
        "source_error": None,
    }
    assert rec["turns"] == [
        {"turn_number": 1, "has_target_response": False, "quality_score": None, "human_reviewed": False},
        {"turn_number": 2, "has_target_response": True, "quality_score": 3.5, "human_reviewed": True},
        {"turn_number": 3, "has_target_response": False, "quality_score": None, "human_reviewed": False},
        {"turn_number": 4, "has_target_response": True, "quality_score": 4.2, "human_reviewed": True},
    ]
    source = FIXTURES / "conversations" / generate.USER_ID / cid / "enriched.json"
    assert registered("conversations", "show", cid[:8]).stdout == (
        f"conversation id  {cid}\n"
        "status           completed\n"
        f"source           {source}\n"
        f"batch            {generate.BATCH_A}\n"
        "persona          overwhelmed_avoider\n"
        "emotional arc    shame_to_acceptance\n"
        "topic            late_college_savings\n"
        "quality          3.85 (production)\n"
        "human reviewed   yes\n"
        "created          2025-10-08T11:14:00Z\n"
        "training pairs   4\n"
        "jsonl rows       2 (training pairs with a target response; the others are user turns)\n"
        "\n"
        "turn  target response  quality  reviewed\n"
        "────  ───────────────  ───────  ────────\n"
        "   1  no                     -  no\n"
        "   2  yes                 3.50  yes\n"
        "   3  no                     -  no\n"
        "   4  yes                 4.20  yes\n"
    )


# show and list


def test_show_names_description_target_model_and_rows(registered):
    registered(
        "create",
        "--name",
        "dec",
        "--id",
        A[1],
        "--id",
        A[5],
        "--description",
        "December",
        "--target-model",
        "llama-3.1-8b",
    )
    rec = registered.json("show", "dec")
    assert (rec["description"], rec["target_model"], rec["total_training_pairs"], rec["jsonl_rows"]) == (
        "December",
        "llama-3.1-8b",
        7,
        3,
    )
    lines = registered("show", "dec").stdout.splitlines()
    assert lines[3:9] == [
        "version           1",
        "description       December",
        "target model      llama-3.1-8b",
        "conversations     2",
        "training pairs    7",
        "jsonl rows        3 (training pairs with a target response; the others are user turns)",
    ]


def test_an_empty_list_says_what_to_do(registered):
    assert (
        registered("list").stdout
        == "No training files yet. Create one with: trainfiles create --name NAME --batch BATCH_ID\n"
    )
    assert registered("list", "--json").stdout == "[]\n"
    assert registered("list", "--csv").stdout == ""
    registered("create", "--name", "dec", "--id", A[0])
    assert registered("list", "--created-by", "bob").stdout == (
        "No training files match --status active --created-by bob (1 in all: trainfiles list --status all)\n"
    )


def test_an_empty_conversations_list_says_what_to_do(cli):
    assert cli("conversations", "list").stdout == (
        "No conversations registered yet. Register some with: trainfiles conversations scan FOLDER\n"
    )
    cli("conversations", "scan", FIXTURES / "conversations")
    assert cli("conversations", "list", "--status", "enriched", "--batch", "b1").stdout == (
        "No conversations match --status enriched --batch b1\n"
    )


def test_list_filters_by_creator_and_status(registered):
    registered("create", "--name", "mine", "--id", A[0])
    registered(
        "create", "--name", "bobs", "--id", A[1], env={"TRAINFILES_USER": "bob", "SOURCE_DATE_EPOCH": EPOCH_LATER}
    )
    registered("create", "--name", "old", "--id", A[2], env={"TRAINFILES_USER": "bob"})
    registered("archive", "old", env={"TRAINFILES_USER": "bob"})
    assert [r["name"] for r in registered.json("list")] == ["bobs", "mine"]
    assert [r["name"] for r in registered.json("list", "--created-by", "bob")] == ["bobs"]
    assert [r["name"] for r in registered.json("list", "--created-by", "bob", "--status", "all")] == ["bobs", "old"]


def test_list_as_csv_tsv_and_json_lines(registered):
    rec = registered.json("create", "--name", 'dec, "quoted"', "--id", A[1], "--description", "two\tcells")
    header = list(rec)
    values = [str(v) if not isinstance(v, (dict, type(None))) else "" for v in rec.values()]
    values[header.index("scaffolding_distribution")] = orjson.dumps(rec["scaffolding_distribution"]).decode()
    quoted = ['"' + v.replace('"', '""') + '"' if any(c in v for c in ',"') else v for v in values]
    assert registered("list", "--csv").stdout == ",".join(header) + "\n" + ",".join(quoted) + "\n"
    tab = ['"' + v.replace('"', '""') + '"' if any(c in v for c in '"\t') else v for v in values]
    assert registered("list", "--tsv").stdout == "\t".join(header) + "\n" + "\t".join(tab) + "\n"
    assert registered("list", "--nl").stdout == orjson.dumps(rec).decode() + "\n"
    assert registered.json("list") == [rec]


def test_list_summarises_the_scaffolding_distribution(registered):
    rec = registered.json("create", "--name", "dec", "--batch", generate.BATCH_A)
    dist = rec["scaffolding_distribution"]
    summary = (
        f"{len(dist['personas'])} personas, {len(dist['emotional_arcs'])} arcs, {len(dist['training_topics'])} topics"
    )
    header, _, row = registered("list").stdout.splitlines()
    cell = row[header.index("scaffolding") : header.index("target model")].strip()
    assert cell == summary == "4 personas, 4 arcs, 5 topics"
    assert registered("show", "dec").stdout.count("personas          ") == 1  # the whole distribution is in show


# The export guard


def test_a_large_export_to_a_terminal_needs_o(registered, monkeypatch, tmp_path):
    rec = registered.json("create", "--name", "dec", "--batch", generate.BATCH_A)
    assert rec["json_file_size"] > 64_000 > rec["jsonl_file_size"]
    stored = open(rec["json_file_path"], "rb").read()
    assert registered("export", "dec").stdout_bytes == stored  # piped: as before
    monkeypatch.setattr(cli_exports, "_to_terminal", lambda: True)
    result = registered("export", "dec", code=2)
    assert result.stderr == (
        f"Error: refusing to write {rec['json_file_size'] / 1000:.1f} KB of JSON to the terminal: use -o FILE, or -o - to insist\n"
    )
    assert result.stdout == ""
    assert registered("export", "dec", "-o", "-").stdout_bytes == stored
    registered("export", "dec", "-o", tmp_path / "dec.json")
    assert (tmp_path / "dec.json").read_bytes() == stored
    assert registered("export", "dec", "--format", "jsonl").stdout_bytes == open(rec["jsonl_file_path"], "rb").read()
    assert registered("export", "dec", "--format", "card").stdout.startswith("---\n")  # small: written


# Shell completion


def complete(cli, line: str) -> list[str]:
    words = line.split(" ")
    env = {"_TRAINFILES_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    result = cli.runner.invoke(app, [], env=env, prog_name="trainfiles")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_of_commands_options_choices_and_file_names(registered, file_ids):
    assert complete(registered, "trainfiles sh") == ["show"]
    assert complete(registered, "trainfiles conversations s") == ["scan", "show"]
    assert complete(registered, "trainfiles list --cr") == ["--created-by"]
    assert complete(registered, "trainfiles list --status ar") == ["archived"]
    assert complete(registered, "trainfiles show ") == []  # no files yet
    registered("create", "--name", "dec-batch", "--id", A[0])
    registered("create", "--name", "december", "--id", A[1])
    assert complete(registered, "trainfiles show ") == ["dec-batch", "december"]
    assert complete(registered, "trainfiles export dec-") == ["dec-batch"]
    assert complete(registered, "trainfiles add 7c48a") == ["7c48aaaa-0000-4000-8000-000000000002"]


def test_install_completion_is_offered(cli):
    assert "--install-completion" in cli("--help").stdout


def test_a_number_past_what_a_record_holds_is_a_usage_error(cli):
    cli("conversations", "import", FIXTURES / "manifest.csv")
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "dec", "--batch", generate.BATCH_A)
    said = cli("export", "dec", "--version", "99999999999999999999", code=2)
    assert "expected a whole number 1 or more, got '99999999999999999999' (too large)" in said.stderr
    from trainfiles import Trainfiles
    from trainfiles.errors import UsageError

    with pytest.raises(UsageError, match="version must be a whole number from 1 to 9007199254740992"):
        Trainfiles().get("dec").export("jsonl", version=2**60)
