"""Checkpoints: a new machine reads the newest store checkpoint and the records after it, an
old version's members come from the nearest file checkpoint, and a checkpoint that cannot be
believed, or lies, is never the truth (verify names it, repair removes it, gc ignores it)."""

import gzip

import orjson
import pytest

from trainfiles.core import checkpoints
from trainfiles.store import commits

import generate
from conftest import FIXTURES

A = [generate.conversation_uuid(s) for s in range(1, 9)]
# Completed conversations of the fixtures' second batch.
B_IDS = [
    "4462ebfc-5f91-4ef0-9cfb-ac6e7687a66e",
    "7b89296c-6dcb-4c50-8857-7eb1924770d3",
    "87751d4c-a850-4e2c-84dc-da6a797d76de",
]


@pytest.fixture(autouse=True)
def every_third(monkeypatch):
    monkeypatch.setenv("TRAINFILES_CHECKPOINT_INTERVAL", "3")


def grow(cli, sources: str = str(FIXTURES)) -> str:
    """Ten records: an import, a scan, then a file's create, three adds, a remove, a rename,
    a restore of version 2 and an add: versions 1 to 8. Store checkpoints at records 3, 6
    and 9; file checkpoints of versions 3 and 6. Returns the file's id."""
    cli("conversations", "import", f"{sources}/manifest.csv")
    cli("conversations", "scan", f"{sources}/conversations")
    made = cli.json("create", "--name", "dec", "--batch", generate.BATCH_A)
    for cid in B_IDS:
        cli("add", "dec", "--id", cid)
    cli("remove", "dec", "--id", B_IDS[0])
    cli("rename", "dec", "jan")
    cli("restore", "jan", "--version", "2")
    cli("add", "jan", "--id", B_IDS[1])
    return made["id"]


def state_of(cli, *machine) -> dict:
    """Everything a user sees of the store, every version's exports included."""
    log = cli.json(*machine, "log", "jan")
    exports = {
        (v["version"], fmt): cli(*machine, "export", "jan", "--format", fmt, "--version", v["version"]).stdout_bytes
        for v in log
        for fmt in ("jsonl", "messages")
    }
    return {
        "list": cli.json(*machine, "list"),
        "show": cli.json(*machine, "show", "jan"),
        "log": log,
        "conversations": cli.json(*machine, "conversations", "list"),
        "exports": exports,
    }


def test_a_new_machine_starts_from_the_newest_checkpoint(cli, tmp_path, monkeypatch):
    file_id = grow(cli)
    store = tmp_path / "store"
    assert sorted(p.name for p in (store / "_checkpoints").iterdir()) == [f"{n:020d}.json.gz" for n in (3, 6, 9)]
    assert sorted(p.name for p in (store / file_id / "checkpoints").iterdir()) == ["000003.json.gz", "000006.json.gz"]
    checkpoint = orjson.loads(gzip.decompress((store / "_checkpoints" / f"{9:020d}.json.gz").read_bytes()))
    assert (checkpoint["format"], checkpoint["sequence"], checkpoint["reader_version"]) == (
        "trainfiles.checkpoint/1",
        9,
        2,
    )
    assert [f["file"]["version"] for f in checkpoint["files"]] == [7]
    assert len(checkpoint["conversations"]) == 13
    read = []
    real = commits.read

    def spy(store, sequences, progress=None):
        read.extend(sequences)
        return real(store, sequences, progress)

    monkeypatch.setattr(commits, "read", spy)
    b = ("--catalog", tmp_path / "b.db")
    assert cli.json(*b, "list") == cli.json("list")
    assert read == [10]  # the records after the checkpoint, and none before
    assert state_of(cli, *b) == state_of(cli)
    assert cli.json(*b, "verify")["ok"]
    assert cli.json(*b, "add", "jan", "--id", B_IDS[2])["version"] == 9  # and takes new versions
    assert state_of(cli) == state_of(cli, *b)


