"""create, add, list, show, export and archive through the CLI runner, with every refusal."""

import re

import orjson
import pytest

from trainfiles import storage
from trainfiles.core import builder

import generate
from conftest import FIXTURES, snapshot, write_json

EPOCH_LATER = "1764633600"  # 2025-12-02T00:00:00Z
A = [generate.conversation_uuid(s) for s in range(1, 9)]  # batch A, all completed
# What differs between the fixtures' two profiles, as a refusal shows it.
PROFILE_DIFFERS = (
    "consultant_profile differs from the file's: business: "
    'the file\'s "Northlight Money Coachin"... | this one\'s "Harborline Wealth Partne"...'
)
B9, B10, B11, B12 = (generate.conversation_uuid(s) for s in (9, 10, 11, 12))
CUSTOM = generate.conversation_uuid(13)
OTHER_PROFILE = generate.conversation_uuid(14)
OTHER_VERTICAL = generate.conversation_uuid(15)


@pytest.fixture
def registered(cli):
    """The project's fixtures registered as the platform would: manifest, then scans."""
    cli("conversations", "import", FIXTURES / "manifest.csv")
    for folder in ("conversations", "other-profile", "other-vertical", "bad"):
        cli("conversations", "scan", FIXTURES / folder)
    return cli


def source(seed: int) -> dict:
    return orjson.loads(
        (
            FIXTURES / "conversations" / generate.USER_ID / generate.conversation_uuid(seed) / "enriched.json"
        ).read_bytes()
    )


def stored(rec: dict) -> tuple[dict, list[bytes]]:
    doc = orjson.loads(open(rec["json_file_path"], "rb").read())
    lines = open(rec["jsonl_file_path"], "rb").read().split(b"\n")
    return doc, lines


def state(tmp_path):
    return snapshot(tmp_path / "catalog.db", tmp_path / "store")


