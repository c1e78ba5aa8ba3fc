"""The store as the truth: versions, history, two machines on one store, verify, gc and the
migration of catalogs made before versions, on a local store and on the live S3 server."""

import errno
import hashlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from trainfiles.core import builder
from trainfiles.storage import filecopy
from trainfiles.store import history
from trainfiles.store.catalog import Catalog
from trainfiles.store.members import Members

import generate
from conftest import FIXTURES, SOURCES, STORE

A = [generate.conversation_uuid(s) for s in range(1, 9)]


@dataclass
class Place:
    """Where one test's store and sources live, and how to list the store's objects."""

    store: str
    sources: str
    keys: callable


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "store"
        return Place(
            str(root),
            str(FIXTURES / "conversations"),
            lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
        )
    s3 = request.getfixturevalue("s3")
    prefix = STORE.removeprefix("s3://")
    return Place(
        STORE, f"{SOURCES}/conversations", lambda: sorted(k.removeprefix(prefix + "/") for k in s3.find(prefix))
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def exported(cli, name: str, *extra, machine=()) -> tuple[bytes, bytes]:
    return tuple(cli(*machine, "export", name, "--format", kind, *extra).stdout_bytes for kind in ("json", "jsonl"))


def test_every_version_exports_byte_for_byte(cli, place):
    cli("conversations", "scan", place.sources)
    seen = {}
    cli("create", "--name", "dec", "--id", A[0], "--id", A[1])
    seen[1] = exported(cli, "dec")
    cli("add", "dec", "--id", A[2])
    seen[2] = exported(cli, "dec")
    cli("add", "dec", "--id", A[3], "--id", A[4])
    seen[3] = exported(cli, "dec")
    cli("remove", "dec", "--id", A[1], "--id", A[3])
    seen[4] = exported(cli, "dec")
    assert cli.json("restore", "dec", "--version", "2")["conversation_count"] == 3
    seen[5] = exported(cli, "dec")
    assert seen[5] == seen[2]  # a new version equal to version 2, byte for byte
    for number, outputs in seen.items():
        assert exported(cli, "dec", "--version", number) == outputs
        # Streamed, copied as bytes or filtered: what the in-memory builder writes for the document.
        doc = orjson.loads(outputs[0])
        assert (builder.render_json(doc), builder.render_jsonl(doc)) == outputs
    log = cli.json("log", "dec")
    assert [
        (v["version"], v["parent"], v["operation"], v["added"], v["removed"], v["conversation_count"]) for v in log
    ] == [
        (1, None, "create", [A[0], A[1]], [], 2),
        (2, 1, "add", [A[2]], [], 3),
        (3, 2, "add", [A[3], A[4]], [], 5),
        (4, 3, "remove", [], [A[1], A[3]], 3),
        (5, 4, "restore", [], [], 3),
    ]
    assert [(v["json_sha256"], v["jsonl_sha256"]) for v in log] == [(sha(j), sha(jl)) for j, jl in seen.values()]
    assert [v["created_at"] for v in log] == [f"2025-12-01T00:00:0{n}Z" for n in range(5)]  # moves at every change
    assert log[4]["restored_from"] == 2
    assert cli.json("show", "dec")["conversation_ids"] == [A[0], A[1], A[2]]
    assert cli.json("verify", "--sources") == {
        "checked": 4 * 2 + 2 + 3,
        "pruned": 0,
        "mismatches": [],
        "not_read": [],
        "ok": True,
    }
    human = cli("log", "dec").stdout.splitlines()
    assert human[0].split() == [
        "version",
        "when",
        "by",
        "operation",
        "changed",
        "conversations",
        "pairs",
        "json",
        "sha256",
        "jsonl",
        "sha256",
    ]
    assert human[2].split()[:6] == ["1", "2025-12-01T00:00:00Z", "alice", "create", "+2", "2"]
    assert human[5].split()[:6] == ["4", "2025-12-01T00:00:03Z", "alice", "remove", "-2", "3"]
    assert human[6].split()[:6] == ["5", "2025-12-01T00:00:04Z", "alice", "restore", "=", "v2"]


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.ENOSYS])
def test_an_add_copies_its_parent_where_the_kernel_will_not(cli, tmp_path, monkeypatch, refusal):
    """An add copies its parent's conversations file to file in the kernel; where the kernel
    refuses (another filesystem, another system), through memory, to the same bytes."""
    cli("conversations", "scan", str(FIXTURES / "conversations"))
    cli("create", "--name", "dec", "--id", A[0], "--id", A[1])
    refused = []

    def refuse(*args):
        refused.append(args)
        raise OSError(refusal, "refused")

    monkeypatch.setattr("os.copy_file_range", refuse)
    cli("add", "dec", "--id", A[2])
    assert len(refused) == 2  # the JSON's conversations and the JSONL's rows, both refused
    json_out, jsonl_out = exported(cli, "dec")
    doc = orjson.loads(json_out)
    assert [c["conversation_metadata"]["conversation_id"] for c in doc["conversations"]] == A[:3]
    assert (builder.render_json(doc), builder.render_jsonl(doc)) == (json_out, jsonl_out)
    assert cli.json("verify")["ok"] is True


