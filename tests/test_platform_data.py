"""Real platform data without surprises: what a new user of the platform's data hit, each
through the CLI on the fixtures and the real reference conversations."""

import csv
import os

import orjson
import pytest
from test_cli_exports import reference_file  # noqa: F401  (fixture)

from trainfiles.cli import render
from trainfiles.usecases import exports

import generate
from conftest import FIXTURES, write_json

A = [generate.conversation_uuid(s) for s in range(1, 9)]
OTHER_PROFILE = "c15521b1-b3dc-450a-9daa-37e51b591d75"


@pytest.fixture
def registered(cli):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("conversations", "scan", FIXTURES / "other-profile")
    return cli


def _profile(cid: str) -> dict:
    (path,) = (FIXTURES / "conversations").glob(f"*/{cid}/enriched.json")
    return orjson.loads(path.read_bytes())["consultant_profile"]


def test_a_profile_refusal_names_the_field_and_shows_both_values(registered):
    result = registered("create", "--name", "dec", "--id", A[0], "--id", OTHER_PROFILE, code=3)
    assert result.stderr == (
        f"Error: ineligible conversations: {OTHER_PROFILE}: consultant_profile differs from the file's: business: "
        'the file\'s "Northlight Money Coachin"... | this one\'s "Harborline Wealth Partne"...\n'
    )


def test_skip_invalid_says_how_many_were_left_out_for_each_reason_and_what_would_take_them(registered):
    result = registered("create", "--name", "dec", "--id", A[0], "--id", OTHER_PROFILE, "--skip-invalid")
    assert result.stderr.splitlines()[-1] == (
        "left out 1 conversation: 1 consultant_profile differs from the file's "
        "(a file created with --profile FILE takes conversations whatever their profile)"
    )


def test_a_file_made_with_a_profile_takes_any_profile_at_create_and_at_add(registered, tmp_path):
    profile = write_json(tmp_path / "profile.json", _profile(A[0]))
    made = registered.json("create", "--name", "dec", "--profile", profile, "--id", A[0], "--id", OTHER_PROFILE)
    assert made["conversation_count"] == 2
    registered("create", "--name", "jan", "--profile", profile, "--id", A[1])
    assert registered.json("add", "jan", "--id", OTHER_PROFILE)["conversation_count"] == 2
    assert registered.json("add", "jan", "--id", A[2])["conversation_count"] == 3
    # A file made without one keeps the rule of its first conversation's profile.
    registered("create", "--name", "feb", "--id", A[3])
    assert "consultant_profile differs" in registered("add", "feb", "--id", OTHER_PROFILE, code=3).stderr


@pytest.fixture
def reference(reference_file):
    return reference_file


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_check_takes_our_own_outputs_for_what_they_are(cli, reference, tmp_path, kind):
    out = tmp_path / f"ref.{kind}"
    cli("export", "ref", "--format", kind, "-o", out)
    report = cli.json("check", out)
    stored = cli.json("check", "ref")
    assert report["source"] == f"brightrun-lora-v4 {kind}" and report["ok"]
    assert {k: v for k, v in report.items() if k not in ("file", "source")} == {
        k: v for k, v in stored.items() if k != "file"
    }
    assert cli("check", out).stdout.startswith(
        f"source          brightrun-lora-v4 {kind}, as messages rows (conversation mode)\n"
    )


def test_check_refuses_a_jsonl_whose_header_miscounts_its_rows(cli, reference, tmp_path):
    out = tmp_path / "ref.jsonl"
    cli("export", "ref", "--format", "jsonl", "-o", out)
    out.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:-1]))
    assert cli("check", out, code=3).stderr == f"Error: {out}: its header says 20 pairs, and 19 rows follow it\n"


def test_export_json_reports_what_it_wrote(cli, reference, tmp_path):
    report = cli.json("export", "ref", "--format", "messages", "-o", tmp_path / "m.jsonl")
    assert report == {
        "file": "ref",
        "format": "messages",
        "output": str(tmp_path / "m.jsonl"),
        "bytes": (tmp_path / "m.jsonl").stat().st_size,
    }
    split = cli.json(
        "export", "ref", "--format", "messages", "--split", "validation=0.3", "--output-dir", tmp_path / "split"
    )
    assert split["rows"] == {"train": 5, "validation": 2} and split["files"][0] == "README.md"
    assert "standard output holds the export" in cli("export", "ref", "--format", "messages", "--json", code=2).stderr


def test_a_tampered_output_never_reaches_a_pipe(cli, reference):
    path = reference["jsonl_file_path"]  # a hard link to the version's output: both change
    data = open(path, "rb").read()
    with open(path, "r+b") as f:
        f.write(data.replace(b"anxiety", b"ANXIETY", 1))
    result = cli("export", "ref", "--format", "jsonl", code=5)
    assert (
        result.stdout_bytes == b""
        and result.stderr.startswith("Error: ")
        and "differs from its commit" in result.stderr
    )


