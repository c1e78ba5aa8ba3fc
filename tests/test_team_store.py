"""A store a team shares: registrations that every machine sees, a protocol that says which
trainfiles can read and write it, nothing made by mistake, pipeline steps that can run again,
only stores that can commit atomically, and download copies repaired by whoever finds them
behind."""

import os
import shutil

import orjson
import pytest

from trainfiles.core import records
from trainfiles.errors import StorageUnavailable
from trainfiles.store import commits

import generate
from conftest import FIXTURES, SOURCES

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
    registered = tmp_path / "registered-store"
    said = cli("--store", registered, "conversations", "scan", FIXTURES / "conversations")
    assert said.stderr == f"new store at {registered}\n"
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


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def sources(request) -> str:
    """Where the fixture conversations are read from: a local folder, or the live S3 server
    (whose fixture also makes the store an S3 one)."""
    if request.param == "local":
        return str(FIXTURES)
    request.getfixturevalue("s3")
    return SOURCES


def test_every_machine_sees_every_registration(cli, sources, tmp_path):
    b = ("--catalog", tmp_path / "b.db")  # another machine: a catalog of its own, the same store
    imported = cli.json("conversations", "import", f"{sources}/manifest.csv")
    scanned = cli.json("conversations", "scan", f"{sources}/conversations")
    assert (imported["registered"], scanned["registered"], scanned["updated"]) == (12, 1, 12)
    registered = cli.json("conversations", "list")
    assert len(registered) == 13 and cli.json(*b, "conversations", "list") == registered
    # B creates and adds from A's registrations, reading the sources they name; A sees B's versions.
    made = cli.json(*b, "create", "--name", "dec", "--batch", generate.BATCH_A)
    assert made["conversation_count"] == 8
    grown = cli.json(*b, "add", "dec", "--batch", generate.BATCH_B, "--skip-invalid")
    assert cli.json("show", "dec") == cli.json(*b, "show", "dec") and grown["version"] == 2
    # A scan that registers nothing new publishes nothing.
    log = len(cli.json("log", "dec"))
    assert cli.json(*b, "conversations", "scan", f"{sources}/conversations")["registered"] == 0
    assert len(cli.json("log", "dec")) == log and cli.json("conversations", "list") == registered