@pytest.mark.parametrize("change", ["edited", "cut short"])
def test_an_add_stops_when_its_parent_changes_while_copied(cli, tmp_path, monkeypatch, change):
    """The parent's bytes are copied by the kernel and hashed as written: a parent edited or
    cut short under the copy stops the add, naming it, and nothing is committed."""
    cli("conversations", "scan", str(FIXTURES / "conversations"))
    cli("create", "--name", "dec", "--id", A[0], "--id", A[1])
    (parent,) = (tmp_path / "store").glob("*/versions/000001-*/training.jsonl")
    size = parent.stat().st_size
    kernel_copy = os.copy_file_range

    def meddle(src, out, count, offset_src, offset_dst):
        if os.readlink(f"/proc/self/fd/{src}") == str(parent) and parent.stat().st_size == size:
            with open(parent, "r+b") as f:  # in place, as an editor of the hard-linked download copy would
                f.truncate(offset_src + 10) if change == "cut short" else f.write(b" ")
        return kernel_copy(src, out, count, offset_src, offset_dst)

    monkeypatch.setattr("os.copy_file_range", meddle)
    failed = cli("add", "dec", "--id", A[2], code=5)
    if change == "edited":
        assert failed.stderr == f"Error: {parent} changed while it was copied: run `trainfiles verify`\n"
    else:
        assert (
            failed.stderr
            == f"Error: {parent} ends before byte {size}, where its commit says: run `trainfiles verify`\n"
        )
    assert [v["version"] for v in cli.json("log", "dec")] == [1]
    assert [p.name for p in (tmp_path / "store").glob("*/versions/*")] == [parent.parent.name]


def _cached(path: Path, offset: int) -> bool:
    """Whether the page of `path` at `offset` is in memory, asked without reading the disk."""
    with open(path, "rb") as f:
        try:
            return os.preadv(f.fileno(), [bytearray(4096)], offset, os.RWF_NOWAIT) == 4096
        except BlockingIOError:
            return False


def _drops_pages(folder: Path) -> bool:
    """Whether the filesystem under `folder` lets go of a file's pages when asked (tmpfs
    does not: its pages are the file)."""
    probe = folder / "probe"
    with open(probe, "wb") as f:
        f.write(os.urandom(256 << 10))
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    try:
        return not _cached(probe, 128 << 10)
    except OSError:  # RWF_NOWAIT not supported here
        return False
    finally:
        probe.unlink()


def test_an_add_lets_go_of_the_parent_it_copied(cli, tmp_path):
    """A superseded version's copied pages leave the page cache as the add copies them, so
    memory need not hold two copies of a large file (and the new one reuses those pages)."""
    if not hasattr(os, "RWF_NOWAIT") or not _drops_pages(tmp_path):
        pytest.skip("needs Linux and a filesystem whose page cache can be dropped")
    cli("conversations", "scan", str(FIXTURES / "conversations"))
    cli("create", "--name", "dec", *[f"--id={cid}" for cid in A[:7]])
    (parent,) = (tmp_path / "store").glob("*/versions/000001-*/training.json")
    middle = parent.stat().st_size // 2 // 4096 * 4096
    parent.read_bytes()
    assert _cached(parent, middle)
    cli("add", "dec", "--id", A[7])
    assert not _cached(parent, middle)