def test_global_json_and_completion_options_mean_what_they_say(cli):
    cli("conversations", "scan", FIXTURES / "conversations")
    assert cli.json("conversations", "list") == orjson.loads(cli("conversations", "--json", "list").stdout)
    result = cli("--install-completion", "zsh", code=2)
    assert "--install-completion takes no shell: it is for the shell it runs in (run it from zsh)" in result.stderr
    assert cli("--version").stdout == "trainfiles 0.3.0\n"


def test_restore_keeps_the_current_name_and_description_unless_asked(registered):
    registered("create", "--name", "dec", "--description", "first", "--id", A[0])
    registered("add", "dec", "--id", A[1])
    registered("rename", "dec", "dec-2")
    registered("describe", "dec-2", "--description", "second")
    restored = registered.json("restore", "dec-2", "--version", 1)
    assert (restored["name"], restored["description"], restored["conversation_count"]) == ("dec-2", "second", 1)
    stored = orjson.loads(open(restored["json_file_path"], "rb").read())
    assert stored["training_file_metadata"]["file_name"] == "dec-2"
    assert registered.json("verify")["ok"]
    back = registered.json("restore", "dec-2", "--version", 1, "--as-was")
    assert (back["name"], back["description"]) == ("dec", "first")
    assert [v["operation"] for v in registered.json("log", "dec")] == [
        "create",
        "add",
        "rename",
        "describe",
        "restore",
        "restore",
    ]


def test_gc_keep_prunes_young_versions_but_spares_young_staging(registered, tmp_path):
    registered("create", "--name", "dec", "--id", A[0])
    registered("add", "dec", "--id", A[1])
    stray = (
        tmp_path / "store" / registered.json("show", "dec")["id"] / "versions" / "000009-aaaaaaaaaaaa" / "training.json"
    )
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"{}")  # a writer in flight
    report = registered.json("gc", "--keep", "1")
    assert [os.path.basename(os.path.dirname(url)).split("-")[0] for url in report["deleted"]] == ["000001", "000001"]
    assert stray.exists()


def test_an_empty_remove_is_refused_like_an_empty_add(registered, tmp_path):
    registered("create", "--name", "dec", "--id", A[0], "--id", A[1])
    (tmp_path / "none.txt").write_text("# nothing\n")
    for command in ("add", "remove"):
        assert (
            registered(command, "dec", "--ids-file", tmp_path / "none.txt", code=3).stderr
            == "Error: no conversation ids given\n"
        )
    assert [v["version"] for v in registered.json("log", "dec")] == [1]


def test_a_missing_ids_file_and_a_missing_manifest_are_both_not_found(cli, tmp_path):
    assert (
        cli("create", "--name", "x", "--ids-file", tmp_path / "no.txt", code=4).stderr
        == f"Error: ids file not found: {tmp_path / 'no.txt'}\n"
    )
    assert cli("conversations", "import", tmp_path / "no.csv", code=4).stderr.startswith("Error: ")


def test_import_says_which_sources_are_not_there(cli, tmp_path):
    rows = list(csv.DictReader((FIXTURES / "manifest.csv").open()))
    rows[0]["enriched_file_path"] = "conversations/nowhere/enriched.json"
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = cli.json("conversations", "import", manifest, "--base", FIXTURES)
    missing = str(FIXTURES / "conversations/nowhere/enriched.json")
    assert result["missing_sources"] == [{"conversation_id": rows[0]["conversation_id"], "path": missing}]
    assert result["registered"] == 12 and result["invalid"] == []
    said = cli("conversations", "import", manifest, "--base", FIXTURES).stdout
    assert said.endswith(
        f"  missing source of {rows[0]['conversation_id']}: {missing} is not there (`create` will refuse it)\n"
    )


