"""`trainfiles conversations scan|import|list` through the CLI runner."""

import shutil
import sqlite3

import orjson
import pytest

from trainfiles.store.registry import SAVE_BATCH
from trainfiles.usecases.conversations import NO_ID

import generate
from conftest import FIXTURES, REFERENCE, require_reference, snapshot, write_json

BAD = FIXTURES / "bad"


def path_of(seed: int) -> str:
    return str(FIXTURES / "conversations" / generate.USER_ID / generate.conversation_uuid(seed) / "enriched.json")


@pytest.fixture(params=["held", "spilled"])
def spill(request, monkeypatch):
    """Each scan test twice: its findings held in memory, and sent to disk three at a time
    (as a scan of more than SPILL files sends them)."""
    if request.param == "spilled":
        monkeypatch.setattr("trainfiles.usecases.findings.SPILL", 3)


def test_scan_registers_every_fixture_with_derived_values(cli, spill):
    assert cli.json("conversations", "scan", FIXTURES / "conversations") == {
        "moved": [],
        "registered": 13,
        "updated": 0,
        "invalid": [],
    }
    records = {r["conversation_id"]: r for r in cli.json("conversations", "list")}
    assert len(records) == 13
    # seed 2: pair scores None, 3.5, None, 4.2; both replies reviewed
    assert records[generate.conversation_uuid(2)] == {
        "conversation_id": generate.conversation_uuid(2),
        "enrichment_status": "completed",
        "enriched_file_path": path_of(2),
        "batch_job_id": None,
        "persona_key": "overwhelmed_avoider",
        "emotional_arc_key": "shame_to_acceptance",
        "topic_key": "late_college_savings",
        "quality_score": 3.85,
        "empathy_score": None,
        "clarity_score": None,
        "appropriateness_score": None,
        "brand_voice_alignment": None,
        "created_at": "2025-10-08",
        "tier": "production",
        "human_reviewed": True,
        "invalid_reason": None,
        "manifest_fields": [],
    }
    # seed 13 has no uuid in dataset_name: its id is the folder's
    assert records[generate.conversation_uuid(13)]["enrichment_status"] == "completed"


@pytest.mark.parametrize("batch", [SAVE_BATCH, 2])
def test_scan_is_idempotent_and_counts_updates(cli, tmp_path, monkeypatch, batch):
    """With the catalog written SAVE_BATCH rows at a time, and two at a time (as a scan of
    many thousand files is written in several batches)."""
    monkeypatch.setattr("trainfiles.store.registry.SAVE_BATCH", batch)
    folder = tmp_path / "src"
    shutil.copytree(FIXTURES / "conversations", folder)
    assert cli.json("conversations", "scan", folder) == {"moved": [], "registered": 13, "updated": 0, "invalid": []}
    assert cli.json("conversations", "scan", folder) == {"moved": [], "registered": 0, "updated": 0, "invalid": []}
    doc_path = folder / generate.USER_ID / generate.conversation_uuid(3) / "enriched.json"
    doc = orjson.loads(doc_path.read_bytes())
    doc["training_pairs"][0]["turn_number"] = 7
    write_json(doc_path, doc)
    assert cli.json("conversations", "scan", folder) == {
        "moved": [],
        "registered": 0,
        "updated": 1,
        "invalid": [{"path": str(doc_path), "reason": "$.training_pairs[0].turn_number: expected 1, found 7"}],
    }
    failed = cli.json("conversations", "list", "--status", "validation_failed")
    assert [(r["conversation_id"], r["invalid_reason"]) for r in failed] == [
        (generate.conversation_uuid(3), "$.training_pairs[0].turn_number: expected 1, found 7")
    ]


def test_scan_keeps_a_conversation_at_the_first_path_that_holds_it(cli, tmp_path, spill):
    """One conversation in three files is registered from the first by path; the others are
    refused, each naming it."""
    folder = tmp_path / "src"
    shutil.copytree(FIXTURES / "conversations", folder)
    original = folder / generate.USER_ID / generate.conversation_uuid(2) / "enriched.json"
    early, late = folder / "00-copy" / "enriched.json", folder / "zz-copy" / "enriched.json"
    for copy in (early, late):
        copy.parent.mkdir()
        shutil.copy(original, copy)
    also = f"conversation {generate.conversation_uuid(2)} is also at {early}"
    assert cli.json("conversations", "scan", folder) == {
        "moved": [],
        "registered": 13,
        "updated": 0,
        "invalid": [{"path": str(original), "reason": also}, {"path": str(late), "reason": also}],
    }
    assert cli.json("conversations", "show", generate.conversation_uuid(2))["enriched_file_path"] == str(early)