@pytest.mark.s3
def test_on_s3_a_new_machine_reads_one_checkpoint_and_the_records_after_it(cli, s3, server, tmp_path):
    from conftest import SOURCES

    grow(cli, SOURCES)
    requests = []

    def record(environ):
        requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", "")))
        return False

    server.fault = record
    b = ("--catalog", tmp_path / "b.db")
    listed = cli.json(*b, "list")
    mine = list(requests)
    server.fault = None
    assert listed == cli.json("list")
    file_id = cli.json("show", "jan")["id"]
    log = "store%2F_log%2F"
    assert mine == [
        ("GET", "/trainfiles", "list-type=2&prefix=store%2F_checkpoints%2F&encoding-type=url"),
        ("GET", f"/trainfiles/store/_checkpoints/{9:020d}.json.gz", ""),
        ("GET", "/trainfiles", f"list-type=2&prefix={log}&start-after={log}{8:020d}.json&encoding-type=url"),
        ("GET", f"/trainfiles/store/_log/{10:020d}.json", ""),
        ("GET", "/trainfiles/store/_protocol.json", ""),  # the store's format, before any record is believed
        ("GET", f"/trainfiles/store/{file_id}/current.json", ""),  # the download copies, behind or not
    ]


def test_an_old_version_is_read_from_the_nearest_file_checkpoint(cli, tmp_path, monkeypatch):
    grow(cli)
    cli("gc", "--min-age", "0", "--keep", "1")  # older versions are then made from their members
    read = []
    real = commits.read

    def spy(store, sequences, progress=None):
        read.append(list(sequences))
        return real(store, sequences, progress)

    monkeypatch.setattr(commits, "read", spy)
    cli("export", "jan", "--format", "messages", "--version", "5")
    # Version 5 (a remove, record 7): version 3's members from its checkpoint, then the
    # change of version 4 (record 6); not the records of versions 2 and 3.
    assert read == [[7], [6]]


def lie(path, change) -> None:
    doc = orjson.loads(gzip.decompress(path.read_bytes()))
    change(doc)
    path.write_bytes(gzip.compress(orjson.dumps(doc)))


UNBELIEVABLE = {
    "not gzip": (lambda p: p.write_bytes(b'{"format": "trainfiles.checkpoint/1"}'), "not gzip"),
    "not JSON": (lambda p: p.write_bytes(gzip.compress(b'{"format": "trainfiles.checkpoint/1", ')), "not JSON"),
    "a gzip bomb": (lambda p: p.write_bytes(gzip.compress(b" " * (2 << 20) + b"{}")), "larger than 1 MiB unpacked"),
    "two streams": (lambda p: p.write_bytes(p.read_bytes() * 2), "not one whole gzip stream"),
    "its sequence": (lambda p: lie(p, lambda d: d.update(sequence=8)), "its sequence says 8"),
    "a member short": (
        lambda p: lie(p, lambda d: d["files"][0]["members"].pop()),
        "members are not its 9 conversations",
    ),
    "a version missing": (
        lambda p: lie(p, lambda d: d["files"][0]["versions"].pop(1)),
        "lacks versions, or has them out of order",
    ),
    "an unknown column": (lambda p: lie(p, lambda d: d["conversations"][0].update(colour="red")), "colour"),
    "a later record": (
        lambda p: lie(p, lambda d: d["conversations"][0].update(source_record=10)),
        "set by a record after the checkpoint",
    ),
}


@pytest.mark.parametrize("variant", sorted(UNBELIEVABLE))
def test_a_checkpoint_that_cannot_be_believed_is_read_around(cli, tmp_path, variant, monkeypatch):
    grow(cli)
    monkeypatch.setattr(checkpoints, "MAX_BYTES", 1 << 20)  # what a bomb must pass, made small
    newest = tmp_path / "store" / "_checkpoints" / f"{9:020d}.json.gz"
    spoil, reason = UNBELIEVABLE[variant]
    spoil(newest)
    b = ("--catalog", tmp_path / "b.db")
    said = cli(*b, "list").stderr
    assert said.startswith(f"warning: {newest} cannot be believed (") and reason in said
    assert said.endswith("); reading the whole log instead\n")
    assert state_of(cli, *b) == state_of(cli)
    report = cli.json(*b, "verify", code=3)
    assert [m["object"] for m in report["mismatches"]] == [str(newest)]
    assert report["mismatches"][0]["problem"].startswith("checkpoint cannot be believed: ")


