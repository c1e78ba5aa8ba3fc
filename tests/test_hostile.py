"""Property-based: whatever the input, trainfiles exits with a code of `cli.md` (never 1),
prints no traceback, and a refused command changes nothing in the catalog or the store."""

import copy
import csv
import io
import itertools

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from trainfiles.cli import app
from trainfiles.core.vocabulary import CONVERSATION_FIELDS

import generate
from conftest import FIXTURES, snapshot

pytestmark = pytest.mark.slow

BUDGET = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7}
A = [generate.conversation_uuid(s) for s in range(1, 9)]
BASE_DOC = orjson.loads((FIXTURES / "conversations" / generate.USER_ID / A[0] / "enriched.json").read_bytes())
HOT_SPOTS = [
    ("dataset_metadata", "created_date"),
    ("dataset_metadata", "dataset_name"),
    ("dataset_metadata", "vertical"),
    ("training_pairs", 1, "training_metadata", "quality_score"),
    ("training_pairs", 1, "turn_number"),
    ("training_pairs", 1, "target_response"),
    ("consultant_profile", "name"),
]
names = (f"hostile-{n}" for n in itertools.count())
app_runner = CliRunner()

edge_values = st.sampled_from([1e30, -1e30, 1e308, -0.0, 2**63, "garbage", "9999-12-31T23:59:59-23:59", "\ufeff", ""])
json_values = st.recursive(
    edge_values
    | st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
# Any code point, surrogates (undecodable bytes from the OS) included.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
# Paths relative to the test's folder, that cannot lead out of it (no /, ., ~).
local_names = st.text(st.characters(exclude_categories=(), exclude_characters="/.~\\"), max_size=30)
cells = st.sampled_from(
    [
        A[0],
        A[1].upper(),
        "completed",
        "validation_failed",
        "1e30",
        "-1",
        "nan",
        "yes",
        "../../../../etc/passwd",
        "/etc/passwd",
        "file:///etc/shadow",
        "http://127.0.0.1:1/x.json",
        "9999-12-31T23:59:59-23:59",
        "2025-10-09",
        "",
    ]
) | st.text(max_size=20)


@pytest.fixture
def registered(tmp_path):
    run("conversations", "scan", FIXTURES / "conversations")
    return tmp_path


def run(*args, env: dict | None = None):
    """Run the CLI; check the promises every command keeps, whatever it was given."""
    result = app_runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code in DOCUMENTED, (args, result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    if result.exit_code not in (0, 2):
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    return result


def refused_changes_nothing(tmp_path, *args, env: dict | None = None):
    before = snapshot(tmp_path / "catalog.db", tmp_path / "store")
    result = run(*args, env=env)
    if result.exit_code:
        assert snapshot(tmp_path / "catalog.db", tmp_path / "store") == before, args
    return result


@st.composite
def mutated_documents(draw) -> bytes:
    """The fixture document with a few values replaced or removed, then perhaps damaged as bytes."""
    doc = copy.deepcopy(BASE_DOC)
    for _ in range(draw(st.integers(0, 2))):  # where a value is read, not only copied
        *keys, last = draw(st.sampled_from(HOT_SPOTS))
        node = doc
        for key in keys:
            node = node[key]
        node[last] = draw(json_values)
    for _ in range(draw(st.integers(0, 2))):
        node = doc
        while keys := list(node) if isinstance(node, dict) else list(range(len(node))):
            key = draw(st.sampled_from(keys))
            if isinstance(node[key], (dict, list)) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            if draw(st.booleans()):
                del node[key]
            else:
                node[key] = draw(json_values)
            break
    data = orjson.dumps(doc)
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@BUDGET
@given(data=mutated_documents())
def test_hostile_enriched_documents(registered, data):
    folder = registered / "src" / A[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "enriched.json").write_bytes(data)
    refused_changes_nothing(registered, "conversations", "scan", registered / "src")
    refused_changes_nothing(registered, "create", "--name", next(names), "--id", A[0])


@st.composite
def manifests(draw) -> tuple[str, bytes]:
    fields = draw(st.lists(st.sampled_from(CONVERSATION_FIELDS), min_size=1, unique=True))
    rows = draw(st.lists(st.lists(cells, min_size=len(fields), max_size=len(fields)), max_size=4))
    if draw(st.booleans()):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(fields)
        writer.writerows(rows)
        return "m.csv", out.getvalue().encode()
    lines = [orjson.dumps(dict(zip(fields, row))) for row in rows]
    lines += [orjson.dumps(value) for value in draw(st.lists(json_values, max_size=2))]
    return "m.jsonl", b"\n".join(lines)


@BUDGET
@given(manifest=manifests())
def test_hostile_manifests(registered, manifest):
    name, data = manifest
    (registered / name).write_bytes(data)
    refused_changes_nothing(registered, "conversations", "import", registered / name, "--base", registered / "base")


@BUDGET
@given(data=st.binary(max_size=200) | st.lists(cells, max_size=5).map(lambda ids: "\n".join(ids).encode()))
def test_hostile_ids_files(registered, data):
    (registered / "ids.txt").write_bytes(data)
    refused_changes_nothing(registered, "create", "--name", next(names), "--ids-file", registered / "ids.txt")
    refused_changes_nothing(registered, "add", "nope", "--ids-file", registered / "ids.txt")


@BUDGET
@given(name=any_text, description=any_text, model=any_text, batch=any_text)
def test_hostile_names_and_option_values(registered, name, description, model, batch):
    refused_changes_nothing(
        registered, "create", "--name", name, "--description", description, "--target-model", model, "--id", A[0]
    )
    refused_changes_nothing(registered, "create", "--name", next(names), "--batch", batch)
    refused_changes_nothing(registered, "show", name)


@BUDGET
@given(
    catalog=local_names,
    store=local_names,
    user=any_text,
    epoch=st.sampled_from(["", "0", "abc", "1e3", "-1", "99999999999999999"]),
)
def test_hostile_settings(registered, catalog, store, user, epoch):
    env = {"SOURCE_DATE_EPOCH": epoch}
    refused_changes_nothing(registered, "--catalog", catalog, "--store", store, "--user", user, "list", env=env)
    refused_changes_nothing(
        registered, "--store", store, "--user", user, "create", "--name", next(names), "--id", A[0], env=env
    )
