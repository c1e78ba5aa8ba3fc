"""Scans and creates of many local files run on one forked process per core: they must give
exactly what the same commands give on one process, refusals and their order included."""

import orjson
import pytest

from trainfiles.usecases import conversations, examining, workers

import generate
from conftest import FIXTURES, write_json

A = [generate.conversation_uuid(s) for s in range(1, 9)]
B9, B10, B11, B12 = (generate.conversation_uuid(s) for s in (9, 10, 11, 12))
OTHER_PROFILE, OTHER_VERTICAL = generate.conversation_uuid(14), generate.conversation_uuid(15)
FAILED = generate.conversation_uuid(24)  # bad/mistyped.json
GONE = generate.conversation_uuid(31)


@pytest.fixture
def modes(tmp_path, monkeypatch):
    """Run `cli(...)` on its own catalog and store, in process or forked (thresholds so low
    that the fixtures take several chunks); the forked runs are counted."""
    forks = []

    def counted(function, kind):
        def run(*args):
            forks.append(kind)
            return function(*args)

        return run

    in_processes = {"create": examining._in_processes, "scan": conversations._in_processes}

    def run(cli, forked: bool, *args, **kwargs):
        monkeypatch.setattr(workers, "PARALLEL_FROM", 2 if forked else 10**9)
        for module in (conversations, examining):
            monkeypatch.setattr(module, "CHUNK", 3)
        monkeypatch.setattr(examining, "_in_processes", counted(in_processes["create"], "create"))
        monkeypatch.setattr(conversations, "_in_processes", counted(in_processes["scan"], "scan"))
        home = tmp_path / ("forked" if forked else "in-process")
        home.mkdir(exist_ok=True)
        env = {"TRAINFILES_CATALOG": str(home / "catalog.db"), "TRAINFILES_STORE": str(home / "store")}
        return cli(*args, env=env, **kwargs)

    run.forks = forks
    return run


@pytest.mark.slow
def test_forked_scan_and_create_match_one_process(cli, modes, tmp_path):
    gone = write_json(tmp_path / "gone" / GONE / "enriched.json", generate.make_conversation(31))
    seen = {}
    for forked in (False, True):
        modes(cli, forked, "conversations", "import", FIXTURES / "manifest.csv")
        scans = [
            modes(cli, forked, "conversations", "scan", FIXTURES / f, "--json").stdout
            for f in ("conversations", "other-profile", "other-vertical", "bad")
        ]
        scans.append(modes(cli, forked, "conversations", "scan", gone, "--json").stdout)
        seen[forked] = [scans]
    gone.unlink()
    ids = [A[0], B11, GONE, *A[1:], OTHER_PROFILE, B9, OTHER_VERTICAL, FAILED, B10, B12]
    for forked in (False, True):
        picked = [arg for cid in ids for arg in ("--id", cid)]
        made = orjson.loads(modes(cli, forked, "create", "--name", "s", "--skip-invalid", *picked, "--json").stdout)
        for where in ("id", "json_file_path", "jsonl_file_path", "storage_bucket"):  # its own place
            made.pop(where)
        refused = modes(cli, forked, "create", "--name", "t", *picked, code=3).stderr
        exports = [modes(cli, forked, "export", "s", "--format", kind).stdout_bytes for kind in ("json", "jsonl")]
        listed = modes(cli, forked, "conversations", "list", "--json").stdout
        seen[forked] += [made, refused, exports, listed]
    assert seen[True] == seen[False]
    assert modes.forks == ["scan", "scan", "create", "create"]  # folders of 2 files or more forked, no other
    assert [p.name for p in (tmp_path / "forked" / "store").rglob(".tmp-*")] == []  # workers' spools too
    assert seen[True][1]["conversation_count"] == 11
    assert [s["conversation_id"] for s in seen[True][1]["skipped"]] == [
        B11,
        GONE,
        OTHER_PROFILE,
        OTHER_VERTICAL,
        FAILED,
    ]
    assert f"{GONE}: source file not found: {gone}" in seen[True][2]
