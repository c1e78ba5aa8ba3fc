"""No bad input reaches exit 1 (issue 12): each refusal with its exit code and one line."""

import os
import sqlite3
import stat

import orjson
import pytest

import generate
from conftest import FIXTURES, snapshot, write_json

USER = FIXTURES / "conversations" / generate.USER_ID
A = [generate.conversation_uuid(s) for s in range(1, 9)]


def source(seed: int) -> dict:
    return orjson.loads((USER / generate.conversation_uuid(seed) / "enriched.json").read_bytes())


def place(folder, seed: int, doc: dict):
    """`doc` as seed's enriched file under `folder`, where a scan derives its id from the folder."""
    return write_json(folder / generate.conversation_uuid(seed) / "enriched.json", doc)


def error(result) -> dict:
    return orjson.loads(result.stdout)["error"]


# 1. numbers


@pytest.mark.parametrize("score, shown", [(1e30, "1e+30"), (-1e30, "-1e+30"), (1e308, "1e+308")])
def test_out_of_range_quality_score_is_ineligible_and_the_others_register(cli, tmp_path, score, shown):
    folder = tmp_path / "src"
    place(folder, 1, source(1))
    doc = source(2)
    doc["training_pairs"][1]["training_metadata"]["quality_score"] = score
    bad = place(folder, 2, doc)
    assert cli.json("conversations", "scan", folder) == {
        "moved": [],
        "registered": 2,
        "updated": 0,
        "invalid": [
            {
                "path": str(bad),
                "reason": f"$.training_pairs[1].training_metadata.quality_score: expected 0 to 10, found {shown}",
            }
        ],
    }
    statuses = {r["conversation_id"]: r["enrichment_status"] for r in cli.json("conversations", "list")}
    assert statuses == {A[0]: "completed", A[1]: "validation_failed"}


def test_out_of_range_manifest_score_is_a_bad_cell(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"conversation_id,quality_score,clarity_score\n{A[0]},1e30,-0.5\n")
    result = cli("conversations", "import", manifest, code=3)
    assert result.stderr == (
        f'Error: bad manifest rows: {manifest} line 2: quality_score "1e30" is not from 0 to 10, '
        'clarity_score "-0.5" is not from 0 to 10\n'
    )


# 2. nesting


def test_deep_nesting_is_refused_at_registration(cli, tmp_path):
    doc = source(1)
    doc["training_pairs"][0]["conversation_metadata"]["deep"] = "DEEP"
    path = place(tmp_path / "src", 1, doc)  # orjson writes at most 255 levels: nest by hand
    path.write_bytes(path.read_bytes().replace(b'"DEEP"', b"[" * 300 + b"]" * 300))
    # $ is level 1, training_pairs 2, the pair 3, conversation_metadata 4, deep 5
    where = "$.training_pairs[0].conversation_metadata.deep" + "[0]" * 96
    assert cli.json("conversations", "scan", tmp_path / "src")["invalid"] == [
        {"path": str(path), "reason": f"{where}: nested deeper than 100 levels"}
    ]
    result = cli("create", "--name", "x", "--id", A[0], code=3)
    assert result.stderr == f"Error: ineligible conversations: {A[0]}: status is validation_failed, not completed\n"


# 3. long CSV cells


def test_csv_cell_over_the_csv_module_limit_imports(cli, tmp_path):
    batch = "b" * 200_000
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"conversation_id,batch_job_id\n{A[0]},{batch}\n")
    assert cli.json("conversations", "import", manifest) == {
        "missing_sources": [],
        "moved": [],
        "registered": 1,
        "updated": 0,
        "invalid": [],
    }
    assert cli.json("conversations", "list")[0]["batch_job_id"] == batch


def test_long_bad_cell_is_shown_shortened(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"conversation_id\n{'x' * 200_000}\n")
    result = cli("conversations", "import", manifest, code=3)
    assert (
        result.stderr == f'Error: bad manifest rows: {manifest} line 2: conversation_id "{"x" * 76}... is not a UUID\n'
    )


# 4. dates


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_created_at_beyond_the_calendar_in_utc_is_a_bad_cell(cli, tmp_path, value):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"conversation_id,created_at\n{A[0]},{value}\n")
    result = cli("conversations", "import", manifest, code=3)
    assert result.stderr == (
        f'Error: bad manifest rows: {manifest} line 2: created_at "{value}" is not an ISO 8601 date or date-time '
        "(e.g. 2025-10-09T10:07:00Z)\n"
    )


