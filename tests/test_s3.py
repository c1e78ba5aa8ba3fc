"""Remote storage: every command against a real S3 endpoint on 127.0.0.1, and its failures.

The endpoint is moto's server (tests/s3server.py), reached through the standard AWS
settings with dummy credentials. Between tests it is reset and fsspec's cached filesystems
are dropped, so no test sees another's buckets, connections or settings.
"""

import re
import time
import urllib.parse
import urllib.request

import orjson
import pytest
import s3fs

from trainfiles import storage
from trainfiles.cli import app
from trainfiles.errors import StorageUnavailable
from trainfiles.usecases import conversations, workers

import generate
from conftest import BOUND, BUCKETS, FIXTURES, KEY_ID, REFUSED, SECRET, SOURCES, STORE, snapshot

A = [generate.conversation_uuid(s) for s in range(1, 9)]  # batch A, all completed
EPOCH_LATER = "1764633600"  # 2025-12-02T00:00:00Z


def source_url(cid: str) -> str:
    return f"{SOURCES}/conversations/{generate.USER_ID}/{cid}/enriched.json"


@pytest.fixture
def registered(s3, cli):
    """The fixture conversations registered from S3: the manifest beside them, then a scan."""
    cli("conversations", "import", f"{SOURCES}/manifest.csv")
    cli("conversations", "scan", f"{SOURCES}/conversations")
    return cli


def objects(fs) -> dict[str, bytes]:
    """Every object in our buckets with its bytes."""
    return {key: fs.cat_file(key) for bucket in BUCKETS for key in fs.find(bucket)}


def state(fs, tmp_path) -> tuple[dict, dict]:
    return snapshot(tmp_path / "catalog.db"), objects(fs)


def assert_paths_on_s3(records: list[dict]) -> None:
    located = [r for r in records if r["enriched_file_path"]]  # a manifest row may have no path
    assert located and [r["enriched_file_path"] for r in located] == [source_url(r["conversation_id"]) for r in located]


def timed(cli, *args, **kwargs):
    start = time.monotonic()
    result = cli(*args, **kwargs)
    return result, time.monotonic() - start


# Every command on S3


def test_scan_and_import_read_sources_from_s3(s3, cli, tmp_path):
    scanned = cli.json("conversations", "scan", f"{SOURCES}/conversations")
    assert scanned == {"moved": [], "registered": 13, "updated": 0, "invalid": []}
    assert_paths_on_s3(cli.json("conversations", "list"))
    # The same answer as scanning the local copy, with S3 URLs for paths.
    local = cli.json(
        "--catalog", tmp_path / "local.db", "--store", tmp_path / "local", "conversations", "scan", FIXTURES / "bad"
    )
    expected = orjson.loads(orjson.dumps(local).replace(str(FIXTURES).encode(), SOURCES.encode()))
    assert cli.json("conversations", "scan", f"{SOURCES}/bad") == expected
    assert (
        cli("conversations", "scan", f"{SOURCES}/none", code=4).stderr == f"Error: nothing to scan at {SOURCES}/none\n"
    )
    # A manifest on local disk whose relative paths are under an S3 base.
    fresh = ("--catalog", tmp_path / "fresh.db", "--store", f"{STORE}-fresh")
    imported = cli.json(*fresh, "conversations", "import", FIXTURES / "manifest.csv", "--base", SOURCES)
    assert imported == {
        "missing_sources": [],
        "moved": [],
        "registered": 12,
        "updated": 0,
        "invalid": [],
    }  # the manifest's rows
    assert_paths_on_s3(cli.json(*fresh, "conversations", "list"))
    rec = cli.json(*fresh, "create", "--name", "from-manifest", "--batch", generate.BATCH_A)
    assert rec["conversation_count"] == 8


def test_a_scan_of_more_files_than_start_worker_processes_reads_them_all(s3, cli, monkeypatch):
    # Sources on S3 are read here, whatever their number (only local ones go to workers).
    monkeypatch.setattr(workers, "PARALLEL_FROM", 5)
    assert cli.json("conversations", "scan", f"{SOURCES}/conversations") == {
        "moved": [],
        "registered": 13,
        "updated": 0,
        "invalid": [],
    }


