"""Red-team of store checkpoints: hostile, corrupt or racing checkpoints never make a new
machine differ from one that read the whole log, never crash it, never lead it outside the
store."""

import hashlib

import pytest
from test_checkpoints import B_IDS, grow, lie

from conftest import FIXTURES


@pytest.fixture(autouse=True)
def every_third(monkeypatch):
    monkeypatch.setenv("TRAINFILES_CHECKPOINT_INTERVAL", "3")


def newest_of(tmp_path, n=9):
    return tmp_path / "store" / "_checkpoints" / f"{n:020d}.json.gz"


def test_a_checkpoint_naming_outputs_outside_the_store_is_not_believed(cli, tmp_path):
    grow(cli)
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(b'{"secret": true}\n')
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()

    def outside(d):
        f = d["files"][0]
        for row in (f["file"], f["versions"][-1]):
            row.update(jsonl_key=str(secret), jsonl_sha256=digest, jsonl_file_size=secret.stat().st_size)

    lie(newest_of(tmp_path), outside)
    b = ("--catalog", tmp_path / "b.db")
    out = cli(*b, "export", "jan", "--format", "jsonl", "--version", 7)
    assert b"secret" not in out.stdout_bytes
    assert "cannot be believed" in out.stderr


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59Z", "2026-02-30T10:00:00Z"])
def test_a_checkpoint_with_a_stamp_that_is_no_date_is_not_believed(cli, tmp_path, stamp):
    grow(cli)
    cli("create", "--name", "other", "--id", B_IDS[2])  # record 11
    cli("rename", "other", "another")  # record 12: a checkpoint

    def when(d):
        for f in d["files"]:
            if f["file"]["name"] == "another":
                f["file"]["updated_at"] = f["versions"][-1]["created_at"] = stamp

    lie(newest_of(tmp_path, 12), when)
    b = ("--catalog", tmp_path / "b.db")
    said = cli(*b, "list").stderr
    assert "cannot be believed" in said
    cli(*b, "list")  # the table renders every file's age
    cli(*b, "rename", "another", "third")
    assert cli.json("list") == cli.json(*b, "list")


def test_a_checkpoint_whose_versions_name_a_wrong_parent_is_not_believed(cli, tmp_path):
    grow(cli)
    cli("gc", "--min-age", "0", "--keep", "1")  # old versions are made from their members

    def parent(d):
        d["files"][0]["versions"][2]["parent"] = 7  # version 3's, which has a file checkpoint

    lie(newest_of(tmp_path), parent)
    b = ("--catalog", tmp_path / "b.db")
    assert "cannot be believed" in cli(*b, "list").stderr
    cli(*b, "conversations", "scan", f"{FIXTURES}/conversations")  # its sources, registered here too
    assert (
        cli(*b, "export", "jan", "--format", "messages", "--version", 5).stdout_bytes
        == cli("export", "jan", "--format", "messages", "--version", 5).stdout_bytes
    )


@pytest.mark.parametrize("sequence", [1, 2])  # the manifest's registration; the scan's
def test_a_checkpoint_whose_version_names_another_record_is_not_a_traceback(cli, tmp_path, sequence):
    grow(cli)
    cli("gc", "--min-age", "0", "--keep", "1")

    def elsewhere(d):
        d["files"][0]["versions"][4]["sequence"] = sequence  # version 5's record: a registration

    lie(newest_of(tmp_path), elsewhere)
    b = ("--catalog", tmp_path / "b.db")
    cli(*b, "list")
    cli(*b, "conversations", "scan", f"{FIXTURES}/conversations")
    cli(*b, "export", "jan", "--format", "messages", "--version", 5, code=3)