@pytest.mark.parametrize("kernel", [True, False])
def test_a_copy_lets_go_of_each_window_and_shrugs_off_a_refusal(tmp_path, monkeypatch, kernel):
    """Each window copied is dropped from the source's page cache together with the one
    before it (a large folio across their boundary is dropped only whole), by the kernel's
    copy or through memory; advice refused changes nothing."""
    if not kernel:
        monkeypatch.delattr("os.copy_file_range")
    monkeypatch.setattr(filecopy, "WINDOW", 3000)
    advised = []

    def advise(fd, offset, length, advice):
        advised.append((offset, length, advice))
        raise OSError(errno.EPERM, "refused")

    monkeypatch.setattr(filecopy, "_advise", advise)
    data = os.urandom(10_200)
    (tmp_path / "src").write_bytes(data)
    part = filecopy.FileRange(str(tmp_path / "src"), 100, 10_100)
    src, out = os.open(part.path, os.O_RDONLY), os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        assert filecopy.copy(src, part, out, 0, lambda offset, length: None) == 10_000
    finally:
        os.close(src)
        os.close(out)
    assert (tmp_path / "out").read_bytes() == data[100:10_100]
    drop = os.POSIX_FADV_DONTNEED
    assert advised == [(100, 3000, drop), (100, 6000, drop), (3100, 6000, drop), (6100, 4000, drop)]


def test_the_source_size_limit_is_for_sources_not_the_stores_records(cli, tmp_path):
    """TRAINFILES_MAX_SOURCE_BYTES bounds conversation files, not commit records (about 550
    bytes a member: a file of 125,000 conversations has a record over the default 64 MiB)."""
    cli("conversations", "scan", str(FIXTURES / "conversations"))
    cli("create", "--name", "dec", "--id", A[0], "--id", A[1])
    record = max((tmp_path / "store" / "_log").glob("*.json"))
    for limit in (str(record.stat().st_size - 1), "64MB"):
        (tmp_path / "catalog.db").unlink()  # rebuilt from the records
        assert [f["name"] for f in cli.json("list", env={"TRAINFILES_MAX_SOURCE_BYTES": limit})] == ["dec"]
    refused = cli(
        "conversations", "scan", str(FIXTURES / "conversations"), env={"TRAINFILES_MAX_SOURCE_BYTES": "64MB"}, code=3
    )
    assert refused.stderr == "Error: TRAINFILES_MAX_SOURCE_BYTES must be a number of bytes, not '64MB'\n"


def test_names_descriptions_and_status_are_versions_too(cli, place):
    cli("conversations", "scan", place.sources)
    first = cli.json("create", "--name", "dec", "--description", "first", "--id", A[0])
    one = exported(cli, "dec")
    described = cli.json("describe", "dec", "--description", "reviewed")
    assert (described["description"], described["version"]) == ("reviewed", 2)
    assert exported(cli, "dec") == one  # the description is not in the outputs: kept as they were
    assert cli.json("describe", "dec", "--target-model", "llama-3.1-8b")["target_model"] == "llama-3.1-8b"
    assert b'"target_model": "llama-3.1-8b"' in exported(cli, "dec")[0]
    renamed = cli.json("rename", "dec", "december")
    doc = orjson.loads(exported(cli, "december")[0])
    assert exported(cli, "december") == (builder.render_json(doc), builder.render_jsonl(doc))
    assert (renamed["name"], renamed["id"], renamed["version"]) == ("december", first["id"], 4)
    assert b'"file_name":"december"' in exported(cli, "december")[1]
    assert cli("show", "dec", code=4).stderr == "Error: no training file with id or name 'dec'\n"
    assert cli.json("archive", "december")["status"] == "archived"
    assert cli("add", "december", "--id", A[1], code=5).stderr == (
        "Error: training file 'december' is archived (`trainfiles unarchive` makes it active again)\n"
    )
    assert cli.json("unarchive", "december")["status"] == "active"
    assert cli.json("unarchive", "december")["version"] == 6  # already active: nothing to change
    assert [v["operation"] for v in cli.json("log", "december")] == [
        "create",
        "describe",
        "describe",
        "rename",
        "archive",
        "unarchive",
    ]
    cli("create", "--name", "other", "--id", A[1])
    assert (
        cli("rename", "other", "december", code=5).stderr == "Error: a training file named 'december' already exists\n"
    )
    assert cli("describe", "other", code=2).stderr.endswith("give --description, --target-model or both\n")


