"""A training file built from the platform's real conversations conforms to its own schema."""

import jsonschema
import orjson
import pytest

from trainfiles.usecases.conversations import NO_ID

from conftest import NO_REFERENCE, REFERENCE

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=NO_REFERENCE)


def open_vocabularies(schema):
    """The upstream schema with its closed vocabularies (`enum`) removed: real data is wider."""
    if isinstance(schema, dict):
        return {k: open_vocabularies(v) for k, v in schema.items() if k != "enum"}
    if isinstance(schema, list):
        return [open_vocabularies(v) for v in schema]
    return schema


def test_reference_conversations_build_a_schema_valid_file(cli):
    assert cli.json("conversations", "scan", REFERENCE / "enriched")["registered"] == 7
    ids = [r["conversation_id"] for r in cli.json("conversations", "list")]
    rec = cli.json("create", "--name", "reference", "--target-model", "llama-3.1-8b", *[f"--id={i}" for i in ids])
    doc = orjson.loads(open(rec["json_file_path"], "rb").read())
    schema = open_vocabularies(orjson.loads((REFERENCE / "upstream-schemas" / "full-v4.schema.json").read_bytes()))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert rec["total_training_pairs"] == 44
    lines = open(rec["jsonl_file_path"], "rb").read().splitlines()
    assert orjson.loads(lines[0])["_meta"]["total_pairs"] == len(lines) - 1 == 20


def test_jsonl_rows_match_the_upstream_example_shape(cli):
    example = (REFERENCE / "upstream-examples" / "full-example-v4.jsonl").read_bytes().splitlines()
    expected_keys = list(orjson.loads(example[1]))
    cli("conversations", "scan", REFERENCE / "enriched")
    ids = [r["conversation_id"] for r in cli.json("conversations", "list")]
    rec = cli.json("create", "--name", "reference", *[f"--id={i}" for i in ids])
    rows = [orjson.loads(line) for line in open(rec["jsonl_file_path"], "rb").read().splitlines()[1:]]
    assert {tuple(row) for row in rows} == {tuple(expected_keys)}
    assert all(row["id"].endswith("_" + row["conversation_id"][:8]) for row in rows)


def test_legacy_and_bad_reference_files_are_refused_with_reasons(cli):
    result = cli.json("conversations", "scan", REFERENCE / "legacy-v3")
    assert result["registered"] == 0
    assert [i["reason"] for i in result["invalid"]] == [
        "$.training_pairs[0].conversation_metadata: no v4 scaffolding "
        "(persona_archetype, emotional_arc_key, training_topic_key; an older v3 file?); "
        "no conversation id (dataset_metadata.dataset_name is not fp_conversation_<uuid>, nor is the folder a UUID)"
    ] * 9
    bad = cli.json("conversations", "scan", REFERENCE / "bad")
    assert [(i["path"].rsplit("/", 1)[1], i["reason"]) for i in bad["invalid"]] == [
        (
            "convo-10-broken-json.json",
            "not valid JSON: unexpected character, expected a JSON value at line 420, column 52; " + NO_ID,
        ),
        ("raw-not-enriched.json", "$: a raw conversation (`turns`), not an enriched file; " + NO_ID),
    ]