def test_create_from_ids_file_writes_both_outputs_and_the_record(registered, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# picked by hand\n\n  {A[2].upper()}  \n{A[0]}\n{CUSTOM}\n")
    rec = registered.json(
        "create", "--name", "dec", "--description", "first", "--target-model", "llama-3.1-8b", "--ids-file", ids
    )
    file_id = rec["id"]
    folder = tmp_path / "store" / file_id
    assert rec == {
        "id": file_id,
        "name": "dec",
        "description": "first",
        "json_file_path": str(folder / "training.json"),
        "jsonl_file_path": str(folder / "training.jsonl"),
        "storage_bucket": str(tmp_path / "store"),
        "conversation_count": 3,
        "total_training_pairs": sum(len(source(s)["training_pairs"]) for s in (3, 1, 13)),
        "json_file_size": (folder / "training.json").stat().st_size,
        "jsonl_file_size": (folder / "training.jsonl").stat().st_size,
        # seed 3: 4.28 derived (no manifest score), seed 1: no score at all, seed 13: 4.1, reviewed
        "avg_quality_score": 4.19,
        "min_quality_score": 4.1,
        "max_quality_score": 4.28,
        "human_reviewed_count": 1,
        "scaffolding_distribution": {
            "personas": {"first_gen_builder": 1, "pragmatic_optimist": 2},
            "emotional_arcs": {"shame_to_acceptance": 1, "fear_to_confidence": 1, "confusion_to_clarity": 1},
            "training_topics": {"retirement_catch_up": 2, "concentrated_stock": 1},
        },
        "status": "active",
        "last_updated_at": "2025-12-01T00:00:00Z",
        "created_by": "alice",
        "created_at": "2025-12-01T00:00:00Z",
        "updated_at": "2025-12-01T00:00:00Z",
        "target_model": "llama-3.1-8b",
        "version": 1,
    }
    doc, lines = stored(rec)
    meta = doc["training_file_metadata"]
    assert meta["file_name"] == "dec" and meta["target_model"] == "llama-3.1-8b"
    assert meta["created_date"] == meta["last_updated"] == "2025-12-01T00:00:00Z"
    assert meta["vertical"] == "financial_planning_consultant"
    assert meta["quality_summary"]["avg_quality_score"] == rec["avg_quality_score"]
    assert meta["scaffolding_distribution"] == rec["scaffolding_distribution"]
    assert [c["conversation_metadata"]["conversation_id"] for c in doc["conversations"]] == [A[2], A[0], CUSTOM]
    assert [c["training_pairs"] for c in doc["conversations"]] == [source(s)["training_pairs"] for s in (3, 1, 13)]
    assert doc["consultant_profile"] == generate.DEFAULT_PROFILE
    assert orjson.loads(lines[0])["_meta"]["total_pairs"] == len(lines) - 2
    assert lines[-1] == b""
    assert lines[1:-1] == [orjson.dumps(r) for r in builder.jsonl_rows(doc["conversations"])]


def test_statistics_use_manifest_values_and_human_reviews(registered):
    # seed 2: manifest 3.85, reviewed "Yes"; seed 6: manifest 4.80 reviewed; seed 7: 3.63, "0"
    rec = registered.json("create", "--name", "q", "--id", A[1], "--id", A[5], "--id", A[6])
    assert (rec["avg_quality_score"], rec["min_quality_score"], rec["max_quality_score"]) == (4.09, 3.63, 4.8)
    assert rec["human_reviewed_count"] == 2
    doc, _ = stored(rec)
    assert doc["training_file_metadata"]["quality_summary"] == {
        "avg_quality_score": 4.09,
        "min_quality_score": 3.63,
        "max_quality_score": 4.8,
        "human_reviewed_count": 2,
        "human_reviewed_percentage": 66.67,
    }
    assert [c["conversation_metadata"]["quality_tier"] for c in doc["conversations"]] == [
        "production",
        "seed_dataset",
        "production",
    ]
    assert [c["conversation_metadata"]["batch_id"] for c in doc["conversations"]] == [generate.BATCH_A] * 3


def test_create_from_batch_orders_by_created_at_then_id(registered):
    rec = registered.json("create", "--name", "batch-a", "--batch", generate.BATCH_A)
    records = {r["conversation_id"]: r for r in registered.json("conversations", "list")}
    expected = sorted(A, key=lambda cid: (records[cid]["created_at"] or "", cid))
    assert registered.json("show", "batch-a")["conversation_ids"] == expected
    assert rec["conversation_count"] == 8


def test_add_regenerates_outputs_and_recomputes_exactly(registered, tmp_path):
    registered("create", "--name", "dec", "--id", A[1], "--id", A[5])
    first, _ = stored(registered.json("show", "dec"))
    rec = registered.json("add", "dec", "--id", A[6], env={"SOURCE_DATE_EPOCH": EPOCH_LATER})
    assert rec["conversation_count"] == 3
    assert (rec["avg_quality_score"], rec["human_reviewed_count"]) == (4.09, 2)
    assert rec["created_at"] == "2025-12-01T00:00:00Z"
    assert rec["last_updated_at"] == rec["updated_at"] == "2025-12-02T00:00:00Z"
    doc, lines = stored(rec)
    assert doc["training_file_metadata"]["created_date"] == "2025-12-01T00:00:00Z"
    assert doc["training_file_metadata"]["last_updated"] == "2025-12-02T00:00:00Z"
    assert doc["conversations"][:2] == first["conversations"]
    assert doc["conversations"][2]["conversation_metadata"]["conversation_id"] == A[6]
    assert lines[1:-1] == [orjson.dumps(r) for r in builder.jsonl_rows(doc["conversations"])]
    assert registered.json("show", "dec")["conversation_ids"] == [A[1], A[5], A[6]]


def test_last_updated_changes_at_every_add_even_within_one_second(registered):
    registered("create", "--name", "dec", "--id", A[1])
    stamps = [registered.json("add", "dec", "--id", cid)["last_updated_at"] for cid in (A[5], A[6])]
    assert stamps == ["2025-12-01T00:00:01Z", "2025-12-01T00:00:02Z"]  # the clock is pinned at :00
    doc, _ = stored(registered.json("show", "dec"))
    assert (doc["training_file_metadata"]["created_date"], doc["training_file_metadata"]["last_updated"]) == (
        "2025-12-01T00:00:00Z",
        "2025-12-01T00:00:02Z",
    )
    assert registered.json("archive", "dec")["updated_at"] == "2025-12-01T00:00:03Z"


def test_add_by_batch_with_skip_invalid_lists_what_was_left_out(registered):
    registered("create", "--name", "dec", "--batch", generate.BATCH_A)
    rec = registered.json("add", "dec", "--batch", generate.BATCH_B, "--skip-invalid")
    assert rec["skipped"] == [{"conversation_id": B11, "reason": "status is enriched, not completed"}]
    assert rec["conversation_count"] == 11
    human = registered("add", "dec", "--id", B11, "--skip-invalid", code=3)
    assert human.stderr == f"Error: no eligible conversations: {B11}: status is enriched, not completed\n"


def test_skip_invalid_reports_each_reason(registered, tmp_path):
    missing = tmp_path / "gone" / "enriched.json"
    write_json(missing, generate.make_conversation(31))
    registered("conversations", "scan", missing)
    missing.unlink()
    gone = generate.conversation_uuid(31)
    failed = generate.conversation_uuid(24)  # bad/mistyped.json, registered as validation_failed
    rec = registered.json(
        "create",
        "--name",
        "s",
        "--skip-invalid",
        "--id",
        A[0],
        "--id",
        B11,
        "--id",
        gone,
        "--id",
        OTHER_PROFILE,
        "--id",
        OTHER_VERTICAL,
        "--id",
        failed,
    )
    assert rec["conversation_count"] == 1
    assert rec["skipped"] == [
        {"conversation_id": B11, "reason": "status is enriched, not completed"},
        {"conversation_id": gone, "reason": f"source file not found: {missing}"},
        {"conversation_id": OTHER_PROFILE, "reason": PROFILE_DIFFERS},
        {
            "conversation_id": OTHER_VERTICAL,
            "reason": "vertical 'wealth_management' differs from 'financial_planning_consultant'",
        },
        {"conversation_id": failed, "reason": "status is validation_failed, not completed"},
    ]


def test_ids_from_stdin(registered):
    rec = registered.json("create", "--name", "in", "--ids-file", "-", input=f"{A[0]}\n# skip\n{A[1]}\n")
    assert rec["conversation_count"] == 2


def test_list_show_and_archive(registered):
    registered("create", "--name", "one", "--id", A[0])
    registered("create", "--name", "two", "--id", A[1], env={"SOURCE_DATE_EPOCH": EPOCH_LATER})
    assert [r["name"] for r in registered.json("list")] == ["two", "one"]
    archived = registered.json("archive", "one")
    assert archived["status"] == "archived"
    assert registered.json("archive", "one")["status"] == "archived"  # idempotent
    assert [r["name"] for r in registered.json("list")] == ["two"]
    assert [r["name"] for r in registered.json("list", "--status", "archived")] == ["one"]
    assert [r["name"] for r in registered.json("list", "--status", "all")] == ["two", "one"]
    shown = registered.json("show", "two")
    assert shown["conversation_ids"] == [A[1]]
    assert registered.json("show", shown["id"]) == shown


def test_human_list_is_an_aligned_table(registered):
    rec = registered.json("create", "--name", "dec", "--id", A[1], "--id", A[5], "--target-model", "llama-3.1-8b")
    other = registered.json("create", "--name", "wide ✓ 名前", "--id", A[0])
    registered("archive", "wide ✓ 名前")
    out = registered("list", "--status", "all", env={"SOURCE_DATE_EPOCH": EPOCH_LATER}).stdout
    size, other_size = (f"{r['jsonl_file_size'] / 1000:.1f} KB" for r in (rec, other))
    assert out.splitlines() == [
        "name                    id        conversations  pairs  quality  scaffolding                  target model   jsonl  by     age",
        "──────────────────────  ────────  ─────────────  ─────  ───────  ───────────────────────────  ────────────  ──────  ─────  ───",
        f"dec                     {rec['id'][:8]}              2      7     4.33  1 persona, 2 arcs, 2 topics  llama-3.1-8b  {size}  alice   1d",
        f"wide ✓ 名前 (archived)  {other['id'][:8]}              1      4        -  1 persona, 1 arc, 1 topic    -             {other_size}  alice   1d",
    ]
    assert "\x1b[" not in out
    # A narrow terminal keeps the columns that matter most, the id (prefixes are typed from it) first.
    narrow = registered("list", "--status", "all", env={"SOURCE_DATE_EPOCH": EPOCH_LATER, "COLUMNS": "70"}).stdout
    assert narrow.splitlines() == [
        "name                    id        conversations  pairs  quality  age",
        "──────────────────────  ────────  ─────────────  ─────  ───────  ───",
        f"dec                     {rec['id'][:8]}              2      7     4.33   1d",
        f"wide ✓ 名前 (archived)  {other['id'][:8]}              1      4        -   1d",
    ]


def test_human_show_lists_members_and_distribution(registered):
    registered("create", "--name", "dec", "--id", A[1], "--id", A[5])
    out = registered("show", "dec").stdout
    lines = [line.rstrip() for line in out.splitlines()]
    assert "conversations     2" in lines
    assert "personas          overwhelmed_avoider 2" in lines
    assert f"conversation ids  {A[1]}" in lines and f"                  {A[5]}" in lines


def test_human_registration_summary(cli):
    out = cli("conversations", "scan", FIXTURES / "bad").stdout
    assert out.splitlines()[0] == "registered 4, updated 0, invalid 7"
    assert (
        out.splitlines()[2]
        == f"  invalid {FIXTURES / 'bad' / 'missing-profile.json'}: $.consultant_profile: required field missing"
    )


def test_export_streams_the_stored_bytes(registered, tmp_path):
    rec = registered.json("create", "--name", "dec", "--id", A[0], "--id", A[1])
    json_bytes = open(rec["json_file_path"], "rb").read()
    jsonl_bytes = open(rec["jsonl_file_path"], "rb").read()
    assert registered("export", "dec").stdout_bytes == json_bytes
    assert registered("export", "dec", "--format", "jsonl").stdout_bytes == jsonl_bytes
    assert (
        registered("export", "dec", "--format", "jsonl", "--no-header").stdout_bytes == jsonl_bytes.split(b"\n", 1)[1]
    )
    (tmp_path / "out").mkdir()
    registered("export", rec["id"], "--format", "jsonl", "--output", tmp_path / "out" / "t.jsonl")
    assert (tmp_path / "out" / "t.jsonl").read_bytes() == jsonl_bytes


def test_url_on_a_local_store_is_refused(registered):
    registered("create", "--name", "dec", "--id", A[0])
    result = registered("export", "dec", "--url", code=3)
    assert "local store" in result.stderr


def test_any_fsspec_protocol_for_sources_and_only_atomic_stores_for_writes(cli, tmp_path):
    """fsspec's in-memory filesystem: sources are read through the same code as S3's; as a
    store it is refused for writes (it cannot put-if-absent, so two writers could both win)."""
    import fsspec

    memory = fsspec.filesystem("memory")
    base = f"memory://{tmp_path.name}"
    folder = FIXTURES / "conversations"
    memory.pipe({f"{base}/src/{p.relative_to(folder)}": p.read_bytes() for p in folder.rglob("*.json")})
    try:
        assert cli.json("conversations", "scan", f"{base}/src")["registered"] == 13
        rec = cli.json("create", "--name", "dec", "--id", A[0], "--id", A[1])
        assert rec["conversation_count"] == 2
        local = ("--catalog", tmp_path / "local.db", "--store", tmp_path / "store")
        cli(*local, "conversations", "scan", folder)
        assert (
            cli(*local, "export", "dec", "--format", "jsonl").stdout_bytes == open(rec["jsonl_file_path"], "rb").read()
        )
        result = cli("--store", f"{base}/store", "create", "--name", "m", "--id", A[0], code=3)
        assert result.stderr == (
            f"Error: {base}/store: trainfiles writes only to local folders and S3 (a memory:// store cannot put-if-absent)\n"
        )
        assert not memory.exists(f"{base}/store")
    finally:
        memory.rm(base, recursive=True)


def test_no_cap_on_conversations_per_command(cli, tmp_path):
    folder = tmp_path / "many"
    for seed in range(100, 350):
        write_json(
            folder / generate.conversation_uuid(seed) / "enriched.json", generate.make_conversation(seed, turns=2)
        )
    assert cli.json("conversations", "scan", folder)["registered"] == 250
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(generate.conversation_uuid(s) for s in range(100, 350)))
    assert cli.json("create", "--name", "big", "--ids-file", ids)["conversation_count"] == 250