def test_remove_refuses_like_add(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "dec", "--id", A[0], "--id", A[1])
    unknown = "0a1b2c3d-1111-4222-8333-444455556666"
    for args, code, message in [
        (["--id", A[2], "--id", unknown], 4, f"not in training file 'dec': {A[2]}, {unknown}"),
        (["--id", A[0], "--id", A[0]], 5, f"conversation ids given more than once: {A[0]}"),
        (["--id", A[0], "--id", A[1]], 3, "removing every conversation would leave 'dec' empty: archive it instead"),
    ]:
        assert cli("remove", "dec", *args, code=code).stderr == f"Error: {message}\n"
    assert cli("remove", "dec", "--id", A[0], code=7, env={"TRAINFILES_USER": "bob"}).stderr == (
        "Error: training file 'dec' was created by alice; only its creator may change it\n"
    )
    assert (
        cli("restore", "dec", "--version", "3", code=4).stderr
        == "Error: training file 'dec' has no version 3 (versions 1 to 1)\n"
    )
    assert (
        cli("export", "dec", "--version", "2", code=4).stderr
        == "Error: training file 'dec' has no version 2 (versions 1 to 1)\n"
    )
    assert [v["version"] for v in cli.json("log", "dec")] == [1]


def catalog_rows(path: Path) -> dict[str, list]:
    db = sqlite3.connect(path)
    rows = {
        "files": db.execute("select * from files order by id").fetchall(),
        "members": db.execute("select * from members order by file_id, position").fetchall(),
        "versions": db.execute("select * from versions order by sequence").fetchall(),
        "index_state": db.execute("select * from index_state").fetchall(),
    }
    db.close()
    return rows