def test_a_conversation_registered_at_another_path_is_said_moved_everywhere(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    old = next(p for p in (FIXTURES / "conversations").rglob("enriched.json") if A[0] in str(p))
    new = tmp_path / "moved" / A[0] / "enriched.json"
    new.parent.mkdir(parents=True)
    shutil.copy(old, new)
    b = ("--catalog", tmp_path / "b.db")
    said = cli(*b, "conversations", "scan", tmp_path / "moved")
    assert said.stdout == f"registered 0, updated 1, invalid 0\n  moved {A[0]}: from {old} to {new}\n"
    assert cli.json("conversations", "show", A[0])["enriched_file_path"] == str(new)


def test_a_store_says_which_trainfiles_can_read_and_write_it(cli, tmp_path):
    store = tmp_path / "store"
    cli("conversations", "scan", FIXTURES / "conversations")
    protocol = orjson.loads((store / "_protocol.json").read_bytes())
    assert protocol == {
        "format": "trainfiles.protocol/1",
        "reader_version": records.READER_VERSION,
        "writer_version": records.WRITER_VERSION,
        "created_at": "2025-12-01T00:00:00Z",
        "created_by": "alice",
    }
    cli("create", "--name", "dec", "--id", A[0])
    # A newer writer's store: this trainfiles reads it, and changes nothing.
    newer = tmp_path / "newer"
    shutil.copytree(store, newer)
    (newer / "_protocol.json").write_bytes(orjson.dumps({**protocol, "writer_version": 3}))
    fresh = ("--catalog", tmp_path / "fresh.db", "--store", newer)
    assert [f["name"] for f in cli.json(*fresh, "list")] == ["dec"]
    refused = cli(*fresh, "add", "dec", "--id", A[1], code=6)
    assert refused.stderr == (
        f"Error: {newer} needs a trainfiles that writes store format 3 (this one writes up to 2): "
        "upgrade trainfiles to change this store\n"
    )
    # A newer reader's: nothing is read. (The object is written once: a machine reads it once.)
    (newer / "_protocol.json").write_bytes(orjson.dumps({**protocol, "reader_version": 3, "writer_version": 3}))
    for machine in (tmp_path / "other.db", tmp_path / "another.db"):
        refused = cli("--catalog", machine, "--store", newer, "list", code=6)
        assert refused.stderr == (
            f"Error: {newer} needs a trainfiles that reads store format 3 (this one reads up to 2): "
            "upgrade trainfiles to use this store\n"
        )
    # A later upgrade is a protocol record of the log: honoured from where it lands.
    cli("create", "--name", "jan", "--id", A[1])
    upgrade = {**protocol, "sequence": 4, "reader_version": 3, "writer_version": 3}
    (store / "_log" / f"{4:020d}.json").write_bytes(orjson.dumps(upgrade))
    assert cli("list", code=6).stderr.startswith(f"Error: {store} needs a trainfiles that reads store format 3 ")
    # A protocol object that cannot be believed is named, and how to mend it said.
    (newer / "_protocol.json").write_bytes(b"{not json")
    refused = cli("--catalog", tmp_path / "third.db", "--store", newer, "list", code=6)
    assert refused.stderr.startswith(f"Error: {newer / '_protocol.json'} cannot be believed (not JSON")


def test_sources_this_machine_scanned_are_its_own_whoever_registered_them_first(cli, tmp_path):
    b = ("--catalog", tmp_path / "b.db", "--user", "bob")
    cli("conversations", "scan", FIXTURES / "conversations", "--batch", "b1")
    cli(*b, "conversations", "scan", FIXTURES / "conversations", "--batch", "b1")  # nothing new to publish
    cli("create", "--name", "f", "--id", A[0])
    cli("add", "f", "--id", A[1])
    cli("gc", "--keep", "1", "--min-age", "0")
    # B rebuilds the pruned version 1 from sources it scanned itself, and verifies them.
    exported = cli(*b, "export", "f", "--version", "1", "--output", tmp_path / "v1.json")
    assert exported.exit_code == 0
    assert cli.json(*b, "verify", "--sources")["not_read"] == []
    # Another machine's record that leaves the paths as they are takes nothing from A.
    cli(*b, "conversations", "scan", FIXTURES / "conversations", "--batch", "b2")
    assert cli.json("verify", "--sources")["not_read"] == []
    # A manifest naming no path vouches for none: C has only others' word for the sources.
    c = ("--catalog", tmp_path / "c.db")
    (tmp_path / "m.csv").write_text(f"conversation_id,batch_job_id\n{A[0]},m\n")
    cli(*c, "conversations", "import", tmp_path / "m.csv")
    assert len(cli.json(*c, "verify", "--sources")["not_read"]) == 2


def test_a_batch_joined_is_recorded_even_when_nothing_else_changes(cli, tmp_path):
    (tmp_path / "m.csv").write_text(f"conversation_id,batch_job_id\n{A[0]},from-manifest\n")
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("conversations", "import", tmp_path / "m.csv")
    cli("conversations", "scan", FIXTURES / "conversations", "--batch", "S")
    joined = [c["conversation_id"] for c in cli.json("conversations", "list", "--batch", "S")]
    assert len(joined) == 13 and A[0] in joined
    assert cli.json("--catalog", tmp_path / "b.db", "conversations", "list", "--batch", "S") == cli.json(
        "conversations", "list", "--batch", "S"
    )


def test_a_protocol_record_raises_each_version_on_its_own(cli, tmp_path):
    store = tmp_path / "store"
    cli("conversations", "scan", FIXTURES / "conversations")
    protocol = orjson.loads((store / "_protocol.json").read_bytes())
    newer_writer = {**protocol, "sequence": 2, "reader_version": 1, "writer_version": records.WRITER_VERSION + 1}
    (store / "_log" / f"{2:020d}.json").write_bytes(orjson.dumps(newer_writer))
    assert cli.json("conversations", "list")  # still readable
    refused = cli("create", "--name", "x", "--id", A[0], code=6)
    assert "needs a trainfiles that writes store format 3" in refused.stderr
    assert "needs a trainfiles that writes store format 3" in cli("gc", "--min-age", "0", code=6).stderr


def test_an_oversized_protocol_object_is_refused_unread(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    os.truncate(tmp_path / "store" / "_protocol.json", 20 << 30)  # sparse: 20 GiB that nothing reads
    refused = cli("--catalog", tmp_path / "fresh.db", "list", code=6)
    assert refused.stderr.startswith(
        f"Error: {tmp_path / 'store' / '_protocol.json'} cannot be believed (larger than 4096 bytes, "
    )
