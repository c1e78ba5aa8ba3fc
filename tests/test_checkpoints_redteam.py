"""Red-team of store checkpoints: hostile, corrupt or racing checkpoints never make a new
machine differ from one that read the whole log, never crash it, never lead it outside the
store."""

import gzip
import hashlib

import orjson
import pytest
from test_checkpoints import B_IDS, grow, lie, state_of

from trainfiles.cli import app

import generate
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


def everything(cli, *machine) -> dict:
    """All a user sees of the store from one machine: every file (archived too), its
    versions and every version's stored JSONL, the conversations registered."""
    files = cli.json(*machine, "list", "--status", "all")
    seen = {"list": files, "conversations": cli.json(*machine, "conversations", "list")}
    for f in files:
        log = cli.json(*machine, "log", f["id"])
        seen[f["id"]] = {
            "show": cli.json(*machine, "show", f["id"]),
            "log": log,
            "exports": [
                hashlib.sha256(
                    cli(*machine, "export", f["id"], "--format", "jsonl", "--version", v["version"]).stdout_bytes
                ).hexdigest()
                for v in log
            ],
        }
    return seen


def forge_duplicate(store) -> int:
    """A record at the next sequence giving a version an earlier record already gave (the
    newest commit's, again): one that cannot be believed. Returns its sequence."""
    log = store / "_log"
    names = sorted(log.iterdir())
    last = max(p for p in names if orjson.loads(p.read_bytes())["format"].startswith("trainfiles.commit"))
    record = orjson.loads(last.read_bytes())
    sequence = int(names[-1].name.split(".")[0]) + 1
    record["sequence"] = sequence
    (log / f"{sequence:020d}.json").write_bytes(orjson.dumps(record))
    return sequence


def test_every_new_machine_sees_what_one_that_read_the_whole_log_sees(cli, tmp_path):
    """After each step, a machine that starts then (from the newest checkpoint) and one that
    reads the log alone (checkpoints deleted from a copy of the store) agree, and so does
    the machine that did every step."""
    import shutil

    store = tmp_path / "store"
    steps = [
        ("conversations", "import", f"{FIXTURES}/manifest.csv"),
        ("conversations", "scan", f"{FIXTURES}/conversations"),
        ("create", "--name", "dec", "--id", B_IDS[0], "--id", B_IDS[1]),
        ("remove", "dec", "--id", B_IDS[0]),
        ("archive", "dec"),
        "forge",
        "repair",
        ("unarchive", "dec"),
        ("add", "dec", "--id", B_IDS[2]),
        ("restore", "dec", "--version", 1),
        ("rename", "dec", "jan"),
        ("create", "--name", "dec", "--id", B_IDS[0]),
        ("describe", "dec", "--description", "again"),
        "forge",
        ("add", "jan", "--id", B_IDS[2]),
    ]
    for n, step in enumerate(steps):
        if step == "forge":
            forge_duplicate(store)
        elif step == "repair":
            cli("repair")
        else:
            cli(*step)
        mine = everything(cli)
        fresh = everything(cli, "--catalog", tmp_path / f"fresh-{n}.db")
        assert fresh == mine, (n, step)
        copy = tmp_path / f"copy-{n}"
        shutil.copytree(store, copy, symlinks=True)
        shutil.rmtree(copy / "_checkpoints", ignore_errors=True)
        alone = everything(cli, "--catalog", tmp_path / f"alone-{n}.db", "--store", copy)
        alone = orjson.loads(orjson.dumps(alone).replace(str(copy).encode(), str(store).encode()))
        assert alone == mine, (n, step)