def test_two_machines_share_one_store(cli, place, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    machine_a = ("--catalog", tmp_path / "a" / "catalog.db", "--store", place.store)
    machine_b = ("--catalog", tmp_path / "b" / "catalog.db", "--store", place.store, "--user", "bob")
    for machine in (machine_a, machine_b):  # registrations stay local: each machine scans
        cli(*machine, "conversations", "scan", place.sources)
    made = cli.json(*machine_a, "create", "--name", "shared", "--id", A[0], "--id", A[1])
    assert cli.json(*machine_b, "list") == [made]
    assert cli.json(*machine_b, "show", "shared")["conversation_ids"] == [A[0], A[1]]
    assert exported(cli, "shared", machine=machine_b) == exported(cli, "shared", machine=machine_a)
    # Only the creator may change a file (a guard against mistakes, not access control).
    assert cli(*machine_b, "add", "shared", "--id", A[2], code=7).stderr.startswith(
        "Error: training file 'shared' was created by alice"
    )
    cli(*machine_b, "create", "--name", "bobs", "--id", A[2])
    cli(*machine_b, "add", "bobs", "--id", A[3], "--id", A[4])
    cli(*machine_b, "remove", "bobs", "--id", A[3])
    assert [r["name"] for r in cli.json(*machine_a, "list")] == ["bobs", "shared"]  # same instant: by name
    log = cli.json(*machine_a, "log", "bobs")
    assert [(v["operation"], v["created_by"]) for v in log] == [("create", "bob"), ("add", "bob"), ("remove", "bob")]
    assert cli.json(*machine_a, "show", "bobs")["conversation_ids"] == [A[2], A[4]]
    assert exported(cli, "bobs", machine=machine_a) == exported(cli, "bobs", machine=machine_b)
    # B's catalog deleted: the next command rebuilds every file, version and member.
    (tmp_path / "b" / "catalog.db").unlink()
    assert cli.json(*machine_b, "list", "--status", "all") == cli.json(*machine_a, "list", "--status", "all")
    assert catalog_rows(tmp_path / "b" / "catalog.db") == catalog_rows(tmp_path / "a" / "catalog.db")


def test_a_copied_catalog_indexes_the_store_it_is_given(cli, tmp_path):
    """Paths in commits are relative to the store: a copied store works where it lands, and
    a catalog pointed at another store indexes that one, never writing to the first."""
    cli("conversations", "scan", FIXTURES / "conversations")
    made = cli.json("create", "--name", "dec", "--id", A[0])
    before = exported(cli, "dec")
    shutil.copytree(tmp_path / "store", tmp_path / "copy")
    moved = cli.json("--store", tmp_path / "copy", "show", "dec")
    assert moved["json_file_path"] == str(tmp_path / "copy" / made["id"] / "training.json")
    cli("--store", tmp_path / "copy", "add", "dec", "--id", A[1])
    assert exported(cli, "dec")[0] == before[0]  # the original store is untouched
    assert cli.json("show", "dec")["conversation_ids"] == [A[0]]
    assert cli.json("--store", tmp_path / "copy", "show", "dec")["conversation_ids"] == [A[0], A[1]]


def legacy_catalog(tmp_path: Path) -> tuple[Path, Path]:
    """The 0.1 catalog and store of fixtures/legacy-0.1, with its paths pointed here."""
    shutil.copytree(FIXTURES / "legacy-0.1", tmp_path / "legacy")
    catalog, store = tmp_path / "legacy" / "catalog.db", tmp_path / "legacy" / "store"
    db = sqlite3.connect(catalog)
    for table, column in (
        ("training_files", "json_file_path"),
        ("training_files", "jsonl_file_path"),
        ("training_file_members", "source_path"),
    ):
        db.execute(
            f"update {table} set {column} = replace(replace({column}, '/tmp/legacy/store', ?), '/work/main/fixtures', ?)",
            (str(store), str(FIXTURES)),
        )
    db.execute(
        "update conversations set enriched_file_path = replace(enriched_file_path, '/work/main/fixtures', ?)",
        (str(FIXTURES),),
    )
    db.commit()
    db.close()
    return catalog, store


def test_a_catalog_made_before_versions_is_migrated_once(cli, tmp_path):
    catalog, store = legacy_catalog(tmp_path)
    old = {p.parent.name + "/" + p.name: p.read_bytes() for p in store.rglob("training.*")}
    setting = ("--catalog", catalog, "--store", store)
    files = cli.json(*setting, "list")
    assert sorted((f["name"], f["conversation_count"], f["version"]) for f in files) == [
        ("legacy-one", 2, 1),
        ("legacy-two", 2, 1),
    ]
    for f in files:
        assert [v["operation"] for v in cli.json(*setting, "log", f["id"])] == ["migrate"]
        json_bytes, jsonl_bytes = exported(cli, f["id"], machine=setting)
        assert (json_bytes, jsonl_bytes) == (old[f"{f['id']}/training.json"], old[f"{f['id']}/training.jsonl"])
    legacy_two = next(f for f in files if f["name"] == "legacy-two")
    assert (legacy_two["target_model"], legacy_two["last_updated_at"]) == ("llama-3.1-8b", "2025-12-02T00:00:00Z")
    db = sqlite3.connect(catalog)
    assert db.execute("select count(*) from training_files").fetchone() == (0,)
    db.close()
    assert cli.json(*setting, "verify", "--sources")["ok"]
    # Once: another machine on the same store sees version 1, and the file grows as usual.
    other = ("--catalog", tmp_path / "other.db", "--store", store)
    assert sorted(f["name"] for f in cli.json(*other, "list")) == ["legacy-one", "legacy-two"]
    cli(*setting, "add", "legacy-one", "--id", A[5])
    assert [v["operation"] for v in cli.json(*other, "log", "legacy-one")] == ["migrate", "add"]


def test_verify_export_and_check_refuse_what_differs_from_its_commit(cli, tmp_path):
    shutil.copytree(FIXTURES / "conversations", tmp_path / "sources")
    cli("conversations", "scan", tmp_path / "sources")
    made = cli.json("create", "--name", "dec", "--id", A[0], "--id", A[1])
    assert cli.json("verify", "dec")["ok"]
    # A source edited after it went in: only --sources looks at sources.
    source = tmp_path / "sources" / generate.USER_ID / A[1] / "enriched.json"
    source.write_bytes(source.read_bytes() + b" ")
    assert cli.json("verify")["ok"]
    result = cli("verify", "--sources", code=3)
    assert result.stderr == (
        f"Error: digest mismatches: {source}: dec source of {A[1]}: "
        f"sha256 {sha(source.read_bytes())[:12]}, commit says {_recorded(tmp_path, A[1])[:12]}\n"
    )
    # An output edited in place (on a local store the download path is a hard link to it).
    jsonl = Path(made["jsonl_file_path"])
    expected = sha(jsonl.read_bytes())
    jsonl.write_bytes(jsonl.read_bytes().replace(b'"turn_number":2', b'"turn_number":9', 1))
    version_jsonl = next((tmp_path / "store" / made["id"] / "versions").glob("*/training.jsonl"))
    report = cli("verify", "--json", code=3)
    mismatches = orjson.loads(report.stdout)["mismatches"]
    assert [m["object"] for m in mismatches] == [str(jsonl), str(version_jsonl)]
    for args in (
        ["export", "dec", "--format", "jsonl", "-o", tmp_path / "out.jsonl"],
        ["export", "dec", "--format", "messages", "-o", tmp_path / "out.jsonl"],
        ["check", "dec"],
    ):
        result = cli(*args, code=5)
        assert result.stderr == (
            f"Error: {version_jsonl} differs from its commit (sha256 {sha(jsonl.read_bytes())[:12]}, expected {expected[:12]}): run `trainfiles verify`\n"
        )
    assert not (tmp_path / "out.jsonl").exists()  # nothing half-written for a trainer


def _recorded(tmp_path: Path, cid: str) -> str:
    db = sqlite3.connect(tmp_path / "catalog.db")
    (digest,) = db.execute("select source_sha256 from members where conversation_id = ?", (cid,)).fetchone()
    db.close()
    return digest


def test_gc_deletes_what_no_commit_references_and_keep_prunes_old_versions(cli, place, tmp_path):
    cli("conversations", "scan", place.sources)
    made = cli.json("create", "--name", "dec", "--id", A[0])
    cli("add", "dec", "--id", A[1])
    cli("add", "dec", "--id", A[2])
    versions = [exported(cli, "dec", "--version", n) for n in (1, 2, 3)]
    kept = place.keys()
    assert cli.json("gc", "--min-age", "0") == {"dry_run": False, "deleted": [], "bytes": 0, "aborted_uploads": []}
    report = cli.json("gc", "--keep", "1", "--min-age", "0", "--dry-run")
    assert len(report["deleted"]) == 4 and report["bytes"] == sum(len(b) for v in versions[:2] for b in v)
    assert place.keys() == kept
    cli("gc", "--keep", "1", "--min-age", "0")
    assert len(place.keys()) == len(kept) - 4
    assert cli.json("verify") == {"checked": 4, "pruned": 4, "mismatches": [], "not_read": [], "ok": True}
    # A pruned version is built again from its sources, byte for byte.
    assert [exported(cli, "dec", "--version", n) for n in (1, 2, 3)] == versions
    assert cli.json("restore", "dec", "--version", "1")["conversation_count"] == 1
    assert exported(cli, "dec") == versions[0]
    assert any(key.startswith(f"{made['id']}/versions/000004-") for key in place.keys())  # noqa: SIM118 (a listing function)  staged anew


def test_a_pruned_version_whose_source_changed_is_not_found(cli, tmp_path):
    shutil.copytree(FIXTURES / "conversations", tmp_path / "sources")
    cli("conversations", "scan", tmp_path / "sources")
    cli("create", "--name", "dec", "--id", A[0], "--id", A[1])
    cli("add", "dec", "--id", A[2])
    cli("gc", "--keep", "1", "--min-age", "0")
    source = tmp_path / "sources" / generate.USER_ID / A[1] / "enriched.json"
    source.write_bytes(source.read_bytes() + b"\n")
    assert cli("export", "dec", "--version", "1", code=4).stderr == (
        "Error: version 1's outputs were deleted by gc and cannot be built again: "
        f"sources changed since: {A[1]} ({source} changed)\n"
    )


def test_gc_leaves_recent_garbage_to_a_command_that_may_still_commit_it(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    made = cli.json("create", "--name", "dec", "--id", A[0])
    staged = tmp_path / "store" / made["id"] / "versions" / "000002-0123456789ab" / "training.json"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"staged by an add still running")
    tmp = tmp_path / "store" / made["id"] / ".tmp-123-training.json"
    tmp.write_bytes(b"half written")
    assert cli.json("gc")["deleted"] == []
    assert cli.json("gc", "--min-age", "0")["deleted"] == sorted([str(staged), str(tmp)])
    assert not staged.exists() and not tmp.exists() and not staged.parent.exists()


def test_a_store_emptied_under_the_same_name_is_indexed_again(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "gone", "--id", A[0])
    shutil.rmtree(tmp_path / "store")
    cli("list", code=4)  # a store that is not there is not an empty one
    (tmp_path / "store").mkdir()
    assert cli.json("list") == []
    made = cli.json("create", "--name", "new", "--id", A[1])
    assert [v["version"] for v in cli.json("log", "new")] == [1]
    assert sorted(p.name for p in (tmp_path / "store" / "_log").iterdir()) == [f"{1:020d}.json"]
    assert cli.json("--catalog", tmp_path / "other.db", "list") == [made]


def test_commit_records_are_what_orjson_writes_for_them(cli, tmp_path):
    # Members are streamed into a record from their spool; the record must read back as the
    # same bytes orjson writes for the whole object. A record holds what changed (commit/2):
    # every member for a create, those added for an add, none otherwise; each version's
    # members, rebuilt from them, make exactly its statistics.
    cli("conversations", "scan", FIXTURES / "conversations")
    made = cli.json("create", "--name", "dec", "--id", A[0], "--id", A[1])
    cli("add", "dec", "--id", A[2], "--id", A[3])
    cli("remove", "dec", "--id", A[0])
    cli("archive", "dec")
    raws = [p.read_bytes() for p in sorted((tmp_path / "store" / "_log").iterdir())][1:]  # after the registration
    records = [orjson.loads(raw) for raw in raws]
    assert [raw == orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for raw, r in zip(raws, records)] == [True] * 4
    assert {r["format"] for r in records} == {"trainfiles.commit/2"}
    held = [[m["conversation_id"] for m in r.get("members", r.get("members_added", []))] for r in records]
    assert held == [A[:2], A[2:4], [], []]
    assert [("members" in r, "members_added" in r) for r in records] == [(True, False), (False, True)] + [
        (False, False)
    ] * 2
    versions = Catalog(str(tmp_path / "catalog.db")).versions(made["id"])
    states = [history.read_version(str(tmp_path / "store"), versions, n) for n in (1, 2, 3, 4)]
    assert [[m["conversation_id"] for m in r["members"]] for r in states] == [A[:2], A[:4], A[1:4], A[1:4]]
    assert [r["statistics"] == builder.statistics(r["members"]) for r in states] == [True] * 4
    assert [m["added_at"] for m in states[1]["members"]] == ["2025-12-01T00:00:00Z"] * 2 + ["2025-12-01T00:00:01Z"] * 2
    assert {m["added_by"] for r in states for m in r["members"]} == {"alice"}


def test_members_stream_as_the_json_list_they_are():
    # Past the 1,000-line batches the spool copies at a time, and empty.
    rows = [{"conversation_id": f"{i:04d}", "quality_score": i / 7, "training_pairs": i % 5} for i in range(2_345)]
    for count in (0, 1, 1_000, 2_345):
        spooled = Members(rows[:count])
        assert b"".join(spooled.json()) == orjson.dumps(rows[:count])
        assert (len(spooled), list(spooled.after(count - 1 if count else 0))) == (
            count,
            rows[count - 1 : count] if count else [],
        )
        assert spooled.statistics() == builder.statistics(rows[:count])