@pytest.mark.parametrize(
    "value, shown", [("garbage", '"garbage"'), (20251202, "20251202"), ("2025-13-01", '"2025-13-01"')]
)
def test_enriched_created_date_must_be_a_date(cli, tmp_path, value, shown):
    doc = source(1)
    doc["dataset_metadata"]["created_date"] = value
    path = place(tmp_path / "src", 1, doc)
    assert cli.json("conversations", "scan", tmp_path / "src")["invalid"] == [
        {
            "path": str(path),
            "reason": f"$.dataset_metadata.created_date: expected a date YYYY-MM-DD or an ISO 8601 date-time, found {shown}",
        }
    ]


# 5. protocols


def test_unreachable_ftp_store_is_storage_unavailable(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    result = cli("--store", "ftp://127.0.0.1:1/files", "create", "--name", "x", "--id", A[0], code=6)
    assert (
        result.stderr == "Error: ftp://127.0.0.1:1/files/_checkpoints: [Errno 111] Connection refused\n"
    )  # the log is read first
    result = cli("conversations", "scan", "ftp://127.0.0.1:1/enriched", code=6)
    assert result.stderr == "Error: ftp://127.0.0.1:1/enriched: [Errno 111] Connection refused\n"


def test_unreachable_ftp_source_is_storage_unavailable(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"conversation_id,enrichment_status,enriched_file_path\n{A[0]},completed,ftp://127.0.0.1:1/x.json\n"
    )
    cli("conversations", "import", manifest, "--allow-outside-base")
    result = cli("create", "--name", "x", "--id", A[0], code=6)
    assert result.stderr == "Error: ftp://127.0.0.1:1/x.json: [Errno 111] Connection refused\n"


def test_unknown_protocol_is_invalid_input(cli):
    result = cli("conversations", "scan", "nosuch://bucket/enriched", code=3)
    assert result.stderr == "Error: nosuch://bucket/enriched: Protocol not known: nosuch\n"


# 6. arguments and names


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--name", "\udcff", "--id", A[0]],
        ["create", "--name", "x", "--description", "\udcff", "--id", A[0]],
        ["create", "--name", "x", "--target-model", "\udcff", "--id", A[0]],
        ["create", "--name", "x", "--batch", "\udcff"],
        ["show", "\udcff"],
    ],
)
def test_undecodable_arguments_are_refused(cli, tmp_path, args):
    cli("conversations", "scan", FIXTURES / "conversations")
    before = snapshot(tmp_path)
    assert cli(*args, code=3).stderr == "Error: not valid UTF-8: \\xff\n"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "name, hidden",
    [("f\u200b1", "U+200B"), ("a\u202eb\u2066", "U+202E, U+2066"), ("a\x85b", "U+0085"), ("\ufeffx", "U+FEFF")],
)
def test_names_with_hidden_characters_are_refused(cli, name, hidden):
    cli("conversations", "scan", FIXTURES / "conversations")
    result = cli("create", "--name", name, "--id", A[0], code=3)
    assert result.stderr == f"Error: the name must not contain control, zero-width or bidi characters: {hidden}\n"


def test_scan_lists_file_names_that_are_not_utf8(cli, tmp_path):
    folder = tmp_path / "src"
    place(folder, 1, source(1))
    with open(os.fsencode(folder) + b"/\xff.json", "wb") as f:
        f.write(orjson.dumps(source(2)))
    assert cli.json("conversations", "scan", folder) == {
        "moved": [],
        "registered": 1,
        "updated": 0,
        "invalid": [{"path": f"{folder}/\\xff.json", "reason": "the path is not valid UTF-8"}],
    }


# 7. SOURCE_DATE_EPOCH


@pytest.mark.parametrize("epoch", ["abc", "99999999999999999999", "-99999999999999"])
def test_bad_source_date_epoch_is_refused(cli, epoch):
    result = cli("conversations", "scan", FIXTURES / "conversations", code=3, env={"SOURCE_DATE_EPOCH": epoch})
    assert (
        result.stderr == f"Error: SOURCE_DATE_EPOCH must be whole seconds since 1970 up to year 9999, not {epoch!r}\n"
    )


# 8. the catalog


