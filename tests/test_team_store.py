"""A store a team shares: nothing made by mistake, pipeline steps that can run again, only
stores that can commit atomically, and download copies repaired by whoever finds them behind."""

import orjson

from trainfiles.errors import StorageUnavailable
from trainfiles.store import commits

import generate
from conftest import FIXTURES

A = [generate.conversation_uuid(s) for s in range(1, 9)]


def test_a_store_that_is_not_there_is_said_so_and_nothing_is_made(cli, tmp_path):
    missing = tmp_path / "mistyped" / "store"
    result = cli("--store", missing, "list", code=4)
    assert (
        result.stderr
        == f"Error: no store at {missing}: check --store (or TRAINFILES_STORE); `trainfiles create` starts a new one\n"
    )
    assert not (tmp_path / "mistyped").exists()
    result = cli("--catalog", tmp_path / "nowhere" / "c.db", "list", code=4)
    assert (
        result.stderr
        == f"Error: no folder {tmp_path / 'nowhere'} for the catalog {tmp_path / 'nowhere' / 'c.db'}: make it first, or check --catalog\n"
    )
    assert not (tmp_path / "nowhere").exists()


def test_the_first_write_starts_a_store_and_says_so(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    new = tmp_path / "new-store"
    result = cli("--store", new, "create", "--name", "dec", "--id", A[0])
    assert result.stderr == f"new store at {new}\n"
    assert cli("--store", new, "create", "--name", "jan", "--id", A[1]).stderr == ""
    # A refused create on a new store makes nothing, and says nothing of a store.
    other = tmp_path / "other-store"
    assert cli(
        "--store", other, "create", "--name", "x", "--id", "00000000-0000-4000-8000-000000000000", code=4
    ).stderr.startswith("Error: unknown")
    assert not other.exists()


def test_pipeline_steps_run_again(cli):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "dec", "--id", A[0])
    first = cli.json("add", "dec", "--id", A[1], "--id", A[2], "--skip-present")
    assert (first["version"], first["already_present"]) == (2, [])
    again = cli("add", "dec", "--id", A[1], "--id", A[2], "--skip-present", "--json")
    assert orjson.loads(again.stdout)["version"] == 2 and orjson.loads(again.stdout)["already_present"] == [A[1], A[2]]
    assert again.stderr == ""
    said = cli("add", "dec", "--id", A[2], "--id", A[3], "--skip-present")
    assert said.stderr == f"skipped, already in dec: {A[2]}\n"
    assert cli.json("show", "dec")["version"] == 3
    cli("add", "dec", "--id", A[3], code=5)  # without the flag, a repeat is still a conflict
    gone = cli.json("remove", "dec", "--id", A[3], "--id", A[4], "--skip-absent")
    assert (gone["version"], gone["already_absent"]) == (4, [A[4]])
    assert cli.json("remove", "dec", "--id", A[3], "--skip-absent")["version"] == 4
    assert [v["version"] for v in cli.json("log", "dec")] == [1, 2, 3, 4]


def test_download_copies_left_behind_by_their_writer_are_repaired_by_its_next_command(cli, tmp_path, monkeypatch):
    cli("conversations", "scan", FIXTURES / "conversations")
    made = cli.json("create", "--name", "dec", "--id", A[0])
    update_copies = commits.update_copies

    def unreachable(store, record):
        raise StorageUnavailable("the store went away")

    monkeypatch.setattr(commits, "update_copies", unreachable)
    added = cli("add", "dec", "--id", A[1])
    assert (
        "note: the download copies of version 2 were not updated (the store went away); the next command will"
        in added.stderr
    )
    monkeypatch.setattr(commits, "update_copies", update_copies)
    marker = tmp_path / "store" / made["id"] / "current.json"
    assert orjson.loads(marker.read_bytes())["version"] == 1
    cli("list")  # the same machine, the next command
    assert orjson.loads(marker.read_bytes())["version"] == 2
    assert cli.json("verify")["ok"]