# Refusals: exit code, one line naming every offender, nothing changed.

REFUSALS = [
    (
        ["add", "taken", "--id", OTHER_PROFILE, "--id", OTHER_VERTICAL],
        3,
        f"ineligible conversations: {OTHER_PROFILE}: {PROFILE_DIFFERS}; "
        f"{OTHER_VERTICAL}: vertical 'wealth_management' differs from 'financial_planning_consultant'",
    ),
    (
        [
            "create",
            "--name",
            "x",
            "--id",
            "0a1b2c3d-1111-4222-8333-444455556666",
            "--id",
            A[0],
            "--id",
            "1a1b2c3d-1111-4222-8333-444455556666",
        ],
        4,
        "unknown conversation ids: 0a1b2c3d-1111-4222-8333-444455556666, 1a1b2c3d-1111-4222-8333-444455556666",
    ),
    (
        ["create", "--name", "x", "--id", "0a1b2c3d-1111-4222-8333-444455556666", "--id", B11, "--id", A[0]],
        4,
        f"unknown conversation ids: 0a1b2c3d-1111-4222-8333-444455556666; ineligible conversations: {B11}: status is enriched, not completed",
    ),
    (
        ["create", "--name", "x", "--id", "0a1b2c3d-1111-4222-8333-444455556666", "--id", B11, "--skip-invalid"],
        4,
        "unknown conversation ids: 0a1b2c3d-1111-4222-8333-444455556666",
    ),
    (
        ["create", "--name", "x", "--id", A[0], "--id", A[1], "--id", A[0].upper()],
        5,
        f"conversation ids given more than once: {A[0]}",
    ),
    (
        ["create", "--name", "x", "--id", B11, "--id", A[0]],
        3,
        f"ineligible conversations: {B11}: status is enriched, not completed",
    ),
    (
        ["create", "--name", "x", "--id", A[0], "--id", OTHER_PROFILE],
        3,
        f"ineligible conversations: {OTHER_PROFILE}: {PROFILE_DIFFERS}",
    ),
    (
        ["create", "--name", "x", "--id", OTHER_VERTICAL, "--id", A[0]],
        3,
        f"ineligible conversations: {A[0]}: vertical 'financial_planning_consultant' differs from 'wealth_management'",
    ),
    (["create", "--name", "  ", "--id", A[0]], 3, "the name must not be empty"),
    (["create", "--name", A[0], "--id", A[0]], 3, "the name must not look like a training file id (a UUID)"),
    (["create", "--name", "taken", "--id", A[0]], 5, "a training file named 'taken' already exists"),
    (
        ["create", "--name", "x", "--id", "nope", "--id", "bad one"],
        3,
        "not a conversation id: --id line 1: 'nope', --id line 2: 'bad one' (an id, or a unique prefix of 4 characters or more)",
    ),
    (["create", "--name", "x", "--batch", "no-such-batch"], 4, "no conversations in batch no-such-batch"),
    (["add", "taken", "--id", A[1], "--id", A[0], "--id", A[2]], 5, f"already in training file 'taken': {A[0]}"),
    (
        ["add", "taken", "--id", "0a1b2c3d-1111-4222-8333-444455556666", "--id", A[0]],
        5,
        f"already in training file 'taken': {A[0]}; unknown conversation ids: 0a1b2c3d-1111-4222-8333-444455556666",
    ),
    (["add", "missing", "--id", A[1]], 4, "no training file with id or name 'missing'"),
    (["add", "taken", "--id", A[1]], 7, "training file 'taken' was created by alice; only its creator may change it"),
    (
        ["add", "archived", "--id", A[1]],
        5,
        "training file 'archived' is archived (`trainfiles unarchive` makes it active again)",
    ),
    (["archive", "taken"], 7, "training file 'taken' was created by alice; only its creator may change it"),
    (["show", "missing"], 4, "no training file with id or name 'missing'"),
    (["export", "missing"], 4, "no training file with id or name 'missing'"),
    (["export", "missing", "--output", "new/sub/out.json"], 4, "no training file with id or name 'missing'"),
]