def test_corrupt_catalog_pages_are_storage_unavailable(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "x", "--id", A[0])
    catalog = tmp_path / "catalog.db"
    db = sqlite3.connect(catalog)
    size = db.execute("PRAGMA page_size").fetchone()[0]
    pages = [p for (p,) in db.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'training_files'")]
    db.close()
    data = bytearray(catalog.read_bytes())
    for page in pages:  # the catalog opens; reading its training files fails
        data[(page - 1) * size : page * size] = b"\xa5" * size
    catalog.write_bytes(bytes(data))
    result = cli("list", code=6)
    assert result.stderr == f"Error: catalog {catalog}: database disk image is malformed\n"
    assert cli("conversations", "list", "--json").stdout  # the other tables are still read


def test_garbage_catalog_is_storage_unavailable(cli, tmp_path):
    catalog = tmp_path / "catalog.db"
    catalog.write_bytes(b"not a database at all" * 100)
    result = cli("list", code=6)
    assert result.stderr == f"Error: catalog {catalog}: file is not a database\n"


def test_a_full_disk_under_the_catalog_is_storage_unavailable(cli, tmp_path, monkeypatch):
    from trainfiles.store.catalog import Catalog

    def full(self, *args):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(Catalog, "apply_registration", full)
        # Published to the store, the registration is done; the catalog catches up later.
        result = cli("conversations", "scan", FIXTURES / "conversations")
        assert result.stderr == (
            "note: the registration is committed (_log/00000000000000000001.json), but the local catalog could not "
            "take it (database or disk is full); the next command catches up\n"
        )
        # A read that cannot write its index is refused.
        result = cli("--catalog", tmp_path / "other.db", "conversations", "list", code=6)
        assert result.stderr == f"Error: catalog {tmp_path / 'other.db'}: database or disk is full\n"
    assert len(cli.json("conversations", "list")) == 13


@pytest.mark.skipif(os.getuid() == 0, reason="root writes read-only files")
def test_read_only_catalog_is_storage_unavailable(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    (tmp_path / "catalog.db").chmod(0o444)
    result = cli("conversations", "scan", FIXTURES / "conversations", code=6)
    assert result.stderr.startswith(f"Error: catalog {tmp_path / 'catalog.db'}: ")


# 9. empty settings


@pytest.mark.parametrize("option", ["--catalog", "--store", "--user"])
def test_empty_settings_are_usage_errors(cli, tmp_path, option):
    result = cli(option, "", "conversations", "scan", FIXTURES / "conversations", code=2)
    assert result.stderr == f"Error: must not be empty: {option}\n"
    assert not (tmp_path / "catalog.db").exists()


# 10. FIFOs, devices and sizes


def test_scan_skips_what_is_not_a_regular_file(cli, tmp_path):
    folder = tmp_path / "src"
    place(folder, 1, source(1))
    os.mkfifo(folder / "pipe.json")
    (folder / "zero.json").symlink_to("/dev/zero")
    place(folder, 2, source(2))
    assert cli.json("conversations", "scan", folder, env={"TRAINFILES_MAX_SOURCE_BYTES": "100"}) == {
        "moved": [],
        "registered": 0,
        "updated": 0,
        "invalid": [
            {"path": str(p), "reason": reason}
            for p, reason in [
                (
                    folder / A[0] / "enriched.json",
                    f"{(folder / A[0] / 'enriched.json').stat().st_size} bytes, more than the 100 a source may have (TRAINFILES_MAX_SOURCE_BYTES)",
                ),
                (
                    folder / A[1] / "enriched.json",
                    f"{(folder / A[1] / 'enriched.json').stat().st_size} bytes, more than the 100 a source may have (TRAINFILES_MAX_SOURCE_BYTES)",
                ),
                (folder / "pipe.json", "not a regular file"),
                (folder / "zero.json", "a symlink to /dev/zero, outside the scanned folder"),
            ]
        ],
    }
    assert cli.json("conversations", "scan", folder)["registered"] == 2


def test_fifo_manifest_and_oversized_source_are_refused(cli, tmp_path):
    os.mkfifo(tmp_path / "m.csv")
    assert (
        cli("conversations", "import", tmp_path / "m.csv", code=3).stderr
        == f"Error: {tmp_path / 'm.csv'}: not a regular file\n"
    )
    cli("conversations", "scan", FIXTURES / "conversations")
    size = (USER / A[0] / "enriched.json").stat().st_size
    result = cli("create", "--name", "x", "--id", A[0], code=3, env={"TRAINFILES_MAX_SOURCE_BYTES": str(size - 1)})
    assert result.stderr == (
        f"Error: {USER / A[0] / 'enriched.json'}: {size} bytes, more than the {size - 1} a source may have (TRAINFILES_MAX_SOURCE_BYTES)\n"
    )


# 11. export targets


def test_export_onto_a_fifo_or_device_writes_in_place(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "x", "--id", A[0])
    cli("export", "x", "-o", "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    os.mkfifo(tmp_path / "pipe")
    reader = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
    try:
        cli("export", "x", "--format", "card", "-o", tmp_path / "pipe")
        assert os.read(reader, 1 << 16).startswith(b"---")
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def test_export_into_a_missing_folder_is_not_found(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "x", "--id", A[0])
    result = cli("export", "x", "-o", tmp_path / "nope" / "x.json", code=4)
    assert result.stderr == f"Error: no folder {tmp_path / 'nope'} to write {tmp_path / 'nope' / 'x.json'} in\n"
    assert not (tmp_path / "nope").exists()


# 12. bounded messages, and every offender for scripts


def test_long_offender_lists_are_bounded_and_json_lists_them_all(cli, tmp_path):
    cli("conversations", "scan", FIXTURES / "conversations")
    unknown = [f"00000000-0000-4000-8000-{i:012d}" for i in range(25)]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(unknown))
    result = cli("create", "--name", "x", "--ids-file", ids, "--json", code=4)
    message = "unknown conversation ids: " + ", ".join(unknown[:20]) + " and 5 more"
    assert result.stderr == f"Error: {message}\n"
    assert error(result) == {"exit": 4, "kind": "not_found", "message": message, "items": unknown}


def test_a_file_with_many_problems_names_the_first_20(cli, tmp_path):
    doc = source(1)
    reply = next(p for p in doc["training_pairs"] if p["target_response"] is not None)
    doc["training_pairs"] = [{**reply, "turn_number": 1}] * 26  # turns 2..26 all say 1
    path = place(tmp_path / "src", 1, doc)
    reasons = [f"$.training_pairs[{i}].turn_number: expected {i + 1}, found 1" for i in range(1, 26)]
    assert cli.json("conversations", "scan", tmp_path / "src")["invalid"] == [
        {"path": str(path), "reason": "; ".join(reasons[:20]) + " and 5 more"}
    ]


def test_json_errors_for_usage_and_invalid_input(cli, tmp_path):
    result = cli("--catalog", "", "list", "--json", code=2)
    assert error(result) == {
        "exit": 2,
        "kind": "usage",
        "message": "must not be empty: --catalog",
        "items": ["--catalog"],
    }
    result = cli("create", "--name", "x", "--id", "nope", "--json", code=3)
    assert error(result) == {
        "exit": 3,
        "kind": "invalid_input",
        "message": "not a conversation id: --id line 1: 'nope' (an id, or a unique prefix of 4 characters or more)",
        "items": ["--id line 1: 'nope'"],
    }


def test_usage_errors_with_json_are_an_error_object_too(cli):
    result = cli("create", "--id", A[0], "--json", code=2)
    assert error(result) == {"exit": 2, "kind": "usage", "message": "Missing option '--name'.", "items": []}
    assert result.stderr.endswith("Error: Missing option '--name'.\n")


def test_control_characters_in_a_message_stay_on_one_line(cli):
    result = cli("conversations", "scan", "a\nb", code=4)
    assert result.stderr.startswith("Error: nothing to scan at ") and "a\\nb" in result.stderr


def test_internal_error_is_one_line_with_its_traceback_under_debug(cli, monkeypatch):
    from trainfiles.usecases import conversations

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(conversations, "list_conversations", broken)
    result = cli("conversations", "list", code=1)
    assert result.stderr == "Error: internal error: RuntimeError: boom (run with --debug for the traceback)\n"
    result = cli.runner.invoke(cli_app(), ["--debug", "conversations", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.endswith("RuntimeError: boom\nError: internal error: RuntimeError: boom\n")


def cli_app():
    from trainfiles.cli import app

    return app


# 13. BOMs


def test_bom_is_accepted_in_ids_files_and_enriched_files(cli, tmp_path):
    path = place(tmp_path / "src", 1, source(1))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert cli.json("conversations", "scan", tmp_path / "src") == {
        "moved": [],
        "registered": 1,
        "updated": 0,
        "invalid": [],
    }
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbf" + A[0].encode() + b"\n")
    profile = tmp_path / "profile.json"
    profile.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(source(1)["consultant_profile"]))
    assert cli.json("create", "--name", "x", "--ids-file", ids, "--profile", profile)["conversation_count"] == 1


# 14. an enriched file given as a manifest


@pytest.mark.parametrize("compact", [False, True])
def test_importing_an_enriched_file_points_to_scan(cli, tmp_path, compact):
    doc = source(1)
    path = tmp_path / "enriched.json"
    path.write_bytes(orjson.dumps(doc) if compact else orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    result = cli("conversations", "import", path, code=3)
    what = "line 1 is an enriched conversation" if compact else "one JSON document, not JSON Lines"
    assert (
        result.stderr
        == f"Error: manifest {path}: {what}; register enriched conversation files with `trainfiles conversations scan`\n"
    )


# 15. confinement


def test_manifest_paths_stay_inside_base(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    rows = ["../../../../etc/passwd", "/etc/passwd", "file:///etc/shadow", "http://127.0.0.1/x.json", "ok/../../x.json"]
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(len(rows))]
    manifest.write_text("conversation_id,enriched_file_path\n" + "".join(f"{c},{p}\n" for c, p in zip(ids, rows)))
    base = tmp_path / "base"
    result = cli("conversations", "import", manifest, "--base", base, code=3)
    assert (
        result.stderr
        == "Error: bad manifest rows: "
        + "; ".join(
            f"{manifest} line {n}: enriched_file_path {p!r} is outside --base {base}" for n, p in enumerate(rows, 2)
        )
        + "\n"
    )
    assert not (tmp_path / "catalog.db").exists()
    assert cli.json("conversations", "import", manifest, "--base", base, "--allow-outside-base")["registered"] == 5


def test_manifest_inside_base_still_imports(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"conversation_id,enriched_file_path\n{A[0]},a/../b/enriched.json\n{A[1]},{tmp_path}/c.json\n")
    cli("conversations", "import", manifest)
    assert [r["enriched_file_path"] for r in cli.json("conversations", "list")] == [
        f"{tmp_path}/a/../b/enriched.json",
        f"{tmp_path}/c.json",
    ]


def test_remote_base_refuses_other_buckets(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"conversation_id,enriched_file_path\n{A[0]},s3://other/x.json\n{A[1]},../x.json\n")
    result = cli("conversations", "import", manifest, "--base", "s3://bucket/enriched", code=3)
    assert result.stderr == (
        f"Error: bad manifest rows: {manifest} line 2: enriched_file_path 's3://other/x.json' is outside --base s3://bucket/enriched; "
        f"{manifest} line 3: enriched_file_path '../x.json' is outside --base s3://bucket/enriched\n"
    )


def test_scan_does_not_follow_symlinks_out_of_the_folder(cli, tmp_path):
    folder = tmp_path / "src"
    place(folder, 1, source(1))
    outside = place(tmp_path / "elsewhere", 2, source(2))
    (folder / "link.json").symlink_to(outside)
    write_json(folder / "real.txt", source(3))
    (folder / "inside.json").symlink_to(folder / "real.txt")
    result = cli.json("conversations", "scan", folder)
    assert result["registered"] == 2
    assert result["invalid"] == [
        {"path": str(folder / "link.json"), "reason": f"a symlink to {outside}, outside the scanned folder"}
    ]


def test_credentials_never_appear_in_messages(cli):
    result = cli("conversations", "scan", "ftp://me:s3cret@127.0.0.1:1/x", code=6)
    assert result.stderr == "Error: ftp://me:***@127.0.0.1:1/x: [Errno 111] Connection refused\n"


def _nested(levels: int, text: str):
    value = {"leaf": text}
    for _ in range(levels - 1):
        value = [text, value, text[::-1]]
    return value


@pytest.mark.parametrize("levels", [99, 100, 101, 140])
@pytest.mark.parametrize("text", ["]", "[", '\\"]}', "\\\\", '"]]}}', "plain", "", '"', "[\\\\"])
def test_depth_is_measured_on_structure_only(levels, text):
    """Brackets, quotes and backslashes inside strings neither add depth nor hide it (a
    hostile file could cancel its real nesting with `"]"` strings)."""
    from trainfiles.core import enriched

    doc = {"k": _nested(levels, text)}  # the object holding it is one more level
    data = orjson.dumps(doc)
    if levels + 1 > enriched.MAX_DEPTH:
        with pytest.raises(enriched.Ineligible, match="nested deeper than 100 levels"):
            enriched.check_depth(data, doc)
    else:
        enriched.check_depth(data, doc)


def test_open_parts_must_be_objects_and_arrays():
    """Parts of the format whose content is free are still checked for their type, each
    named by its JSON path."""
    from trainfiles.core import enriched

    doc = orjson.loads(next((FIXTURES / "conversations").rglob("enriched.json")).read_bytes())
    doc["training_pairs"][0]["conversation_history"] = {}
    doc["training_pairs"][1]["training_metadata"] = "x"
    doc["consultant_profile"] = [1]
    with pytest.raises(enriched.Ineligible) as refused:
        enriched.check(doc)
    assert refused.value.reasons == [
        "$.consultant_profile: expected an object, found an array",
        "$.training_pairs[0].conversation_history: expected an array, found an object",
        "$.training_pairs[1].training_metadata: expected an object, found a string",
    ]