def test_an_s3_scan_reads_files_while_it_lists_them(s3, cli, server, monkeypatch):
    # Pages of 3 keys and windows of 4 files: the first sources are read before the listing
    # has ended, so neither the listing nor the URLs are ever held whole.
    monkeypatch.setattr(storage.s3, "LIST_PAGE", 3)
    monkeypatch.setattr(storage.reading, "READ_CONCURRENCY", 2)
    seen: list[str] = []
    server.fault = lambda environ: (
        environ["PATH_INFO"].startswith("/sources")
        and seen.append("list" if "list-type=2" in environ["QUERY_STRING"] else environ["REQUEST_METHOD"])
    )
    scanned = cli.json("conversations", "scan", f"{SOURCES}/conversations")
    assert scanned == {"moved": [], "registered": 13, "updated": 0, "invalid": []}
    assert seen.count("GET") == 13
    assert seen.count("list") == 5  # 13 objects, 3 a page
    assert seen.index("GET") < len(seen) - 1 - seen[::-1].index("list")


def test_every_command_on_an_s3_store_matches_a_local_store(registered, s3, tmp_path):
    cli = registered
    rec = cli.json("create", "--name", "dec", "--target-model", "llama-3.1-8b", "--id", A[0], "--id", A[1])
    folder = f"{STORE}/{rec['id']}"
    assert (rec["json_file_path"], rec["jsonl_file_path"], rec["storage_bucket"]) == (
        f"{folder}/training.json",
        f"{folder}/training.jsonl",
        "trainfiles",
    )
    rec = cli.json("add", "dec", "--id", A[2], env={"SOURCE_DATE_EPOCH": EPOCH_LATER})
    stored_json, stored_jsonl = s3.cat_file(rec["json_file_path"]), s3.cat_file(rec["jsonl_file_path"])
    assert rec["conversation_count"] == 3
    assert (rec["json_file_size"], rec["jsonl_file_size"]) == (len(stored_json), len(stored_jsonl))
    assert cli("export", "dec").stdout_bytes == stored_json
    assert cli("export", "dec", "--format", "jsonl").stdout_bytes == stored_jsonl
    assert cli("export", "dec", "--format", "jsonl", "--no-header").stdout_bytes == stored_jsonl.split(b"\n", 1)[1]
    assert cli.json("show", "dec") == {**rec, "jsonl_rows": 6, "conversation_ids": A[:3]}
    assert cli.json("list") == [rec]
    # The same commands on a local store give the same bytes.
    local = ("--catalog", tmp_path / "local.db", "--store", tmp_path / "local")
    cli(*local, "conversations", "import", f"{SOURCES}/manifest.csv")
    cli(*local, "create", "--name", "dec", "--target-model", "llama-3.1-8b", "--id", A[0], "--id", A[1])
    cli(*local, "add", "dec", "--id", A[2], env={"SOURCE_DATE_EPOCH": EPOCH_LATER})
    assert cli(*local, "export", "dec").stdout_bytes == stored_json
    assert cli(*local, "export", "dec", "--format", "jsonl").stdout_bytes == stored_jsonl
    assert cli.json("archive", "dec")["status"] == "archived"
    assert cli.json("list") == []
    # The store's layout (docs/store.md): the log, each version's outputs, the download copies.
    assert sorted(re.sub(r"/(\d{6})-[0-9a-f]{12}/", r"/\1-TOKEN/", key) for key in s3.find("trainfiles")) == sorted(
        [
            "trainfiles/store/_protocol.json",
            *(f"trainfiles/store/_log/{n:020d}.json" for n in (1, 2, 3, 4, 5)),  # 2 registrations first
            f"trainfiles/store/{rec['id']}/current.json",
            f"trainfiles/store/{rec['id']}/training.json",
            f"trainfiles/store/{rec['id']}/training.jsonl",
            *(
                f"trainfiles/store/{rec['id']}/versions/{v:06d}-TOKEN/training.{kind}"
                for v in (1, 2)
                for kind in ("json", "jsonl")
            ),
        ]
    )