@pytest.mark.parametrize(
    ("args", "code", "message"), REFUSALS, ids=[f"{r[0][0]}-{r[1]}-{i}" for i, r in enumerate(REFUSALS)]
)
def test_refusals_change_nothing(registered, tmp_path, args, code, message):
    registered("create", "--name", "taken", "--id", A[0])
    registered("create", "--name", "archived", "--id", A[0])
    registered("archive", "archived")
    before = state(tmp_path)
    env = {"TRAINFILES_USER": "bob"} if code == 7 else None
    result = registered(*args, code=code, env=env)
    assert result.stderr == f"Error: {message}\n"
    assert result.stdout == ""
    assert state(tmp_path) == before
    assert not (tmp_path / "new").exists()


def test_ineligible_source_names_path_and_rule(registered, tmp_path):
    path = tmp_path / "src" / "enriched.json"
    doc = generate.make_conversation(40)
    write_json(path, doc)
    registered("conversations", "scan", path)
    doc["training_pairs"][1]["target_response"] = 42
    write_json(path, doc)
    cid = generate.conversation_uuid(40)
    result = registered("create", "--name", "x", "--id", cid, code=3)
    assert result.stderr == (
        f"Error: ineligible conversations: {cid}: {path}: $.training_pairs[1].target_response: expected a string, found a number\n"
    )