def test_scan_without_temporary_space_says_where_it_is_missing(cli, tmp_path, monkeypatch):
    """A scan whose findings cannot go to SQLite's temporary file (no room, no writable
    folder) fails with one line naming that, not the catalog, and registers nothing."""

    def no_room(*args):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr("trainfiles.usecases.findings.SPILL", 3)
        patched.setattr("trainfiles.usecases.findings.sqlite3.connect", no_room)
        failed = cli("conversations", "scan", FIXTURES / "conversations", code=6)
    assert failed.stderr == (
        "Error: temporary space for a scan of more than 3 files: database or disk is full "
        "(SQLITE_TMPDIR or TMPDIR can name a folder with room)\n"
    )
    assert cli.json("conversations", "list") == []


def test_scan_bad_files_names_path_and_rule(cli, spill):
    result = cli.json("conversations", "scan", BAD)
    line, column = generate.BROKEN_JSON_AT
    assert result == {
        "moved": [],
        "registered": 4,
        "updated": 0,
        "invalid": [
            {
                "path": str(BAD / "broken.json"),
                "reason": f"not valid JSON: unexpected character, expected a JSON value at line {line}, column {column}; {NO_ID}",
            },
            {"path": str(BAD / "missing-profile.json"), "reason": "$.consultant_profile: required field missing"},
            {
                "path": str(BAD / "mistyped.json"),
                "reason": "$.training_pairs[1].turn_number: expected an integer, found a string; "
                "$.training_pairs[2].system_prompt: must not be empty",
            },
            {"path": str(BAD / "no-target.json"), "reason": "$.training_pairs: no pair has a target_response"},
            {"path": str(BAD / "not-object.json"), "reason": f"$: expected a JSON object, found an array; {NO_ID}"},
            {
                "path": str(BAD / "raw.json"),
                "reason": f"$: a raw conversation (`turns`), not an enriched file; {NO_ID}",
            },
            {"path": str(BAD / "turn-gap.json"), "reason": "$.training_pairs[2].turn_number: expected 3, found 4"},
        ],
    }
    statuses = {r["enrichment_status"] for r in cli.json("conversations", "list")}
    assert statuses == {"validation_failed"}


def test_scan_reference_refuses_legacy_and_bad(cli):
    require_reference()
    result = cli.json("conversations", "scan", REFERENCE)
    assert result["registered"] == 7
    reasons = {item["path"].split("reference/")[1]: item["reason"] for item in result["invalid"]}
    assert "at line 420, column 52; no conversation id" in reasons["bad/convo-10-broken-json.json"]
    assert reasons["bad/raw-not-enriched.json"].startswith(
        "$: a raw conversation (`turns`), not an enriched file; no conversation id"
    )
    legacy = [k for k in reasons if k.startswith("legacy-v3/")]
    assert len(legacy) == 9
    assert all("no v4 scaffolding" in reasons[k] for k in legacy)
    schemas = [k for k in reasons if k.startswith("upstream-")]
    assert schemas and all("required field missing" in reasons[k] for k in schemas)


def test_scan_with_batch_records_batch_items(cli):
    cli("conversations", "scan", FIXTURES / "other-profile", "--batch", "b-9")
    assert [r["conversation_id"] for r in cli.json("conversations", "list", "--batch", "b-9")] == [
        generate.conversation_uuid(14)
    ]


def test_scan_takes_every_spelling_of_a_local_folder(cli, tmp_path):
    """A plain path, `file://`, `file:` and `local:` reach the same files and record the
    same paths; `..` after a symlink leads where the system says, not one folder up."""
    real = tmp_path / "real"
    shutil.copytree(FIXTURES / "conversations", real / "convs")
    (real / "sub").mkdir()
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link").symlink_to(real / "sub")
    first = cli.json("conversations", "scan", f"{tmp_path}/top/link/../convs")
    assert first["registered"] == 13 and first["updated"] == 0
    paths = sorted(r["enriched_file_path"] for r in cli.json("conversations", "list"))
    assert paths[0].startswith(f"{tmp_path}/top/link/../convs/")
    for url in (real / "convs", f"file://{real}/convs", f"file:{real}/convs", f"local:{real}/convs"):
        assert cli.json("conversations", "scan", url)["registered"] == 0, url
    assert sorted(r["enriched_file_path"] for r in cli.json("conversations", "list")) == [
        p.replace(f"{tmp_path}/top/link/../", f"{real}/") for p in paths
    ]