def test_a_commit_1_after_a_file_checkpoint_gives_its_members(cli, tmp_path):
    """A commit/1 record (trainfiles 0.2, or a script) holds every member, whatever its
    parent had: a version after it is made from those, not from an older file checkpoint's
    changed by the record's `added` alone."""
    cli("conversations", "import", f"{FIXTURES}/manifest.csv")
    cli("conversations", "scan", f"{FIXTURES}/conversations")
    cli("create", "--name", "dec", "--batch", generate.BATCH_A)  # version 1
    for cid in B_IDS:
        cli("add", "dec", "--id", cid)  # versions 2, 3 (a file checkpoint), 4
    cli("remove", "dec", "--id", B_IDS[0])  # version 5
    cli("rename", "dec", "jan")  # version 6
    store = tmp_path / "store"
    log = {n: {"sequence": n + 2} for n in range(1, 7)}  # after the import and the scan
    file_id = cli.json("show", "jan")["id"]
    assert (store / file_id / "checkpoints" / "000003.json.gz").exists()
    # Version 4 as a commit/1 would write it: every member.
    records = {n: orjson.loads((store / "_log" / f"{log[n]['sequence']:020d}.json").read_bytes()) for n in range(1, 5)}
    members = records[1]["members"] + [m for n in (2, 3, 4) for m in records[n]["members_added"]]
    v4 = {k: v for k, v in records[4].items() if k != "members_added"}
    (store / "_log" / f"{log[4]['sequence']:020d}.json").write_bytes(
        orjson.dumps({**v4, "format": "trainfiles.commit/1", "members": members})
    )
    expected = cli("export", "jan", "--format", "jsonl", "--version", 5).stdout_bytes
    b = ("--catalog", tmp_path / "b.db")
    cli(*b, "conversations", "scan", f"{FIXTURES}/conversations")  # its sources, registered here
    cli(*b, "gc", "--min-age", "0", "--keep", "1")  # version 5 is then made from its members
    assert cli(*b, "export", "jan", "--format", "jsonl", "--version", 5).stdout_bytes == expected


def test_a_first_version_that_is_an_add_is_made_from_no_member(cli, tmp_path):
    """A commit/2 add of version 1 (a script's) is believed: its members are those it adds.
    Made again after gc, it is not a traceback."""
    import shutil

    cli("conversations", "scan", f"{FIXTURES}/conversations")
    made = cli.json("create", "--name", "dec", "--id", B_IDS[0], "--id", B_IDS[1])  # record 2
    store = tmp_path / "store"
    record = orjson.loads((store / "_log" / f"{2:020d}.json").read_bytes())
    other = generate.conversation_uuid(77).replace(generate.conversation_uuid(77)[:8], "0f0f0f0f")
    for kind in ("json", "jsonl"):
        old = record["outputs"][kind]["key"]
        new = old.replace(made["id"], other)
        (store / new).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(store / old, store / new)
        record["outputs"][kind]["key"] = new
    members = record.pop("members")
    forged = {**record, "sequence": 3, "file_id": other, "operation": "add", "members_added": members}
    forged["file"] = {**record["file"], "name": "forged"}
    (store / "_log" / f"{3:020d}.json").write_bytes(orjson.dumps(forged))
    cli("rename", "forged", "forged-2")
    cli("gc", "--min-age", "0", "--keep", "1")
    assert not (store / forged["outputs"]["jsonl"]["key"]).exists()
    made = cli.runner.invoke(app, ["export", "forged-2", "--format", "jsonl", "--version", "1"])
    # Its outputs were dec's, named so: made again under its own name, they differ (exit 5).
    assert made.exit_code == 5 and "made again, differs from its commit" in made.stderr


def test_gc_keeps_the_two_newest_checkpoints_whatever_else_the_folder_holds(cli, tmp_path):
    grow(cli)
    folder = tmp_path / "store" / "_checkpoints"
    for junk in ("notes.json.gz", "zz.json.gz"):
        (folder / junk).write_bytes(b"junk")
    cli("gc", "--min-age", "0")
    assert {f"{n:020d}.json.gz" for n in (6, 9)} <= {p.name for p in folder.iterdir()}
    assert not (folder / f"{3:020d}.json.gz").exists()


def test_repair_removes_nothing_through_a_link(cli, tmp_path):
    """A `_checkpoints` folder that is a symbolic link (made by anyone with write access):
    repair deletes nothing where it leads."""
    import shutil

    grow(cli)
    store = tmp_path / "store"
    outside = tmp_path / "outside"
    shutil.move(store / "_checkpoints", outside)
    (store / "_checkpoints").symlink_to(outside)
    lie(outside / f"{9:020d}.json.gz", lambda d: d["files"][0]["file"].update(description="a lie"))
    said = cli("repair", code=6).stderr
    assert said.endswith("is a symbolic link: trainfiles writes nothing through a link inside a store\n")
    assert (outside / f"{9:020d}.json.gz").exists()