def test_missing_sources_are_not_found(registered, tmp_path):
    paths = []
    for seed in (41, 42):
        path = tmp_path / "src" / str(seed) / "enriched.json"
        write_json(path, generate.make_conversation(seed))
        registered("conversations", "scan", path)
        path.unlink()
        paths.append(path)
    ids = [generate.conversation_uuid(s) for s in (41, 42)]
    result = registered("create", "--name", "x", "--id", ids[0], "--id", ids[1], code=4)
    assert result.stderr == (
        f"Error: ineligible conversations: {ids[0]}: source file not found: {paths[0]}; "
        f"{ids[1]}: source file not found: {paths[1]}\n"
    )


def test_explicit_profile_allows_differing_profiles(registered, tmp_path):
    profile = write_json(tmp_path / "profile.json", {"name": "House style"})
    rec = registered.json("create", "--name", "mixed", "--profile", profile, "--id", A[0], "--id", OTHER_PROFILE)
    doc, _ = stored(rec)
    assert doc["consultant_profile"] == {"name": "House style"}
    assert rec["conversation_count"] == 2


def test_usage_errors_exit_2(registered):
    assert registered("create", "--name", "x", "--id", A[0], "--batch", generate.BATCH_A, code=2).exit_code == 2
    registered("create", "--id", A[0], code=2)
    registered("add", "x", code=2)
    registered("list", "--status", "deleted", code=2)
    registered("frobnicate", code=2)


