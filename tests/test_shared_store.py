"""A shared store trusts nothing it reads: a corpus of hostile and broken store contents, run
against a local store and the live S3 test server, from a machine that knew the store and
from a new one. No exit 1 or hang, nothing outside the store created, read, linked or
deleted, no committed output deleted by any gc, and every machine's `list --json` equal."""

import copy
import http.server
import os
import shutil
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from trainfiles.cli import app
from trainfiles.core import records
from trainfiles.usecases import housekeeping

import generate
from conftest import FIXTURES, SOURCES, STORE, snapshot

A = [generate.conversation_uuid(s) for s in range(1, 9)]
DOCUMENTED = {0, 3, 4, 5, 6}
runner = CliRunner()

# Paths whose opening by this process is recorded (an audit hook cannot be removed: one,
# watching whatever the running test names).
WATCHED: list[str] = []
OPENED: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and WATCHED and isinstance(args[0], str) and args[0].startswith(tuple(WATCHED)):
        OPENED.append(args[0])


sys.addaudithook(_audit)


class Store:
    """The test's store, local or on S3, as keys and bytes."""

    def __init__(self, url: str, fs=None, root: Path | None = None):
        self.url, self.fs, self.root = url, fs, root
        self.prefix = url.removeprefix("s3://")

    def put(self, key: str, data: bytes) -> None:
        if self.fs:
            self.fs.pipe_file(f"{self.prefix}/{key}", data)
        else:
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            (self.root / key).write_bytes(data)

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(f"{self.prefix}/{key}") if self.fs else (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.fs.exists(f"{self.prefix}/{key}") if self.fs else (self.root / key).exists()

    def log(self) -> list[dict]:
        keys = (
            sorted(self.fs.ls(f"{self.prefix}/_log", detail=False))
            if self.fs
            else sorted(str(p) for p in (self.root / "_log").iterdir())
        )
        return [orjson.loads(self.fs.cat_file(k) if self.fs else Path(k).read_bytes()) for k in keys]


@dataclass
class World:
    store: Store
    sources: str
    tmp: Path
    victim: Path
    http: str
    requests: list = field(default_factory=list)
    good: list = field(default_factory=list)  # the records before the damage (a registration first)

    @property
    def commits(self) -> list[dict]:
        return [r for r in self.good if r["format"] in records.COMMITS]

    def record(self, template: int = 1, **changes) -> dict:
        """A copy of good commit record `template` (0-based) as the next record, with `changes`."""
        rec = copy.deepcopy(self.commits[template])
        rec.update(sequence=len(self.good) + 1, version=3, parent=2, operation="add")
        rec.update(changes)
        return rec

    @property
    def next_key(self) -> str:
        return records.record_name(len(self.good) + 1)

    def file_id(self, name: str) -> str:
        return next(r["file_id"] for r in self.commits if r["file"]["name"] == name)


def run(world: World, machine: str, *args) -> "object":
    env = {"TRAINFILES_CATALOG": str(world.tmp / f"{machine}.db")}
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code in DOCUMENTED, (machine, args, result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(params=["local", "s3"])
def world(request, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("training.json", "training.jsonl", "current.json", "secret.json"):
        (victim / name).write_bytes(b'{"victim": true}\n')
    hits: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    if request.param == "local":
        store = Store(str(tmp_path / "store"), root=tmp_path / "store")
        sources = str(FIXTURES / "conversations")
    else:
        store = Store(STORE, fs=request.getfixturevalue("s3"))
        sources = f"{SOURCES}/conversations"
    w = World(store, sources, tmp_path, victim, f"http://127.0.0.1:{server.server_port}", hits)
    run(w, "a", "conversations", "scan", sources)
    run(w, "a", "create", "--name", "dec", "--id", A[0], "--id", A[1])
    run(w, "a", "add", "dec", "--id", A[2])
    run(w, "a", "create", "--name", "jan", "--id", A[3])
    w.good = store.log()
    WATCHED[:] = [str(victim)]
    OPENED.clear()
    alarm = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("a command hung"))
    signal.alarm(120)
    yield w
    signal.alarm(0)
    signal.signal(signal.SIGALRM, alarm)
    WATCHED.clear()
    server.shutdown()


def _bad(data):
    return lambda w: w.store.put(w.next_key, data if isinstance(data, bytes) else orjson.dumps(data(w)))


def _without(key):
    def make(w):
        rec = w.record()
        del rec[key]
        return rec

    return make


def _keyed(key_of):
    def make(w):
        rec = w.record()
        rec["outputs"]["json"]["key"] = key_of(w)
        return rec

    return make


def _duplicate_name(w):
    new_id = str(uuid.uuid4())
    rec = w.record(0, file_id=new_id, version=1, parent=None, operation="create")
    for kind in ("json", "jsonl"):
        rec["outputs"][kind]["key"] = f"{new_id}/versions/000001-bbbbbbbbbbbb/training.{kind}"
    return rec


def _hostile_sources(w):
    rec = w.record(0, operation="restore", restored_from=1)  # a record that holds every member
    rec["members"][0]["source_path"] = f"{w.http}/enriched.json"
    rec["members"][1]["source_path"] = str(w.victim / "secret.json")
    return rec


def _registered_outside(w):
    """Another writer's registrations of two conversations at hostile paths, then a version
    whose members they are: nothing is read there unless this machine registered it."""
    taken = {"00000000-0000-4000-8000-0000000000a1": f"{w.http}/enriched.json"}
    taken["00000000-0000-4000-8000-0000000000a2"] = str(w.victim / "secret.json")
    registration = _registration(
        w,
        [
            {"conversation_id": cid, "enrichment_status": "completed", "enriched_file_path": path}
            for cid, path in taken.items()
        ],
    )
    w.store.put(w.next_key, orjson.dumps(registration))
    rec = w.record(0, sequence=len(w.good) + 2, operation="restore", restored_from=1)
    for member, (cid, path) in zip(rec["members"], taken.items()):
        member.update(conversation_id=cid, source_path=path)
    w.store.put(records.record_name(len(w.good) + 2), orjson.dumps(rec))


def _registration_with_unknown_keys(w):
    return _registration(
        w, [{"conversation_id": A[0], "enrichment_status": "completed", "tier); drop table files; --": 1}]
    )


def _registration(w, conversations: list[dict]) -> dict:
    """Another writer's registration record of `conversations`, next in the log."""
    return {
        "format": records.REGISTRATION,
        "sequence": len(w.good) + 1,
        "created_at": "2025-12-02T00:00:00Z",
        "created_by": "mallory",
        "source": "elsewhere",
        "conversations": conversations,
    }


def _removed_twice(w):
    rec = w.record(operation="remove", added=[], removed=[A[0], A[0]])
    del rec["members_added"]
    return rec


def _commit_1_add_that_rewrites(w):
    """An old tool's add to jan whose members are not jan's, then more: taken as written."""
    rec = w.record(2, format=records.COMMIT, operation="add", added=[], version=2, parent=1)
    rec["members"] = [w.commits[0]["members"][0]]
    return rec


def _remove_of_a_stranger(w):
    rec = w.record(operation="remove", added=[], removed=[A[7]])
    del rec["members_added"]
    return rec


def _fifo(key):
    def make(w):
        os.mkfifo(w.store.root / key)

    return make


def _fifo_record(w):
    (w.store.root / "_log").mkdir(exist_ok=True)
    os.mkfifo(w.store.root / w.next_key)


def _marker_fifo(w):
    marker = w.store.root / w.file_id("dec") / "current.json"
    marker.unlink()
    os.mkfifo(marker)


def _marker_ahead(w):
    w.store.put(f"{w.file_id('dec')}/current.json", orjson.dumps({"version": 999, "sequence": 10**6}))


def _link_record(w):
    """A believable record, outside the store, linked in as the next one."""
    outside = w.victim / "record.json"
    outside.write_bytes(
        orjson.dumps(w.record(operation="describe", file={**w.commits[1]["file"], "description": "from outside"}))
    )
    (w.store.root / "_log").mkdir(exist_ok=True)
    os.symlink(outside, w.store.root / w.next_key)


def _strays(w):
    """Names under _log/ that a reader must not take for records (nor fail on)."""
    for name in ("9.json", f"{0:020d}.json", f"{10**19 * 9:020d}.json", "0000000000000000000\u0669.json", "README"):
        w.store.put(f"_log/{name}", b'{"file_id": "' + w.file_id("dec").encode() + b'"}')


def _linked(part):
    """`part` of the store (a key) moved outside it, a symbolic link left in its place."""

    def make(w):
        key = part(w)
        outside = w.victim / "moved" / key.replace("/", "_")
        outside.parent.mkdir(exist_ok=True)
        shutil.move(w.store.root / key, outside)
        os.symlink(outside, w.store.root / key)

    return make


VARIANTS = {
    "malformed JSON": _bad(b'{"format": "trainfiles.commit/1", "sequence": '),
    "a list": _bad(b"[1, 2, 3]\n"),
    "nesting 200,000 deep": _bad(b"[" * 200_000 + b"]" * 200_000),
    "version as text": _bad(lambda w: w.record(version="3")),
    "members a number": _bad(lambda w: w.record(members=5)),
    "file null": _bad(lambda w: w.record(file=None)),
    "outputs missing": _bad(_without("outputs")),
    "larger than a record may be": _bad(b"x" * (records.MAX_BYTES + 1)),
    "created in year 9999": _bad(lambda w: w.record(created_at="9999-12-31T23:59:59Z")),
    "created yesterday": _bad(lambda w: w.record(created_at="yesterday")),
    "file id climbing out": _bad(lambda w: w.record(file_id="../victim/escape")),
    "file id absolute": _bad(lambda w: w.record(file_id=str(w.victim))),
    "output key absolute": _bad(_keyed(lambda w: str(w.victim / "secret.json"))),
    "output key climbing out": _bad(_keyed(lambda w: f"{w.file_id('dec')}/../../victim/secret.json")),
    "sequence 99 in another name": _bad(lambda w: w.record(sequence=99)),
    "a name another file holds": _bad(_duplicate_name),
    "an unknown format": _bad(lambda w: w.record(format="trainfiles.commit/9")),
    "a version too large to hold": _bad(lambda w: w.record(version=2**63, parent=2**63 - 1)),
    "a link to a record outside": lambda w: _link_record(w),
    "an add of a member already there": _bad(lambda w: w.record()),
    "a registration with a column no reader knows": _bad(_registration_with_unknown_keys),
    "a migrate of a later version": _bad(lambda w: w.record(0, operation="migrate")),
    "a conversation removed twice": _bad(_removed_twice),
    "a commit/1 add that rewrites the members": _bad(_commit_1_add_that_rewrites),
    "a remove of a conversation that is no member": _bad(_remove_of_a_stranger),
    "sources outside": _bad(_hostile_sources),
    "sources outside, registered by another": _registered_outside,
    "objects under _log/ that are no records": _strays,
    "current.json far ahead": _marker_ahead,
    "record a FIFO": _fifo_record,
    "current.json a FIFO": _marker_fifo,
    "file folder a link": _linked(lambda w: w.file_id("jan")),
    "versions folder a link": _linked(lambda w: f"{w.file_id('dec')}/versions"),
    "log folder a link": _linked(lambda w: "_log"),
}
LOCAL_ONLY = {
    "record a FIFO",
    "current.json a FIFO",
    "file folder a link",
    "versions folder a link",
    "log folder a link",
    "a link to a record outside",
}
BAD_RECORDS = {
    name
    for name in VARIANTS
    if "folder a link" not in name and not name.startswith(("current", "objects", "sources outside", "a commit/1"))
}
# Variants after which no change can be written (a writer refuses to write through the link).
READ_ONLY = {"log folder a link"}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_hostile_store_is_refused_cleanly_on_every_machine(world, variant):
    if variant in LOCAL_ONLY and world.store.fs:
        pytest.skip("a local file system's own kind of object")
    run(world, "a", "list")  # machine a knew the store before the damage
    VARIANTS[variant](world)
    OPENED.clear()  # what the damage itself wrote
    outside = _outside(world)
    run(world, "b", "conversations", "scan", world.sources)
    for machine, new in (("a", A[4]), ("b", A[5])):
        first = run(world, machine, "list", "--json")
        if variant in BAD_RECORDS:
            assert "cannot be believed" in first.stderr
        run(world, machine, "show", "dec", "--json")
        run(world, machine, "log", "dec", "--json")
        run(world, machine, "export", "dec", "--format", "jsonl", "--output", world.tmp / f"{machine}.jsonl")
        verified = run(world, machine, "verify", "--json")
        assert (verified.exit_code == 3) == (variant in BAD_RECORDS), verified.stdout
        run(world, machine, "verify", "--sources", "--json")
        run(world, machine, "add", "dec", "--id", new)
        run(world, machine, "create", "--name", f"new-{machine}", "--id", new)
        run(world, machine, "archive", "jan")
        run(world, machine, "unarchive", "jan")
        run(world, machine, "gc", "--min-age", "0")
    assert run(world, "a", "repair").exit_code == 0
    run(world, "b", "gc", "--min-age", "0")
    run(world, "a", "gc", "--min-age", "0", "--keep", "100")
    lists = [orjson.loads(run(world, m, "list", "--json").stdout) for m in ("a", "b", "c")]
    assert lists[0] == lists[1] == lists[2]
    for name in ("dec", "jan"):
        shown = [run(world, m, "show", name, "--json").stdout for m in ("a", "b", "c")]
        assert shown[0] == shown[1] == shown[2]  # the same members too
    assert {f["name"] for f in lists[0]} >= ({"jan"} if variant in READ_ONLY else {"jan", "new-a"})
    # Nothing outside the store created, changed, linked, read or fetched.
    assert _outside(world) == outside
    assert OPENED == [] and world.requests == []
    # No committed output deleted: a new machine finds every version's outputs there.
    report = orjson.loads(run(world, "c", "verify", "--json").stdout)
    assert report["pruned"] == 0 and report["mismatches"] == [], report
    for good in world.commits:
        assert all(world.store.exists(good["outputs"][kind]["key"]) for kind in ("json", "jsonl"))


def _outside(world: World) -> dict:
    """The victim folder's files, their bytes and link counts (read unwatched)."""
    watched = WATCHED[:]
    WATCHED.clear()
    found = snapshot(world.victim)
    WATCHED[:] = watched
    return {
        path: (data, os.lstat(path).st_nlink)
        for path, data in found.items()
        if not os.path.islink(path) and data is not None
    }


def test_a_bad_record_makes_only_its_file_unavailable_until_repaired(world, cli):
    world.store.put(world.next_key, orjson.dumps(world.record(created_at="yesterday")))
    listed = run(world, "b", "list", "--json")
    assert [f["name"] for f in orjson.loads(listed.stdout)] == ["jan"]
    reason = "created_at: String should match pattern '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,6})?Z$'"
    assert listed.stderr == (
        f"warning: 1 records of the store's log cannot be believed, and the training files they touch are unavailable: "
        f"{world.next_key} ({reason}) (`trainfiles repair` sets them aside)\n"
    )
    shown = run(world, "b", "show", "dec")
    assert shown.exit_code == 3
    assert (
        f"Error: training file 'dec' is unavailable: records of the store's log that touch it cannot be believed: {world.next_key}"
        in shown.stderr
    )
    assert run(world, "b", "gc").exit_code == 3
    dry = orjson.loads(run(world, "b", "repair", "--dry-run", "--json").stdout)
    assert dry == {
        "dry_run": True,
        "set_aside": [{"record": world.next_key, "file_id": world.file_id("dec"), "reason": reason}],
        "removed_checkpoints": [],
    }
    assert run(world, "b", "repair").stdout == f"set aside 1 records\n  {world.next_key}: {reason}\n"
    # Every machine reads the repair record: the file is back, at the state its good records give.
    for machine in ("a", "b", "c"):
        result = run(world, machine, "list", "--json")
        assert sorted(f["name"] for f in orjson.loads(result.stdout)) == ["dec", "jan"] and result.stderr == ""
    assert orjson.loads(run(world, "c", "show", "dec", "--json").stdout)["conversation_ids"] == A[:3]
    repair = world.store.log()[-1]
    assert {k: repair[k] for k in ("format", "sequence", "set_aside")} == {
        "format": "trainfiles.repair/1",
        "sequence": len(world.good) + 2,
        "set_aside": [len(world.good) + 1],
    }


def test_a_first_read_that_fails_leaves_the_next_command_reading_the_log(world, server):
    if not world.store.fs:
        pytest.skip("the failure is an S3 answer")
    server.fault = lambda environ: "_log" in environ.get("QUERY_STRING", "") + environ["PATH_INFO"]
    assert run(world, "new", "list", "--json").exit_code == 6
    server.fault = None
    assert sorted(f["name"] for f in orjson.loads(run(world, "new", "list", "--json").stdout)) == ["dec", "jan"]
    assert orjson.loads(run(world, "new", "verify", "--json").stdout)["checked"] == 10


@pytest.mark.crash
def test_a_kill_during_the_first_read_leaves_the_next_command_reading_the_log(world):
    import subprocess

    env = {**os.environ, "TRAINFILES_CATALOG": str(world.tmp / "new.db"), "TRAINFILES_CRASH_AT": "log-read"}
    killed = subprocess.run([sys.executable, "-m", "trainfiles", "list"], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert sorted(f["name"] for f in orjson.loads(run(world, "new", "list", "--json").stdout)) == ["dec", "jan"]


def test_a_record_landing_in_a_gap_is_read_by_every_machine(world, monkeypatch):
    """A writer that read the log before a gap appeared publishes into it after machine a
    read past the gap: a, b and a new machine agree."""
    from trainfiles.store import commits

    gap = len(world.good) + 1
    publish = commits.publish

    def gap_appears_first(store, record):
        if record["sequence"] == gap and not world.store.exists(records.record_name(gap + 1)):
            # Another machine's create lands one past the gap (a teammate's tool that skipped a number).
            other = copy.deepcopy(world.good[-1])
            other.update(sequence=gap + 1, file_id=str(uuid.uuid4()))
            other["file"]["name"] = "feb"
            for kind in ("json", "jsonl"):
                old_key = other["outputs"][kind]["key"]
                other["outputs"][kind]["key"] = old_key.replace(world.file_id("jan"), other["file_id"])
                world.store.put(other["outputs"][kind]["key"], world.store.get(old_key))
            world.store.put(records.record_name(gap + 1), orjson.dumps(other))
            run(world, "a", "list")  # machine a reads past the gap
        return publish(store, record)

    run(world, "writer", "list")
    monkeypatch.setattr(commits, "publish", gap_appears_first)
    run(world, "writer", "conversations", "scan", world.sources)
    assert run(world, "writer", "add", "dec", "--id", A[5]).exit_code == 0
    monkeypatch.setattr(commits, "publish", publish)
    assert world.store.log()[gap - 1]["file_id"] == world.file_id("dec")  # it did land in the gap
    lists = [orjson.loads(run(world, m, "list", "--json").stdout) for m in ("a", "writer", "new")]
    assert lists[0] == lists[1] == lists[2]
    assert sorted(f["name"] for f in lists[0]) == ["dec", "feb", "jan"]
    shows = [orjson.loads(run(world, m, "show", "dec", "--json").stdout)["conversation_ids"] for m in ("a", "new")]
    assert shows == [[*A[:3], A[5]]] * 2


def test_gc_by_a_clock_far_ahead_spares_a_commit_in_progress(world, monkeypatch):
    """gc runs, with its machine's clock 3,700 s ahead, between a writer's staging and its
    publishing: the writer's version is committed whole."""
    import time

    from trainfiles.settings import Settings
    from trainfiles.store import commits

    publish, real_time = commits.publish, time.time

    def gc_first(store, record):
        monkeypatch.setattr(time, "time", lambda: real_time() + 3700)
        try:
            settings = Settings(catalog=str(world.tmp / "gc.db"), store=world.store.url, user="gc")
            report = housekeeping.gc(settings, None, False, 3600)
        finally:
            monkeypatch.setattr(time, "time", real_time)
        assert report["deleted"] == []
        return publish(store, record)

    monkeypatch.setattr(commits, "publish", gc_first)
    assert run(world, "a", "add", "dec", "--id", A[4]).exit_code == 0
    monkeypatch.setattr(commits, "publish", publish)
    assert run(world, "a", "verify").exit_code == 0
    assert run(world, "a", "add", "dec", "--id", A[5]).exit_code == 0


def test_a_command_whose_catalog_fails_after_the_commit_succeeds(world, monkeypatch):
    import sqlite3

    from trainfiles.store.catalog import Catalog

    def locked(self, sequences):
        raise sqlite3.OperationalError("database is locked")

    mark_read = Catalog.mark_read
    monkeypatch.setattr(Catalog, "mark_read", locked)
    result = run(world, "a", "add", "dec", "--id", A[4], "--json")
    monkeypatch.setattr(Catalog, "mark_read", mark_read)
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["conversation_count"] == 4
    assert result.stderr == (
        f"note: version 3 is committed ({records.record_name(len(world.good) + 1)}), "
        "but the local catalog could not take it (database is locked); the next command catches up\n"
    )
    # The catalog catches up from the store.
    assert orjson.loads(run(world, "a", "show", "dec", "--json").stdout)["conversation_ids"] == [*A[:3], A[4]]


def test_remove_takes_a_prefix_of_a_member_on_a_machine_without_registrations(world):
    result = run(world, "fresh", "remove", "dec", "--id", A[1][:8], "--json")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(run(world, "fresh", "show", "dec", "--json").stdout)["conversation_ids"] == [A[0], A[2]]


def test_archive_unarchive_and_describe_leave_no_temporary_links(world):
    if world.store.fs:
        pytest.skip("hard links are a local store's")
    run(world, "a", "archive", "jan")
    run(world, "a", "unarchive", "jan")
    run(world, "a", "describe", "jan", "--description", "kept outputs")
    run(world, "a", "describe", "jan", "--target-model", "new outputs")
    assert sorted(p.name for p in world.store.root.rglob(".tmp-*")) == []


@pytest.mark.parametrize("spelling", ["{tmp}//store", "{tmp}/./store", "{tmp}/victim/../store"])
def test_gc_deletes_no_named_output_whatever_the_spelling_of_the_store(world, spelling):
    if world.store.fs:
        pytest.skip("a local path's spellings")
    store = spelling.format(tmp=world.tmp)
    result = runner.invoke(
        app, ["--store", store, "gc", "--min-age", "0", "--json"], env={"TRAINFILES_CATALOG": str(world.tmp / "a.db")}
    )
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["deleted"] == []
    assert run(world, "a", "verify").exit_code == 0


def test_a_change_no_reader_would_believe_is_refused_before_anything_is_written(world):
    before = world.store.log()
    result = run(world, "a", "describe", "dec", "--description", "d" * 100_001)
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: the store's readers would refuse this change: file.description: String should have at most 100000 characters\n"
    )
    result = run(world, "a", "--user", "u" * 5000, "create", "--name", "long-user", "--id", A[5])
    assert result.exit_code == 3 and "created_by: String should have at most 4096 characters" in result.stderr
    assert world.store.log() == before


def test_check_of_a_stored_output_that_is_no_longer_json_names_it(world):
    if world.store.fs:
        pytest.skip("edits a local file in place")
    key = world.commits[1]["outputs"]["jsonl"]["key"]
    (world.store.root / key).write_bytes(b"garbage\n")
    result = run(world, "a", "check", "dec")
    assert result.exit_code == 5
    assert (
        result.stderr
        == f"Error: {world.store.root / key}: a line is not JSON: the object differs from its commit (`trainfiles verify` checks it)\n"
    )


def test_a_pruned_version_is_built_again_only_from_sources_registered_here(world):
    """A record names its sources: built again after gc, it reads none that this machine did
    not register (no URL fetched, no outside file opened)."""
    world.store.put(world.next_key, orjson.dumps(_hostile_sources(world)))
    run(world, "a", "add", "dec", "--id", A[4])
    assert run(world, "a", "gc", "--keep", "1", "--min-age", "0").exit_code == 0
    OPENED.clear()
    result = run(world, "a", "export", "dec", "--version", "3", "--format", "jsonl", "-o", world.tmp / "v3.jsonl")
    assert result.exit_code == 4
    assert "these sources are not registered here (`trainfiles conversations scan` them first): " in result.stderr
    assert f"{world.http}/enriched.json" in result.stderr
    assert world.requests == [] and OPENED == []
    assert not (world.tmp / "v3.jsonl").exists()
    # Version 2's own sources are registered: it is built again, byte for byte.
    assert (
        run(world, "a", "export", "dec", "--version", "2", "--format", "jsonl", "-o", world.tmp / "v2.jsonl").exit_code
        == 0
    )