def test_scan_missing_folder_is_not_found(cli, tmp_path):
    result = cli("conversations", "scan", tmp_path / "nope", code=4)
    assert result.stderr == f"Error: nothing to scan at {tmp_path / 'nope'}\n"


def test_import_csv_and_jsonl_agree_and_are_idempotent(cli, tmp_path):
    assert cli.json("conversations", "import", FIXTURES / "manifest.csv") == {
        "missing_sources": [],
        "moved": [],
        "registered": 12,
        "updated": 0,
        "invalid": [],
    }
    csv_records = cli.json("conversations", "list")
    assert cli.json("conversations", "import", FIXTURES / "manifest.jsonl") == {
        "missing_sources": [],
        "moved": [],
        "registered": 0,
        "updated": 0,
        "invalid": [],
    }
    assert cli.json("conversations", "list") == csv_records
    by_id = {r["conversation_id"]: r for r in csv_records}
    seed2 = by_id[generate.conversation_uuid(2)]
    assert seed2["enriched_file_path"] == path_of(2)
    assert seed2["batch_job_id"] == generate.BATCH_A
    assert seed2["human_reviewed"] is True  # written "Yes"
    assert seed2["quality_score"] == 3.85
    assert by_id[generate.conversation_uuid(1)]["human_reviewed"] is False  # "FALSE"
    assert by_id[generate.conversation_uuid(11)]["enrichment_status"] == "enriched"
    assert by_id[generate.conversation_uuid(12)]["enriched_file_path"] is None
    batch_b = cli.json("conversations", "list", "--batch", generate.BATCH_B)
    assert sorted(r["conversation_id"] for r in batch_b) == sorted(
        generate.conversation_uuid(s) for s in (9, 10, 11, 12)
    )


def test_manifest_values_win_over_scanned_ones(cli):
    cli("conversations", "import", FIXTURES / "manifest.csv")
    cli("conversations", "scan", FIXTURES / "conversations")
    by_id = {r["conversation_id"]: r for r in cli.json("conversations", "list")}
    seed2 = by_id[generate.conversation_uuid(2)]
    assert seed2["quality_score"] == 3.85 and seed2["tier"] == "production"
    # seed 12's manifest path was empty (unknown): the scan fills it in
    assert by_id[generate.conversation_uuid(12)]["enriched_file_path"] == path_of(12)
    # seed 11 stays `enriched` as the manifest says, though its file is eligible
    assert by_id[generate.conversation_uuid(11)]["enrichment_status"] == "enriched"


def test_import_with_base_joins_relative_paths(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "conversation_id,enrichment_status,enriched_file_path\n"
        "0A1B2C3D-1111-4222-8333-444455556666,completed,x/enriched.json\n"
        "1a1b2c3d-1111-4222-8333-444455556666,completed,s3://bucket/y.json\n"
    )
    cli("conversations", "import", manifest, "--base", "/data/enriched", "--allow-outside-base")
    paths = [r["enriched_file_path"] for r in cli.json("conversations", "list")]
    assert paths == ["/data/enriched/x/enriched.json", "s3://bucket/y.json"]


def test_bad_manifest_names_every_bad_row_and_changes_nothing(cli, tmp_path):
    cli("conversations", "import", FIXTURES / "manifest.csv")
    before = snapshot(tmp_path / "catalog.db")
    manifest = tmp_path / "bad.csv"
    manifest.write_text(
        "conversation_id,enrichment_status,quality_score,human_reviewed\n"
        "0a1b2c3d-1111-4222-8333-444455556666,completed,3.5,true\n"
        "not-a-uuid,completed,,\n"
        "1a1b2c3d-1111-4222-8333-444455556666,done,high,maybe\n"
    )
    result = cli("conversations", "import", manifest, code=3)
    assert result.stderr == (
        f'Error: bad manifest rows: {manifest} line 3: conversation_id "not-a-uuid" is not a UUID; '
        f'{manifest} line 4: enrichment_status "done" is not one of (not_started, validation_failed, validated, '
        'enrichment_in_progress, enriched, normalization_failed, completed), quality_score "high" is not a number, '
        'human_reviewed "maybe" is not a boolean\n'
    )
    assert snapshot(tmp_path / "catalog.db") == before