def test_unreachable_store_exits_6_and_changes_nothing(registered, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    before = snapshot(tmp_path / "catalog.db")
    result = registered("--store", blocker, "create", "--name", "x", "--id", A[0], code=6)
    assert result.stderr.startswith(f"Error: {blocker}/")
    assert snapshot(tmp_path / "catalog.db") == before
    assert registered.json("list") == []


def test_failed_write_of_the_jsonl_restores_the_previous_outputs(registered, tmp_path, monkeypatch):
    registered("create", "--name", "dec", "--id", A[0])
    before = state(tmp_path)
    real = storage.atomic_writers

    def failing(targets, **options):
        for url in targets.values():
            if url.endswith(".jsonl"):
                raise storage.failure(url, OSError(28, "No space left on device"))
        return real(targets, **options)

    monkeypatch.setattr(storage, "atomic_writers", failing)
    result = registered("add", "dec", "--id", A[1], code=6)
    assert result.stderr.endswith("training.jsonl: [Errno 28] No space left on device\n")
    assert state(tmp_path) == before
    result = registered("create", "--name", "new", "--id", A[1], code=6)
    assert state(tmp_path) == before
    # A store folder that did not exist yet is not left behind either.
    registered("--store", tmp_path / "new-store" / "sub", "create", "--name", "new", "--id", A[1], code=6)
    assert not (tmp_path / "new-store").exists()


def test_a_catalog_failure_after_the_commit_loses_nothing(registered, tmp_path, monkeypatch):
    """The commit in the store is the change; the catalog is only its index, brought up to
    date by the next command."""
    from trainfiles.store.catalog import Catalog

    registered("create", "--name", "dec", "--id", A[0])
    real = Catalog.apply

    def broken(self, records):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(Catalog, "apply", broken)
    result = registered("add", "dec", "--id", A[1], code=1)
    assert result.stderr == "Error: internal error: RuntimeError: disk I/O error (run with --debug for the traceback)\n"
    monkeypatch.setattr(Catalog, "apply", real)
    shown = registered.json("show", "dec")
    assert (shown["version"], shown["conversation_ids"]) == (2, [A[0], A[1]])
    doc, _ = stored(shown)
    assert [c["conversation_metadata"]["conversation_id"] for c in doc["conversations"]] == [A[0], A[1]]
    assert registered.json("verify")["ok"]


def test_debug_prints_the_traceback(registered, monkeypatch):
    monkeypatch.setattr(builder, "json_entry", lambda entry: 1 / 0)
    result = registered.runner.invoke(registered_app(), ["--debug", "create", "--name", "x", "--id", A[0]])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr
    assert result.stderr.endswith("Error: internal error: ZeroDivisionError: division by zero\n")


def registered_app():
    from trainfiles.cli import app

    return app


def test_help_teaches_every_command(cli):
    top = cli("--help").stdout
    listed = [line.split()[0] for line in top.split("Commands:")[1].splitlines() if line[2:3].strip()]
    assert sorted(listed) == [
        "add",
        "archive",
        "check",
        "conversations",
        "create",
        "describe",
        "export",
        "gc",
        "list",
        "log",
        "remove",
        "rename",
        "repair",
        "report",
        "restore",
        "serve",
        "show",
        "unarchive",
        "verify",
    ]
    for command in (
        ["create"],
        ["add"],
        ["export"],
        ["check"],
        ["conversations", "scan"],
        ["conversations", "import"],
        ["remove"],
        ["restore"],
        ["log"],
        ["verify"],
        ["gc"],
        ["rename"],
        ["describe"],
        ["archive"],
        ["unarchive"],
    ):
        assert "Example:" in cli(*command, "--help").stdout


def test_add_refuses_outputs_edited_outside_trainfiles(registered, tmp_path):
    rec = registered.json("create", "--name", "dec", "--id", A[0])
    with open(rec["json_file_path"], "ab") as f:
        f.write(b" ")
    before = state(tmp_path)
    result = registered("add", "dec", "--id", A[1], code=5)
    # On a local store the download path is a hard link to the version's output.
    version_json = next((tmp_path / "store" / rec["id"] / "versions").glob("*/training.json"))
    assert re.fullmatch(
        f"Error: {re.escape(str(version_json))} differs from its commit "
        r"\(sha256 [0-9a-f]{12}, expected [0-9a-f]{12}\): run `trainfiles verify`\n",
        result.stderr,
    )
    assert state(tmp_path) == before