def test_a_store_of_format_1_grown_with_checkpoints_reads_the_same_from_them(cli, tmp_path, monkeypatch):
    """trainfiles 0.2's store (commit/1 records), then changes every second of which makes
    checkpoints: a new machine from them, and one from the log alone, see the same."""
    import shutil

    monkeypatch.setenv("TRAINFILES_CHECKPOINT_INTERVAL", "2")
    store = tmp_path / "store"
    shutil.rmtree(store)
    shutil.copytree(FIXTURES / "store-92696c5", store)
    cli("conversations", "scan", FIXTURES / "conversations")  # record 10
    members = cli.json("show", "december")["conversation_ids"]
    others = [
        c["conversation_id"]
        for c in cli.json("conversations", "list", "--status", "completed")
        if c["conversation_id"] not in members
    ]
    cli("add", "december", "--id", others[0])  # version 7
    cli("remove", "december", "--id", members[0])  # version 8: a file checkpoint
    cli("rename", "december", "dec")
    cli("add", "dec", "--id", others[1])  # version 10: a file checkpoint
    cli("describe", "dec", "--description", "x")
    assert (store / "_checkpoints").exists()
    assert cli.json("verify")["ok"]
    mine = everything(cli)
    assert everything(cli, "--catalog", tmp_path / "fresh.db") == mine
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    shutil.rmtree(copy / "_checkpoints")
    alone = everything(cli, "--catalog", tmp_path / "alone.db", "--store", copy)
    assert orjson.loads(orjson.dumps(alone).replace(str(copy).encode(), str(store).encode())) == mine


def test_registrations_after_a_checkpoint_keep_what_a_manifest_set(cli, tmp_path, monkeypatch):
    """A manifest's values, in a checkpoint, win over a later scan's derived ones on a new
    machine as on one that read the log; and those a later manifest gives win again."""
    import shutil

    monkeypatch.setenv("TRAINFILES_CHECKPOINT_INTERVAL", "2")
    sources = tmp_path / "sources"
    shutil.copytree(FIXTURES / "conversations", sources / "conversations")
    shutil.copy(FIXTURES / "manifest.csv", sources / "manifest.csv")
    cli("conversations", "scan", sources / "conversations")  # record 1
    cli("conversations", "import", sources / "manifest.csv")  # record 2: a checkpoint
    assert (tmp_path / "store" / "_checkpoints" / f"{2:020d}.json.gz").exists()
    # Every source changes: the scan (record 3) derives new values, the manifest's stay.
    for path in (sources / "conversations").rglob("enriched.json"):
        doc = orjson.loads(path.read_bytes())
        doc["dataset_metadata"]["created_date"] = "2025-01-02"
        for pair in doc["training_pairs"]:
            if isinstance(pair.get("training_metadata"), dict):
                pair["training_metadata"]["quality_score"] = 3
                pair["training_metadata"]["human_reviewed"] = False
        path.write_bytes(orjson.dumps(doc))
    cli("conversations", "scan", sources / "conversations")  # record 3
    lines = (sources / "manifest.csv").read_text().splitlines()
    header = lines[0].split(",")
    at = header.index("tier")
    rows = [line.split(",") for line in lines[1:3]]
    for row in rows:
        row[at] = "experimental"
    (sources / "less.csv").write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    cli("conversations", "import", sources / "less.csv", "--base", sources)  # record 4: a checkpoint
    cli("conversations", "scan", sources / "conversations")  # nothing changed: no record
    mine = cli.json("conversations", "list")
    for n, (store_args) in enumerate([(), ("--store", tmp_path / "copy")]):
        if store_args:
            shutil.copytree(tmp_path / "store", tmp_path / "copy")
            shutil.rmtree(tmp_path / "copy" / "_checkpoints")
        assert cli.json("--catalog", tmp_path / f"m{n}.db", *store_args, "conversations", "list") == mine
    # A new machine from the checkpoint at record 2, then records 3 and 4.
    (tmp_path / "store" / "_checkpoints" / f"{4:020d}.json.gz").unlink()
    assert cli.json("--catalog", tmp_path / "m2.db", "conversations", "list") == mine


