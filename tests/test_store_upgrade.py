"""A store written before registrations were shared and before the protocol object (trainfiles
at 92696c5, store format 1; made by tools/make_store_fixture.sh): read as it is, upgraded by
the first change without rewriting a record, every version the same bytes before and after."""

import hashlib
import shutil

import orjson

from trainfiles.core import records

from conftest import FIXTURES

FIXTURE = FIXTURES / "store-92696c5"


def exports(cli, machine) -> dict:
    """Every version of every file, as `export --version N` gives it, by (file, version, kind)."""
    out = {}
    for f in cli.json("--catalog", machine, "list", "--status", "all"):
        for v in cli.json("--catalog", machine, "log", f["id"]):
            for kind in ("json", "jsonl"):
                args = ("--catalog", machine, "export", f["id"], "--version", v["version"], "--format", kind)
                data = cli(*args).stdout_bytes
                assert hashlib.sha256(data).hexdigest() == v[f"{kind}_sha256"]
                out[f["id"], v["version"], kind] = data
    return out


def test_a_store_of_format_1_is_read_as_it_is_then_upgraded_by_its_first_change(cli, tmp_path):
    store = tmp_path / "store"
    shutil.rmtree(store)
    shutil.copytree(FIXTURE, store)
    log = sorted((store / "_log").iterdir())
    written = {p.name: p.read_bytes() for p in log}
    assert {orjson.loads(data)["format"] for data in written.values()} == {records.COMMIT}
    before = exports(cli, tmp_path / "reader.db")
    assert len(before) == 2 * 9  # nine versions of two files
    assert not (store / "_protocol.json").exists()  # reading upgrades nothing
    # The first change: a registration (which writes the protocol object), then a version.
    cli("conversations", "scan", FIXTURES / "conversations")
    december = cli.json("show", "december")
    grown = cli.json(
        "add",
        "december",
        "--id",
        next(
            c["conversation_id"]
            for c in cli.json("conversations", "list", "--status", "completed")
            if c["conversation_id"] not in december["conversation_ids"]
        ),
    )
    assert grown["version"] == december["version"] + 1
    assert orjson.loads((store / "_protocol.json").read_bytes())["reader_version"] == records.READER_VERSION
    assert {p.name: p.read_bytes() for p in log} == written  # history as it was
    for machine in (tmp_path / "reader.db", tmp_path / "fresh.db"):
        after = exports(cli, machine)
        assert {k: v for k, v in after.items() if k in before} == before
        assert len(after) == len(before) + 2
    assert cli.json("verify")["ok"]