def test_jsonl_manifest_values_must_have_their_types(cli, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"conversation_id": "0a1b2c3d-1111-4222-8333-444455556666", "persona_key": 7, "tier": ["a"]}\n'
        '{"conversation_id": "1a1b2c3d-1111-4222-8333-444455556666", "created_at": "last tuesday"}\n'
        '{"quality_score": "high", "created_at": "2025-W41-4"}\n'
        '{"conversation_id": "2a1b2c3d-1111-4222-8333-444455556666", "created_at": "2025-10-09 12:07:00.5+02"}\n'
        '{"conversation_id": "3a1b2c3d-1111-4222-8333-444455556666", "created_at": "2025-10-09T10:07:00"}\n'
        '{"conversation_id": "4a1b2c3d-1111-4222-8333-444455556666", "created_at": "2025-10-08"}\n'
    )
    expected = "(e.g. 2025-10-09T10:07:00Z)"
    assert cli("conversations", "import", manifest, code=3).stderr == (
        f'Error: bad manifest rows: {manifest} line 1: persona_key 7 is not text, tier ["a"] is not text; '
        f'{manifest} line 2: created_at "last tuesday" is not an ISO 8601 date or date-time {expected}; '
        f'{manifest} line 3: conversation_id is empty, quality_score "high" is not a number, '
        f'created_at "2025-W41-4" is not an ISO 8601 date or date-time {expected}\n'
    )
    manifest.write_text("\n".join(manifest.read_text().splitlines()[3:]))
    cli("conversations", "import", manifest)
    # One form in UTC; a date stays a date; listed in time order.
    assert [c["created_at"] for c in cli.json("conversations", "list")] == [
        "2025-10-08",
        "2025-10-09T10:07:00Z",
        "2025-10-09T10:07:00.500000Z",
    ]


def test_manifest_without_id_column_and_missing_manifest(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,status\n1,completed\n")
    assert cli("conversations", "import", manifest, code=3).stderr == (
        f"Error: manifest {manifest}: the header row has no conversation_id column\n"
    )
    cli("conversations", "import", tmp_path / "none.csv", code=4)


def test_conversations_list_human_table(cli):
    cli("conversations", "import", FIXTURES / "manifest.csv")
    out = cli("conversations", "list", "--status", "enriched").stdout
    assert generate.conversation_uuid(11) in out
    assert generate.conversation_uuid(1) not in out
    assert "\x1b[" not in out  # no colour when piped


def test_a_conversation_twice_in_a_manifest_is_refused(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "conversation_id,enrichment_status\n"
        "0a1b2c3d-1111-4222-8333-444455556666,completed\n"
        "0A1B2C3D-1111-4222-8333-444455556666,enriched\n"
    )
    assert cli("conversations", "import", manifest, code=3).stderr == (
        f"Error: bad manifest rows: {manifest} line 3: conversation_id 0a1b2c3d-1111-4222-8333-444455556666 is also on line 2\n"
    )


def test_bad_settings_are_clear_errors(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("--catalog", blocker / "c.db", "conversations", "scan", FIXTURES / "conversations", code=4)
    assert (
        result.stderr
        == f"Error: no folder {blocker} for the catalog {blocker / 'c.db'}: make it first, or check --catalog\n"
    )
    # Read where a URL goes through fsspec; plain local paths need no options.
    result = cli("conversations", "scan", "s3://bucket/enriched", code=3, env={"TRAINFILES_STORAGE_OPTIONS": "[]"})
    assert (
        result.stderr
        == 'Error: TRAINFILES_STORAGE_OPTIONS must be a JSON object of objects, e.g. {"s3": {"profile": "ci"}}\n'
    )
    cli("conversations", "scan", FIXTURES / "conversations", env={"TRAINFILES_STORAGE_OPTIONS": "[]"})


def test_a_missing_catalog_is_rebuilt_from_the_store(cli, tmp_path):
    """The store holds the training files; a new catalog (a typo, a fresh machine) is an
    empty index that the first command fills from it."""
    cli("conversations", "scan", FIXTURES / "conversations")
    made = cli.json("create", "--name", "x", "--id", generate.conversation_uuid(1))
    fresh = tmp_path / "elsewhere" / "catalog.db"
    fresh.parent.mkdir()
    assert cli.json("--catalog", fresh, "list") == [made]
    # Registrations are the store's too.
    assert cli.json("--catalog", fresh, "conversations", "list") == cli.json("conversations", "list")