def test_a_file_checkpoint_holds_the_version_it_is_named_for_while_others_change_it(cli, tmp_path, monkeypatch):
    """Another process on this machine indexes newer versions of the file between the
    checkpoint's look at the file's row and its read of the members: the checkpoint is of
    the version it names, or not written."""
    from trainfiles.cli import app
    from trainfiles.store import catalog
    from trainfiles.store import checkpoints as store_checkpoints
    from trainfiles.store.catalog import Catalog

    cli("conversations", "scan", f"{FIXTURES}/conversations")
    cli("create", "--name", "dec", "--id", B_IDS[0])  # version 1
    cli("add", "dec", "--id", B_IDS[1])  # version 2
    real_state, real_members = store_checkpoints._file_state, Catalog.members
    racing = []

    def file_state(catalog, record, user):
        racing.append(record["version"])
        try:
            return real_state(catalog, record, user)
        finally:
            racing.clear()

    def members(self, file_id):
        if racing == [3]:
            racing.append("done")
            b = ("--catalog", tmp_path / "b.db")
            cli(*b, "remove", "dec", "--id", B_IDS[0])  # version 4
            cli(*b, "add", "dec", "--id", B_IDS[0])  # version 5: the same conversations, added anew
            with monkeypatch.context() as m:  # another process: it waits for this read, then gives up
                m.setattr(catalog, "BUSY_TIMEOUT_MS", 100)
                cli.runner.invoke(app, ["list"])  # this machine's catalog takes them, if it can
            import gc

            gc.collect()  # its catalog closed, as the process's would be
        return real_members(self, file_id)

    monkeypatch.setattr(store_checkpoints, "_file_state", file_state)
    monkeypatch.setattr(Catalog, "members", members)
    file_id = cli.json("add", "dec", "--id", B_IDS[2])["id"]  # version 3: a file checkpoint
    path = tmp_path / "store" / file_id / "checkpoints" / "000003.json.gz"
    assert racing == [] and cli.json("show", "dec")["version"] == 5  # the race ran
    written = orjson.loads(gzip.decompress(path.read_bytes()))["members"]  # not refused: version 3's
    log = tmp_path / "store" / "_log"
    made = [orjson.loads((log / f"{s:020d}.json").read_bytes()) for s in (2, 3, 4)]
    assert written == made[0]["members"] + made[1]["members_added"] + made[2]["members_added"]


@pytest.mark.parametrize("shape", ["folder", "fifo", "file instead of the folder", "link"])
def test_a_checkpoint_that_is_no_regular_file_is_read_around(cli, tmp_path, shape):
    import os

    grow(cli)
    folder = tmp_path / "store" / "_checkpoints"
    newest = folder / f"{99:020d}.json.gz"
    if shape == "folder":
        newest.mkdir()
    elif shape == "fifo":
        os.mkfifo(newest)
    elif shape == "link":
        newest.symlink_to(folder / f"{9:020d}.json.gz")
    else:
        import shutil

        shutil.rmtree(folder)
        folder.write_bytes(b"not a folder")
    b = ("--catalog", tmp_path / "b.db")
    cli(*b, "list")
    assert state_of(cli, *b) == state_of(cli)
    # verify names what is not a checkpoint; a file where the folder goes holds none
    cli(*b, "verify", "--json", code=0 if shape == "file instead of the folder" else 3)
    cli(*b, "gc", "--min-age", "0")
    cli(*b, "add", "jan", "--id", B_IDS[2])
    assert state_of(cli, *b) == state_of(cli)


@pytest.mark.parametrize("key", ["reader_version", "writer_version"])
def test_a_checkpoint_that_claims_a_newer_format_than_the_log_is_found(cli, tmp_path, key):
    """A checkpoint saying the records before it needed a format this trainfiles does not
    read (or write): the log says otherwise, so verify names it and repair removes it."""
    grow(cli)
    newest = newest_of(tmp_path)
    lie(newest, lambda d: d.update({key: 3}))
    b = ("--catalog", tmp_path / "b.db")
    if key == "reader_version":  # a new machine reads the log, which says otherwise
        assert "reading the whole log instead" in cli(*b, "list").stderr
        assert state_of(cli, *b) == state_of(cli)
    report = cli.json("verify", code=3)
    assert [m["object"] for m in report["mismatches"]] == [str(newest)]
    assert report["mismatches"][0]["problem"] == "checkpoint is not what the log makes: the store's format versions"
    cli("repair")
    assert not newest.exists()
    assert state_of(cli, *b) == state_of(cli)
    cli(*b, "add", "jan", "--id", B_IDS[2])