def test_a_checkpoint_of_a_record_the_log_lacks_is_read_around(cli, tmp_path):
    grow(cli)
    folder = tmp_path / "store" / "_checkpoints"
    lie(folder / f"{9:020d}.json.gz", lambda d: d.update(sequence=99))
    (folder / f"{9:020d}.json.gz").rename(folder / f"{99:020d}.json.gz")
    b = ("--catalog", tmp_path / "b.db")
    assert cli(*b, "list").stderr == (
        f"warning: _checkpoints/{99:020d}.json.gz is of a record the log does not hold; reading the whole log instead\n"
    )
    assert state_of(cli, *b) == state_of(cli)


def test_a_believable_checkpoint_that_lies_is_found_by_verify_and_removed_by_repair(cli, tmp_path):
    """A checkpoint that hides a training file: a new machine believes it (as any reader of
    a checkpoint must), but verify holds it against the log, repair removes it, and gc never
    deletes by it."""
    grow(cli)
    cli("create", "--name", "hidden", "--id", A[1])  # record 11
    cli("rename", "hidden", "still-hidden")  # record 12: a checkpoint
    newest = tmp_path / "store" / "_checkpoints" / f"{12:020d}.json.gz"
    lie(newest, lambda d: d.update(files=[f for f in d["files"] if f["file"]["name"] != "still-hidden"]))
    b = ("--catalog", tmp_path / "b.db")
    assert [f["name"] for f in cli.json(*b, "list")] == ["jan"]
    hidden = cli.json("show", "still-hidden")
    cli(*b, "gc", "--min-age", "0", "--keep", "1")
    report = cli.json("verify", code=3)  # gc deleted nothing of the file the checkpoint hides
    assert cli.json(*b, "verify", code=3)["mismatches"] == report["mismatches"]
    assert report["mismatches"] == [
        {
            "object": str(newest),
            "problem": f"checkpoint is not what the log makes: training file {hidden['id']}",
        }
    ]
    repaired = cli(*b, "repair")
    assert repaired.stdout == (
        f"set aside 0 records\nremoved {newest}: checkpoint is not what the log makes: training file {hidden['id']}\n"
    )
    c = ("--catalog", tmp_path / "c.db")
    assert cli.json(*c, "list") == cli.json("list")
    assert cli.json(*c, "verify")["ok"]


def test_a_file_checkpoint_that_lies_is_read_around(cli, tmp_path):
    file_id = grow(cli)
    path = tmp_path / "store" / file_id / "checkpoints" / "000003.json.gz"
    swapped = generate.conversation_uuid(60)
    lie(path, lambda d: d["members"][0].update(conversation_id=swapped))
    cli("gc", "--min-age", "0", "--keep", "1")
    before = cli("export", "jan", "--format", "messages", "--version", "5")
    assert before.stderr == (
        f"warning: {path} cannot be believed (its members are not the 10 conversations of version 3); "
        "reading the log instead\n"
    )
    path.unlink()
    assert cli("export", "jan", "--format", "messages", "--version", "5").stdout_bytes == before.stdout_bytes


def test_gc_keeps_the_two_newest_store_checkpoints(cli, tmp_path):
    file_id = grow(cli)
    cli("gc", "--min-age", "0")
    store = tmp_path / "store"
    assert sorted(p.name for p in (store / "_checkpoints").iterdir()) == [f"{n:020d}.json.gz" for n in (6, 9)]
    assert sorted(p.name for p in (store / file_id / "checkpoints").iterdir()) == ["000003.json.gz", "000006.json.gz"]
    b = ("--catalog", tmp_path / "b.db")
    assert state_of(cli, *b) == state_of(cli)