def test_a_conversation_found_at_another_path_is_said_to_have_moved(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    moved = tmp_path / "moved" / A[0]
    moved.mkdir(parents=True)
    (old,) = (FIXTURES / "conversations").glob(f"*/{A[0]}/enriched.json")
    (moved / "enriched.json").write_bytes(old.read_bytes())
    result = cli("conversations", "scan", tmp_path / "moved")
    assert (
        result.stdout
        == f"registered 0, updated 1, invalid 0\n  moved {A[0]}: from {old} to {moved / 'enriched.json'}\n"
    )


def test_long_work_shows_progress_for_check_and_export(cli, reference, monkeypatch, tmp_path):
    bars = []

    class Bar:
        def __init__(self, label, total):
            bars.append((label, total))

        def __enter__(self):
            return lambda n: None

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(exports, "bar", Bar)
    cli("export", "ref", "--format", "messages", "-o", tmp_path / "m.jsonl")
    assert bars == [("Reading conversations", 7)]
    cli("check", "ref")
    assert len(bars) > 1 and set(bars) == {("Reading conversations", 7)}


def test_counts_read_as_counts(cli):
    assert render.counted(1, "row", "rows") == "1 row" and render.counted(2, "row", "rows") == "2 rows"
    assert render._share({"kept": 181_512, "lost": 32}) == "181512 of 181544 (99.9%)"
    assert render._share({"kept": 5, "lost": 0}) == "5 of 5 (100.0%)"


def test_list_keeps_the_id_at_80_columns_and_sorts_and_limits(registered):
    registered("create", "--name", "a-file-with-a-rather-long-name", "--id", A[0])
    registered("create", "--name", "b", "--id", A[1], "--id", A[2])
    narrow = registered("list", env={"COLUMNS": "80"}).stdout
    assert narrow.splitlines()[0].split()[:2] == ["name", "id"] and max(len(line) for line in narrow.splitlines()) <= 80
    assert [f["name"] for f in registered.json("list", "--sort", "conversations")] == [
        "b",
        "a-file-with-a-rather-long-name",
    ]
    assert [f["name"] for f in registered.json("list", "--sort", "name", "--limit", "1")] == [
        "a-file-with-a-rather-long-name"
    ]


def test_restore_keeps_the_current_target_model_too(registered):
    registered("create", "--name", "dec", "--id", A[0], "--target-model", "m1")
    registered("add", "dec", "--id", A[1])
    registered("describe", "dec", "--target-model", "m2")
    restored = registered.json("restore", "dec", "--version", 1)
    assert (restored["target_model"], restored["conversation_count"]) == ("m2", 1)
    stored = orjson.loads(open(restored["json_file_path"], "rb").read())
    assert stored["training_file_metadata"]["target_model"] == "m2"
    assert registered.json("restore", "dec", "--version", 1, "--as-was")["target_model"] == "m1"


def test_check_names_what_is_wrong_in_our_own_outputs(cli, reference, tmp_path):
    jsonl, doc = tmp_path / "ref.jsonl", tmp_path / "ref.json"
    cli("export", "ref", "--format", "jsonl", "-o", jsonl)
    cli("export", "ref", "--format", "json", "-o", doc)
    lines = jsonl.read_bytes().splitlines(keepends=True)
    (tmp_path / "foreign.jsonl").write_bytes(b"".join([lines[0], b'{"foo": 1}\n', *lines[2:]]))
    assert cli("check", tmp_path / "foreign.jsonl", code=3).stderr.startswith(
        f"Error: {tmp_path / 'foreign.jsonl'} row 2: not a brightrun-lora-v4 row"
    )
    (tmp_path / "text.jsonl").write_bytes(
        lines[0].replace(b'"total_pairs":20', b'"total_pairs":"20"') + b"".join(lines[1:])
    )
    assert (
        "its header's total_pairs is '20', not a number of rows" in cli("check", tmp_path / "text.jsonl", code=3).stderr
    )
    parsed = orjson.loads(doc.read_bytes())
    (tmp_path / "one-line.json").write_bytes(orjson.dumps(parsed))
    assert cli.json("check", tmp_path / "one-line.json")["source"] == "brightrun-lora-v4 json"
    parsed["conversations"].pop()
    (tmp_path / "short.json").write_bytes(orjson.dumps(parsed, option=orjson.OPT_INDENT_2))
    assert (
        "its metadata does not count what it holds: total_conversations 7, counted 6"
        in cli("check", tmp_path / "short.json", code=3).stderr
    )


def test_common_options_after_the_command_win_over_a_stale_environment(registered, tmp_path):
    good = tmp_path / "catalog.db"
    assert registered("list", "--catalog", good, env={"TRAINFILES_CATALOG": str(tmp_path / "gone" / "c.db")}).stdout


def test_skip_absent_still_asks_who_may_change_the_file(registered):
    registered("create", "--name", "dec", "--id", A[0], "--id", A[1])
    assert registered("--user", "bob", "remove", "dec", "--id", A[2], "--skip-absent", code=7).stderr.startswith(
        "Error: training file 'dec' was created by alice"
    )


def test_common_options_between_the_group_and_its_command(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    other = ("--catalog", tmp_path / "other.db", "--store", tmp_path / "other-store")
    cli(*other, "conversations", "scan", FIXTURES / "other-profile")
    assert len(cli.json("conversations", *other, "list")) == 1
    assert len(cli.json("conversations", "list", *other)) == 1
    assert len(cli.json("conversations", "list")) == 13