@pytest.mark.s3
def test_on_s3_a_new_machine_from_checkpoints_sees_what_the_log_alone_makes(cli, s3, tmp_path):
    from conftest import SOURCES, STORE

    grow(cli, SOURCES)  # checkpoints at records 3, 6, 9
    bucket = STORE.removeprefix("s3://")
    last = orjson.loads(s3.cat(f"{bucket}/_log/{10:020d}.json"))
    s3.pipe(f"{bucket}/_log/{11:020d}.json", orjson.dumps({**last, "sequence": 11}))  # cannot be believed
    cli("repair")  # record 12 (a repair writes no checkpoint)
    for n in (13, 14, 15, 16):  # a checkpoint at record 15
        cli("describe", "jan", "--description", f"after {n}")
    assert s3.exists(f"{bucket}/_checkpoints/{15:020d}.json.gz")
    copy = "trainfiles/copy"
    for key in s3.find(bucket):
        if "/_checkpoints/" not in key:
            s3.pipe(key.replace(bucket, copy, 1), s3.cat(key))
    mine = state_of(cli)
    assert state_of(cli, "--catalog", tmp_path / "b.db") == mine
    alone = state_of(cli, "--catalog", tmp_path / "c.db", "--store", "s3://" + copy)
    assert orjson.loads(
        orjson.dumps({k: v for k, v in alone.items() if k != "exports"}).replace(copy.encode(), bucket.encode())
    ) == {k: v for k, v in mine.items() if k != "exports"}
    assert alone["exports"] == mine["exports"]
    assert cli.json("--catalog", tmp_path / "b.db", "verify")["ok"]


def test_a_file_checkpoint_that_lies_about_a_members_values_makes_no_other_version(cli, tmp_path):
    """A file checkpoint with the right conversations but another's values (its source's
    path and digest, its score): a version made again from it is not the bytes its commit
    recorded, so it is not given as that version."""
    file_id = grow(cli)
    expected = cli("export", "jan", "--format", "jsonl", "--version", 5).stdout_bytes
    path = tmp_path / "store" / file_id / "checkpoints" / "000003.json.gz"

    def swap(d):
        first, second = d["members"][0], d["members"][1]
        for k in ("source_path", "source_sha256", "quality_score", "persona_key", "topic_key", "created_at"):
            first[k] = second[k]

    lie(path, swap)
    cli("gc", "--min-age", "0", "--keep", "1")
    result = cli.runner.invoke(app, ["export", "jan", "--format", "jsonl", "--version", "5"])
    assert result.stdout_bytes != expected  # streamed as it is made: refused once it is whole
    assert result.exit_code == 5 and "training.jsonl, made again, differs from its commit" in result.stderr


def test_a_catalog_that_kept_its_own_registrations_writes_no_checkpoint_of_them(cli, tmp_path, monkeypatch):
    """A catalog that registered conversations before this store shared them (here: for
    another store) keeps its own values where a record gives fewer columns: it writes no
    checkpoint (one of its state would not be what the log makes); another machine does."""
    monkeypatch.setenv("TRAINFILES_CHECKPOINT_INTERVAL", "2")
    other = tmp_path / "other"
    other.mkdir()
    cli("--store", other, "conversations", "scan", f"{FIXTURES}/conversations")  # every column, for another store
    b = ("--catalog", tmp_path / "b.db")
    (tmp_path / "few.csv").write_text(f"conversation_id,batch_job_id\n{B_IDS[0]},{generate.BATCH_A}\n")
    cli(*b, "conversations", "import", tmp_path / "few.csv")  # record 1: two columns
    cli("create", "--name", "dec", "--id", B_IDS[1])  # record 2, by this catalog: no checkpoint
    store = tmp_path / "store"
    assert not (store / "_checkpoints").exists()
    cli(*b, "describe", "dec", "--description", "December")  # record 3
    cli(*b, "archive", "dec")  # record 4, by B, whose registrations are the log's: a checkpoint
    assert sorted(p.name for p in (store / "_checkpoints").iterdir()) == [f"{4:020d}.json.gz"]
    import shutil

    shutil.copytree(store, tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "_checkpoints")
    fresh = cli.json("--catalog", tmp_path / "c.db", "conversations", "list")
    alone = cli.json("--catalog", tmp_path / "d.db", "--store", tmp_path / "copy", "conversations", "list")
    assert fresh == alone
    assert cli.json("verify")["ok"]