def test_url_downloads_the_stored_file(registered, s3):
    registered("create", "--name", "dec", "--id", A[0], "--id", A[1])
    for fmt, expires, args in (("jsonl", "600", ["--expires", "600"]), ("json", "3600", [])):
        url = registered("export", "dec", "--format", fmt, "--url", *args).stdout
        assert url.endswith("\n") and url.count("\n") == 1
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url.strip()).query)
        assert (query["X-Amz-Algorithm"], query["X-Amz-Expires"]) == (["AWS4-HMAC-SHA256"], [expires])
        with urllib.request.urlopen(url.strip()) as response:
            assert response.read() == registered("export", "dec", "--format", fmt).stdout_bytes


def test_sources_are_read_with_one_listing_and_one_get_each(registered, server, monkeypatch):
    requests = []

    def record(environ):
        requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return False

    advanced = []

    class Bar:
        def __init__(self, label, total):
            pass

        def __enter__(self):
            return advanced.append

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(conversations, "bar", Bar)
    server.fault = record
    registered("conversations", "scan", f"{SOURCES}/conversations")
    folders = (FIXTURES / "conversations" / generate.USER_ID).iterdir()
    sources = sorted(("GET", source_url(folder.name).removeprefix("s3:/")) for folder in folders)
    assert requests[0] == ("GET", "/sources")  # one listing for 13 folders
    assert sorted(requests[1:14]) == sources  # then one GET each, no HEAD
    assert requests[14:] == [("GET", "/trainfiles")]  # the store's log listed; nothing new, nothing written
    assert sum(advanced) == 13
    requests.clear()
    rec = registered.json("create", "--name", "a", "--batch", generate.BATCH_A)
    assert requests[0] == ("GET", "/trainfiles")  # what was committed since the catalog looked
    assert sorted(requests[1:9]) == sorted(("GET", source_url(cid).removeprefix("s3:/")) for cid in A)
    folder = f"/trainfiles/store/{rec['id']}"
    staged = re.sub(r"/(\d{6})-[0-9a-f]{12}/", r"/\1-TOKEN/", requests[9][1])
    tokens = [(method, re.sub(r"/(\d{6})-[0-9a-f]{12}/", r"/\1-TOKEN/", path)) for method, path in requests[9:]]
    assert sorted(tokens[:2]) == [  # 1. outputs staged, both at once
        ("PUT", f"{folder}/versions/000001-TOKEN/training.json"),
        ("PUT", f"{folder}/versions/000001-TOKEN/training.jsonl"),
    ]
    assert tokens[2:] == [
        (
            "PUT",
            "/trainfiles/store/_log/00000000000000000003.json",
        ),  # 2. the commit, put-if-absent (after 2 registrations)
        ("GET", f"{folder}/current.json"),  # 3. download copies (server-side), then their marker
        ("PUT", f"{folder}/training.json"),
        ("PUT", f"{folder}/training.jsonl"),
        ("PUT", f"{folder}/current.json"),
    ]  # the new version goes into the catalog with no request: it follows what was listed
    assert staged.startswith(f"{folder}/versions/000001-TOKEN/training.json")
    requests.clear()
    registered("add", "a", "--id", generate.conversation_uuid(9))
    # The parent version's outputs are copied into the new ones, one streamed GET each (and
    # one for the JSONL's row count), never parsed.
    parent = re.search(r"(/trainfiles/\S*/versions/000001-[0-9a-f]{12}/)", str(requests)).group(1)
    staged = re.search(r"(/trainfiles/\S*/versions/000002-[0-9a-f]{12}/)", str(requests)).group(1)
    assert sorted(requests[2:7]) == [  # both outputs at once
        ("GET", f"{parent}training.json"),
        ("GET", f"{parent}training.jsonl"),
        ("GET", f"{parent}training.jsonl"),
        ("PUT", f"{staged}training.json"),
        ("PUT", f"{staged}training.jsonl"),
    ]
    assert requests[7:] == [
        ("PUT", "/trainfiles/store/_log/00000000000000000004.json"),
        ("GET", f"{folder}/current.json"),
        ("PUT", f"{folder}/training.json"),
        ("PUT", f"{folder}/training.jsonl"),
        ("PUT", f"{folder}/current.json"),
    ]
    requests.clear()
    for command in (["list"], ["show", "a"], ["log", "a"]):
        registered(*command)
        # An up-to-date catalog costs one listing; `show` also reads the JSONL's header
        # (its row count) with one ranged GET.
        header = [("GET", f"{folder}/versions/000002-TOKEN/training.jsonl")] if command[0] == "show" else []
        assert [(m, re.sub(r"/(\d{6})-[0-9a-f]{12}/", r"/\1-TOKEN/", p)) for m, p in requests] == [
            ("GET", "/trainfiles"),
            *header,
        ]
        requests.clear()


