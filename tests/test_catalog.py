"""The catalog file: schema from migrations, constraints, and concurrent writers."""

import os
import subprocess
import sys

import orjson
import pytest
import sqlite_utils

from trainfiles.store.catalog import Catalog
from trainfiles.store.migrations import migrations

import generate
from conftest import FIXTURES


def test_migrations_create_the_schema_once(tmp_path):
    path = str(tmp_path / "c.db")
    Catalog(path).close()
    Catalog(path).close()  # reopening applies nothing twice
    db = sqlite_utils.Database(path)
    assert [m.name for m in migrations.applied(db)] == [
        "m001_initial",
        "m002_pending_restores",
        "m003_index_of_the_store",
        "m004_trusted_outputs",
        "m005_records_read",
        "m006_profile_set",
        "m007_shared_registrations",
        "m008_own_values",
    ]
    assert set(db.table_names()) >= {
        "conversations",
        "batch_items",
        "files",
        "members",
        "versions",
        "index_state",
        "log_read",
        "bad_records",
    }
    assert db["files"].columns_dict["json_sha256"] is str
    assert db["members"].pks == ["file_id", "conversation_id"]
    # Members are not tied to this catalog's registrations: another machine may have added them.
    assert {fk.other_table for fk in db["members"].foreign_keys} == {"files"}
    assert db["versions"].pks == ["file_id", "version"]
    indexed = {tuple(i.columns) for i in db["files"].indexes}
    assert ("name",) in indexed and ("status", "created_at") in indexed


def test_foreign_keys_are_enforced(tmp_path):
    import sqlite3

    catalog = Catalog(str(tmp_path / "c.db"))
    with pytest.raises(sqlite3.IntegrityError), catalog.write():
        catalog.db["batch_items"].insert({"batch_job_id": "b", "conversation_id": "nope"})
    assert catalog.db["batch_items"].count == 0


def test_members_record_source_digest_and_who_added(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    one, two = generate.conversation_uuid(1), generate.conversation_uuid(2)
    cli("create", "--name", "dec", "--id", one)
    cli("add", "dec", "--id", two, env={"SOURCE_DATE_EPOCH": "1764633600"})
    db = sqlite_utils.Database(tmp_path / "catalog.db")
    members = list(
        db.query("select conversation_id, position, added_at, added_by, source_sha256 from members order by position")
    )
    import hashlib

    digest = lambda seed: hashlib.sha256(  # noqa: E731
        (
            FIXTURES / "conversations" / generate.USER_ID / generate.conversation_uuid(seed) / "enriched.json"
        ).read_bytes()
    ).hexdigest()
    assert members == [
        {
            "conversation_id": one,
            "position": 0,
            "added_at": "2025-12-01T00:00:00Z",
            "added_by": "alice",
            "source_sha256": digest(1),
        },
        {
            "conversation_id": two,
            "position": 1,
            "added_at": "2025-12-02T00:00:00Z",
            "added_by": "alice",
            "source_sha256": digest(2),
        },
    ]


ADD = """
import sys
from trainfiles.cli import app
sys.argv = ["trainfiles", "add", "shared", "--id", sys.argv[1]]
app()
"""


@pytest.mark.crash
def test_concurrent_adds_serialise_without_losing_a_conversation(cli, tmp_path):
    """Four processes add to one file at once: all land, one after the other, nothing lost."""
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "shared", "--id", generate.conversation_uuid(1))
    env = {**os.environ}
    env.pop("SOURCE_DATE_EPOCH")
    ids = [generate.conversation_uuid(s) for s in range(2, 6)]
    procs = [
        subprocess.Popen([sys.executable, "-c", ADD, cid], env=env, stderr=subprocess.PIPE, text=True) for cid in ids
    ]
    outcomes = [(p.wait(), p.stderr.read()) for p in procs]
    assert outcomes == [(0, "")] * 4
    shown = cli.json("show", "shared")
    assert shown["conversation_ids"][0] == generate.conversation_uuid(1)
    assert sorted(shown["conversation_ids"][1:]) == sorted(ids)
    doc = orjson.loads(open(shown["json_file_path"], "rb").read())
    assert [c["conversation_metadata"]["conversation_id"] for c in doc["conversations"]] == shown["conversation_ids"]


@pytest.mark.slow
def test_commands_on_local_paths_never_import_fsspec(tmp_path):
    """fsspec takes 40 ms to import (asyncio, every installed package's entry points),
    a sixth of a `list`: scanning, writing, reading and checking a local store do without."""
    common = ["--catalog", str(tmp_path / "c.db"), "--store", str(tmp_path / "store"), "--user", "t"]
    export = str(tmp_path / "x.jsonl")
    for args in (
        ["conversations", "scan", str(FIXTURES / "conversations")],
        ["create", "--name", "x", "--id", generate.conversation_uuid(1)],
        ["add", "x", "--id", generate.conversation_uuid(2)],
        ["remove", "x", "--id", generate.conversation_uuid(1)],
        ["list"],
        ["show", "x"],
        ["export", "x", "--format", "messages", "--output", export],
        ["check", export],
        ["verify", "--sources"],
    ):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "trainfiles", *common, *args], capture_output=True, text=True
        )
        assert done.returncode == 0, (
            args,
            [line for line in done.stderr.splitlines() if not line.startswith("import time:")],
        )
        assert "trainfiles.cli" in _imported(done.stderr) and "fsspec" not in _imported(done.stderr), args
    # An S3 URL does load it, so the test would see it.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trainfiles", *common, "conversations", "scan", "s3://b/x"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRAINFILES_STORAGE_OPTIONS": "[]"},
    )
    assert done.returncode == 3 and "fsspec" in _imported(done.stderr)


def _imported(importtime: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from its standard error."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime.splitlines() if line.startswith("import time:")}


@pytest.mark.slow
def test_no_command_imports_pandas_or_numpy(tmp_path):
    """sqlite_utils imports both when installed, as in a trainer's environment: half a
    second on every command. A stand-in that leaves a mark proves we never load them."""
    for name in ("pandas", "numpy"):
        (tmp_path / f"{name}.py").write_text(f"open({str(tmp_path / name)!r} + '.imported', 'w').close()\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for args in (["list"], ["conversations", "scan", str(FIXTURES / "conversations")]):
        done = subprocess.run([sys.executable, "-m", "trainfiles", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.imported")) == []
    # The stand-ins do import, so the test would see them if a command loaded them.
    subprocess.run([sys.executable, "-c", "import pandas, numpy"], env=env, check=True)
    assert sorted(p.name for p in tmp_path.glob("*.imported")) == ["numpy.imported", "pandas.imported"]
