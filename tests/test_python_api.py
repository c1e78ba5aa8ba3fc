"""The library: docs/python.md's examples run as written, and the API gives what the CLI gives."""

import re

import orjson
import pytest

from trainfiles import NotFound, Trainfiles, TrainfilesError

import generate
from conftest import FIXTURES, REFERENCE, ROOT, require_reference

A = [generate.conversation_uuid(s) for s in range(1, 9)]
EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(), re.S)


def test_the_examples_of_docs_python_md_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert len(EXAMPLES) == 4
    for example in EXAMPLES:
        exec(compile(example, "docs/python.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "1 12 0" and printed[1].startswith("dec-batch 1 8 ")
    assert printed[-1] == "4 no training file with id or name 'no-such-file'"


def test_the_api_gives_what_the_cli_gives(cli, tmp_path):
    require_reference()
    with Trainfiles() as tf:
        assert tf.scan(str(REFERENCE / "enriched")).registered == 7
        ids = [c["conversation_id"] for c in tf.conversations()]
        f = tf.create("ref", ids=ids[:5])
        f = f.add(ids=ids[5:])
        assert (f.version, f.conversation_ids) == (2, ids)
        assert tf.get(f.id[:8]).name == "ref" and [g.id for g in tf.files()] == [f.id]
        assert [(v.version, v.operation, v.added) for v in f.log()] == [(1, "create", ids[:5]), (2, "add", ids[5:])]
        cli("export", "ref", "--format", "jsonl", "-o", tmp_path / "cli.jsonl")
        assert f.export("jsonl") == (tmp_path / "cli.jsonl").read_bytes()
        cli("export", "ref", "--format", "messages", "--rows", "pair", "-o", tmp_path / "rows.jsonl")
        assert list(f.rows("messages", "pair")) == [
            orjson.loads(line) for line in (tmp_path / "rows.jsonl").read_bytes().splitlines()
        ]
        assert (
            f.export("json", version=1)
            == cli("export", "ref", "--format", "json", "--version", "1", "-o", "-").stdout_bytes
        )
        f = f.remove(ids=[ids[0]])
        assert f.conversation_count == 6 and tf.verify()["ok"]


def test_failures_are_typed(cli):
    with Trainfiles() as tf:
        with pytest.raises(NotFound) as missing:
            tf.get("nothing")
        assert missing.value.exit_code == 4
        tf.scan(str(FIXTURES / "conversations"))
        tf.create("dec", ids=[A[0]])
        with pytest.raises(TrainfilesError) as taken:
            tf.create("dec", ids=[A[1]])
        assert (taken.value.exit_code, str(taken.value)) == (5, "a training file named 'dec' already exists")
        with pytest.raises(TrainfilesError, match="give ids or a batch"):
            tf.create("x")


def test_the_library_refuses_what_the_cli_refuses(cli):
    from trainfiles import UsageError

    with Trainfiles() as tf:
        tf.scan(str(FIXTURES / "conversations"))
        f = tf.create("dec", ids=[A[0]])
        for call in (
            lambda: tf.gc(keep=-1),
            lambda: tf.gc(keep=0),
            lambda: f.export("json", version=0),
            lambda: f.remove(A[0]),
            lambda: tf.files(sort="bogus"),
            lambda: tf.files(limit=0),
        ):
            with pytest.raises(UsageError):
                call()
        assert tf.verify()["ok"] and f.add(ids=[A[0]], skip_present=True).version == 1