def test_settings_from_a_shared_config_profile(s3, cli, server, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name)
    (tmp_path / "aws-config").write_text(f"[profile ci]\nregion = us-east-1\nendpoint_url = {server.endpoint}\n")
    (tmp_path / "aws-credentials").write_text(f"[ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("AWS_PROFILE", "ci")
    assert cli.json("conversations", "scan", f"{SOURCES}/conversations")["registered"] == 13


def test_generic_endpoint_variable(s3, cli, server, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    assert cli.json("conversations", "scan", f"{SOURCES}/conversations")["registered"] == 13


def test_storage_options_merge_into_the_s3_bounds(monkeypatch):
    monkeypatch.setenv(
        "TRAINFILES_STORAGE_OPTIONS",
        '{"s3": {"profile": "ci", "config_kwargs": {"connect_timeout": 1}}, "gcs": {"project": "p"}}',
    )
    expected = orjson.loads(orjson.dumps(storage.S3_OPTIONS))
    expected["config_kwargs"]["connect_timeout"] = 1
    assert storage.storage_options("s3") == {**expected, "profile": "ci"}
    assert storage.storage_options("gcs") == {"project": "p"}
    assert storage.storage_options("file") == {}


# Failures: exit 6 in bounded time, nothing changed, the same command works afterwards.


def test_server_stopped_before_a_command(registered, s3, server, tmp_path):
    cli = registered
    cli.json("create", "--name", "dec", "--id", A[0])
    before = state(s3, tmp_path)
    log = f'Error: {STORE}/_log: {REFUSED}: "{server.endpoint}/trainfiles?'  # the listing comes first
    commands = [  # each with the start of its message
        (["create", "--name", "new", "--id", A[1]], log),
        (["add", "dec", "--id", A[1]], log),
        (["export", "dec"], log),
        (["list"], log),
        (
            ["conversations", "import", f"{SOURCES}/manifest.csv"],
            f'Error: {SOURCES}/manifest.csv: {REFUSED}: "{server.endpoint}/sources/',
        ),
        (
            ["conversations", "scan", f"{SOURCES}/conversations"],
            f'Error: {SOURCES}/conversations: {REFUSED}: "{server.endpoint}/sources?',
        ),
    ]
    for args, start in commands:
        server.stop()
        result, seconds = timed(cli, *args, code=6)
        server.start()
        assert result.stderr.startswith(start), result.stderr
        assert seconds < BOUND
        assert state(s3, tmp_path) == before
    for args, _ in commands:
        cli(*args)
    # A request with an unknown id: the mistake in it is named even though no source could be read.
    unknown = "0a1b2c3d-1111-4222-8333-444455556666"
    server.fault = lambda environ: environ["PATH_INFO"].startswith("/sources/")
    result = cli("create", "--name", "other", "--id", A[2], "--id", unknown, code=4)
    assert result.stderr == (
        f"Error: unknown conversation ids: {unknown} (and the sources could not be read: "
        f"{source_url(A[2])}: [Errno 16] injected failure)\n"
    )


def test_server_stopping_while_sources_are_read(registered, s3, server, tmp_path):
    before = state(s3, tmp_path)
    reads = []

    def stop_at_third_read(environ):
        if environ["PATH_INFO"].endswith("/enriched.json"):
            reads.append(environ["PATH_INFO"])
            if len(reads) == 3:
                server.stop()
                return True
        return False

    server.fault = stop_at_third_read
    result, seconds = timed(registered, "create", "--name", "a", "--batch", generate.BATCH_A, code=6)
    assert result.stderr.startswith(f"Error: {SOURCES}/conversations/") and REFUSED in result.stderr
    assert seconds < BOUND
    server.fault = None
    server.start()
    assert state(s3, tmp_path) == before
    assert registered.json("create", "--name", "a", "--batch", generate.BATCH_A)["conversation_count"] == 8


def test_a_failing_write_publishes_nothing(registered, s3, server, tmp_path):
    cli = registered
    cli.json("create", "--name", "dec", "--id", A[0])
    before = state(s3, tmp_path)
    server.fault = lambda environ: environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].endswith(".jsonl")
    unavailable = "[Errno 16] injected failure"  # s3fs: ServiceUnavailable is EBUSY
    result, seconds = timed(cli, "add", "dec", "--id", A[1], code=6)
    assert re.fullmatch(
        f"Error: {STORE}/[0-9a-f-]{{36}}/versions/000002-[0-9a-f]{{12}}/training.jsonl: {re.escape(unavailable)}\n",
        result.stderr,
    )
    assert seconds < BOUND
    assert state(s3, tmp_path) == before  # the JSON staged first was removed
    result = cli("create", "--name", "new", "--id", A[1], code=6)
    assert result.stderr.endswith(f"/training.jsonl: {unavailable}\n")
    assert state(s3, tmp_path) == before
    server.fault = None
    assert cli.json("add", "dec", "--id", A[1])["conversation_count"] == 2
    assert cli.json("create", "--name", "new", "--id", A[1])["conversation_count"] == 1


def test_gc_aborts_uploads_a_killed_process_left_open_in_the_store(registered, s3):
    rec = registered.json("create", "--name", "dec", "--id", A[0])
    key = f"store/{rec['id']}/versions/000002-0123456789ab/training.json"
    for k in (key, "elsewhere/training.json"):  # the second is not ours to touch
        s3.call_s3("create_multipart_upload", Bucket="trainfiles", Key=k)
    # moto dates every upload 2010-11-10: younger than 31 years, it may still be running.
    assert registered.json("gc", "--min-age", str(31 * 365 * 86400))["aborted_uploads"] == []
    assert registered.json("gc", "--dry-run")["aborted_uploads"] == [key]
    assert registered.json("gc")["aborted_uploads"] == [key]
    open_uploads = s3.call_s3("list_multipart_uploads", Bucket="trainfiles").get("Uploads", [])
    assert [u["Key"] for u in open_uploads] == ["elsewhere/training.json"]


@pytest.mark.parametrize("answer", [("403 Forbidden", "AccessDenied"), ("501 Not Implemented", "NotImplemented")])
def test_a_store_that_will_not_list_uploads_is_still_collected(registered, s3, server, answer):
    rec = registered.json("create", "--name", "dec", "--id", A[0])
    s3.pipe_file(f"trainfiles/store/{rec['id']}/versions/000002-0123456789ab/training.json", b"staged by a killed add")
    server.fault = lambda environ: answer if "uploads" in environ["QUERY_STRING"] else False
    report = registered.json("gc", "--min-age", "0")
    assert (report["deleted"], report["aborted_uploads"]) == (
        [f"{STORE}/{rec['id']}/versions/000002-0123456789ab/training.json"],
        [],
    )


def test_a_large_output_goes_up_in_parts_and_a_failed_part_leaves_nothing(s3, server, monkeypatch):
    # Generous timeouts: a slow machine must not turn a request into a retried one (a retried
    # CompleteMultipartUpload finds its upload gone on moto), so the test is not about timing.
    patient = {"s3": {"config_kwargs": {"read_timeout": 120, "retries": {"total_max_attempts": 1, "mode": "standard"}}}}
    monkeypatch.setenv("TRAINFILES_STORAGE_OPTIONS", orjson.dumps(patient).decode())
    s3fs.S3FileSystem.clear_instance_cache()
    url = f"{STORE}/big/training.jsonl"
    data = bytes(range(256)) * (4096 * 101)  # 101 MiB: parts of 50 MiB go up as they fill
    parts, failing = [], {"partNumber=2"}

    def parts_seen(environ):
        query = set(environ["QUERY_STRING"].split("&"))
        parts.extend(q for q in query if q.startswith("partNumber="))
        return bool(query & failing)

    server.fault = parts_seen
    with pytest.raises(StorageUnavailable):
        storage.write_atomic(url, data)
    assert not s3.exists(url)
    assert s3.call_s3("list_multipart_uploads", Bucket="trainfiles").get("Uploads", []) == []  # aborted
    parts.clear()
    failing.clear()
    storage.write_atomic(url, data)
    assert sorted(parts) == ["partNumber=1", "partNumber=2", "partNumber=3"]
    assert s3.cat_file(url) == data


def test_failures_print_no_secrets(registered, server):
    registered("create", "--name", "dec", "--id", A[0])
    server.fault = lambda environ: environ["REQUEST_METHOD"] == "PUT"
    answered = registered.runner.invoke(app, ["--debug", "add", "dec", "--id", A[1]])
    server.fault = None
    server.stop()
    unanswered = registered.runner.invoke(app, ["--debug", "export", "dec"])
    for result in (answered, unanswered):
        assert result.exit_code == 6 and "Traceback" in result.stderr
        for secret in (KEY_ID, SECRET, "Signature=", "Credential="):
            assert secret not in result.stdout + result.stderr


def test_server_lost_while_staging(registered, s3, server, tmp_path):
    cli = registered
    cli("create", "--name", "dec", "--id", A[0])
    stored = objects(s3)

    def stop_before_the_jsonl(environ):
        if environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].endswith(".jsonl"):
            server.stop()
            return True
        return False

    shown = cli.json("show", "dec")
    server.fault = stop_before_the_jsonl
    cli("add", "dec", "--id", A[1], code=6)
    server.fault = None
    server.start()
    # Nothing was committed: the staged JSON that could not be removed (when its upload, on a
    # thread of its own, finished before the server went) is garbage, not state.
    assert cli.json("show", "dec") == shown
    left = {key for key in objects(s3) if key not in stored}
    assert len(left) <= 1 and all(
        re.fullmatch(r"trainfiles/store/[0-9a-f-]{36}/versions/000002-[0-9a-f]{12}/training\.json", key) for key in left
    )
    assert cli.json("verify")["ok"]
    cli("gc", "--min-age", "0")
    assert objects(s3) == stored
    assert cli.json("add", "dec", "--id", A[1])["conversation_count"] == 2


def test_a_server_that_ignores_conditional_writes_is_refused_before_anything_is_published(s3, cli, server):
    def ignore_conditions(environ):
        environ.pop("HTTP_IF_NONE_MATCH", None)  # as an S3-compatible server that does not honour it
        return False

    server.fault = ignore_conditions
    refused = cli("conversations", "scan", f"{SOURCES}/conversations", code=6)
    assert refused.stderr == (
        f"Error: {STORE}: a second put-if-absent of _protocol.json succeeded: this server does not honour "
        "conditional writes (If-None-Match), so two writers could both win; trainfiles writes nothing here\n"
    )
    assert not s3.exists("trainfiles/store/_log")
    server.fault = None
    assert cli.json("conversations", "scan", f"{SOURCES}/conversations")["registered"] == 13
