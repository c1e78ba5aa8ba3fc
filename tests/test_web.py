"""The pages without a browser: charts and page data through their public functions, the
report through the CLI, and the served app over HTTP (statuses, refusals, downloads)."""

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from trainfiles import Trainfiles
from trainfiles.web import charts, pages

import generate
from conftest import FIXTURES, ROOT, SOURCES

A = [generate.conversation_uuid(s) for s in range(1, 9)]  # batch A, all completed
B9 = generate.conversation_uuid(9)


@pytest.fixture
def demo(cli):
    """The fixtures registered as `make demo` does, and its file: batch A, then batch B added."""
    cli("conversations", "import", FIXTURES / "manifest.csv")
    cli("conversations", "scan", FIXTURES / "conversations")
    cli("create", "--name", "demo-file", "--batch", generate.BATCH_A)
    cli("add", "demo-file", "--batch", generate.BATCH_B, "--skip-invalid")
    return cli


class Served:
    """`trainfiles serve` in a child process on a free port of 127.0.0.1."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainfiles", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = self.process.stderr.readline()
        found = re.search(r"http://\S+", first)
        if not found:
            self.stop()
            raise AssertionError(f"trainfiles serve did not start: {first}{self.process.stderr.read()}")
        self.url = found.group(0)
        self.base = self.url.split("?")[0].rstrip("/")

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
        return _request(urllib.request.Request(self.base + path, headers=headers or {}))

    def post(self, path: str, fields: dict, headers: dict | None = None) -> tuple[int, bytes, dict]:
        data = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in fields.items()).encode()
        return _request(urllib.request.Request(self.base + path, data=data, headers=headers or {}, method="POST"))

    def csrf(self) -> str:
        _, body, _ = self.get("/conversations")
        return re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()

    def stop(self) -> str:
        """Stop the server; what it printed on stdout (which must stay empty)."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return out


def _request(request: urllib.request.Request) -> tuple[int, bytes, dict]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def served(demo):
    server = Served()
    yield server
    assert server.stop() == ""


def names(cli) -> list[str]:
    return sorted(f["name"] for f in cli.json("list", "--status", "all"))


# Charts: pure functions, exact


def test_bins_count_every_value_once_the_last_bin_closed():
    assert charts.edges(1.0, 5.0, 8) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert charts.counts([1.0, 1.49, 1.5, 4.99, 5.0, 0.2, 7], [1.0, 1.5, 2.0, 5.0]) == [3, 1, 3]
    assert charts.spread([0, 95, 100]) == [float(i * 10) for i in range(11)]
    assert charts.spread([]) == [float(i) for i in range(11)]


def test_a_histogram_draws_a_column_per_bin_under_its_title():
    svg = charts.histogram([1, 2, 2], [0, 1, 2, 3], title="Reply <lengths>", x_label="characters", y_label="replies")
    assert svg.startswith('<svg class="chart"') and 'aria-label="Reply &lt;lengths&gt;"' in svg
    assert svg.count('<rect class="bar"') == 3
    assert re.findall(r"<title>(\d to \d: \d)</title>", svg) == ["0 to 1: 0", "1 to 2: 1", "2 to 3: 2"]
    assert ">characters</text>" in svg and ">replies</text>" in svg


def test_bars_escape_labels_and_say_how_many_are_left_out():
    items = [(f"<p{i}>", i) for i in range(charts.MOST_BARS + 3)]
    svg = charts.bars(items, title="Conversations per persona", unit="")
    assert svg.count('<rect class="bar"') == charts.MOST_BARS
    assert "&lt;p0&gt;" in svg and "<p0>" not in svg
    assert ">and 3 more</text>" in svg


# Page data


def test_one_pass_tallies_every_chart_and_keeps_one_page():
    members = [
        {"conversation_id": "a", "quality_score": 4.0, "human_reviewed": True, "persona_key": "p", "training_pairs": 3},
        {
            "conversation_id": "b",
            "quality_score": 3.0,
            "persona_key": "p",
            "emotional_arc_key": "x",
            "training_pairs": 3,
        },
        {"conversation_id": "c", "quality_score": None, "topic_key": "t", "training_pairs": 5},
    ]
    t = pages.tally(members, offset=1, limit=1)
    assert (t.total, t.quality, t.reviewed, t.turns) == (3, [4.0, 3.0], 1, {3: 2, 5: 1})
    assert [m["conversation_id"] for m in t.shown] == ["b"]
    assert t.by["persona_key"] == {"p": [2, 7.0, 2], "(none)": [1, 0.0, 0]}
    assert t.by["topic_key"]["t"] == [1, 0.0, 0]


def test_filters_of_the_conversations_table():
    rows = [
        {"conversation_id": "a", "enrichment_status": "completed", "quality_score": 4.2, "human_reviewed": True},
        {"conversation_id": "b", "enrichment_status": "completed", "quality_score": 3.1, "persona_key": "p"},
        {"conversation_id": "c", "enrichment_status": "enriched", "quality_score": None},
    ]
    filters = pages.parse_filters({"status": "completed", "quality_min": "3.5", "quality_max": "x", "batch": " "})
    assert filters == {"status": "completed", "quality_min": 3.5}
    assert [c["conversation_id"] for c in pages.matching(rows, filters)] == ["a"]
    assert [c["conversation_id"] for c in pages.matching(rows, {"review": "not"})] == ["b", "c"]
    assert [c["conversation_id"] for c in pages.matching(rows, {"persona": "p"})] == ["b"]
    assert pages.pager(250, 9) == {"page": 3, "pages": 3, "offset": 200, "total": 250}
    assert pages.pager(0, 1) == {"page": 1, "pages": 1, "offset": 0, "total": 0}


def test_members_and_reply_lengths_through_the_library(demo):
    f = Trainfiles().get("demo-file")
    assert [m["conversation_id"] for m in f.members(offset=2, limit=3)] == f.conversation_ids[2:5]
    assert set(f.members(limit=1)[0]) >= {"quality_score", "human_reviewed", "persona_key", "training_pairs"}
    replies = [orjson.loads(line)["target_response"] for line in f.export("jsonl").splitlines()[1:]]
    assert f.reply_lengths() == [len(r) for r in replies]
    page = pages.file_page(Trainfiles(), "demo-file", max_tokens=200)
    assert page["pager_state"] == {"page": 1, "pages": 1, "offset": 0, "total": 11}
    assert set(page["losses"]["modes"]) == {"conversation", "pair"}


# The report


def test_the_report_writes_every_page_and_links_nothing_outside(demo, tmp_path):
    done = demo.json("report", "-o", tmp_path / "site")
    assert done == {"path": str(tmp_path / "site"), "pages": 13, "files": 1, "conversations": 11}
    site = tmp_path / "site"
    file_id = demo.json("show", "demo-file")["id"]
    assert (site / "files" / f"{file_id}.html").exists() and len(list((site / "conversations").iterdir())) == 11
    for page in site.rglob("*.html"):
        text = page.read_text()
        # Nothing fetched from a network: every src and stylesheet is in the report.
        assert not re.search(r'(src|href)="(https?:)?//', text), page
    index = (site / "index.html").read_text()
    assert f'href="{(tmp_path / "store").resolve().as_uri()}/{file_id}/training.json"' in index
    assert "<svg" in (site / "files" / f"{file_id}.html").read_text()


def test_the_report_replaces_only_a_report(demo, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = demo("report", "-o", tmp_path / "mine", code=3)
    assert "is not a trainfiles report" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    demo("report", "-o", tmp_path / "site")
    (tmp_path / "site" / "stale.html").write_text("old")
    demo("report", "demo-file", "-o", tmp_path / "site")
    assert not (tmp_path / "site" / "stale.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] == []


def test_the_command_line_starts_without_the_web_libraries():
    code = (
        "import sys, trainfiles.cli; print(sorted(m for m in ('starlette', 'uvicorn', 'jinja2') if m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "[]\n"


def test_a_missing_web_extra_is_one_line_saying_what_to_install(demo, monkeypatch):
    monkeypatch.setitem(sys.modules, "jinja2", None)
    monkeypatch.delitem(sys.modules, "trainfiles.web.report", raising=False)
    monkeypatch.delitem(sys.modules, "trainfiles.web.rendering", raising=False)
    result = demo("report", "-o", "site", code=2)
    assert result.stderr == "Error: the pages need the web extra (jinja2 is missing): pip install 'trainfiles[web]'\n"


# The server over HTTP


def test_pages_answer_and_errors_are_pages_with_their_status(served, demo):
    assert served.get("/")[0] == 200
    assert served.get("/files/demo-file")[0] == 200
    assert served.get(f"/conversations/{A[0]}")[0] == 200
    assert served.get("/conversations?persona=anxious_planner&quality_min=3")[0] == 200
    for path, status, message in [
        ("/files/nope", 404, "no training file with id or name"),
        ("/conversations/nope", 404, "unknown conversation id: nope"),
        ("/files/demo-file/download?format=exe", 400, "format is one of json"),
        ("/files/demo-file/download?format=jsonl&version=9", 404, "has no version 9"),
        ("/files/demo-file?page=x", 400, "page must be a whole number"),
    ]:
        code, body, _ = served.get(path)
        assert (code, message in body.decode()) == (status, True), (path, body)
        assert b"Traceback" not in body
    assert served.get("/", headers={"Host": "evil.example"})[0] == 400  # DNS rebinding


def test_downloads_are_the_exports_of_the_command_line(served, demo):
    for fmt, version in (("jsonl", 1), ("messages", 2), ("card", 2)):
        code, body, headers = served.get(f"/files/demo-file/download?format={fmt}&version={version}")
        args = [] if fmt == "card" else ["--version", version]
        assert code == 200 and body == demo("export", "demo-file", "--format", fmt, *args).stdout_bytes
        assert headers["content-disposition"].startswith("attachment; filename*=UTF-8''demo-file-v")


def test_changes_need_the_token_and_this_origin(served, demo):
    before = demo.json("list", "--status", "all")
    origin = {"Origin": served.base}
    fields = {"name": "sneaky", "id": A[0]}
    assert served.post("/files", fields, origin)[0] == 403  # no CSRF token
    token = served.csrf()
    assert served.post("/files", {**fields, "csrf": token}, {"Origin": "http://evil.example"})[0] == 403
    assert served.post("/files", {**fields, "csrf": token})[0] == 403  # neither Origin nor Referer
    assert served.post("/files/demo-file/archive", {"csrf": "forged"}, origin)[0] == 403
    assert demo.json("list", "--status", "all") == before
    code, body, _ = served.post("/files", {**fields, "csrf": token}, {"Referer": served.base + "/conversations"})
    assert code == 200 and b"Created sneaky" in body
    code, _, headers = served.post("/files/sneaky/archive", {"csrf": token}, origin)
    assert code == 303 and headers["location"] == "/files/sneaky"
    assert demo.json("show", "sneaky")["status"] == "archived"


def test_refusals_of_the_library_name_every_offender(served, demo):
    token, origin = served.csrf(), {"Origin": served.base}
    code, body, _ = served.post("/files", {"csrf": token, "name": "demo-file", "id": A[0]}, origin)
    assert code == 409 and b"a training file named &#39;demo-file&#39; already exists" in body
    code, body, _ = served.post("/files", {"csrf": token, "name": "x"}, origin)
    assert code == 422 and b"no conversations chosen" in body
    # All that match, refused whole: every ineligible one named; then skipped and listed.
    fields = {"csrf": token, "name": "all-b", "all_matching": "1", "batch": generate.BATCH_B}
    code, body, _ = served.post("/files", fields, origin)
    assert code == 422 and b"status is enriched, not completed" in body and "all-b" not in names(demo)
    code, body, _ = served.post("/files", {**fields, "invalid": "skip"}, origin)
    assert code == 200 and b"Left out (1)" in body
    assert demo.json("show", "all-b")["conversation_count"] == 3


def test_read_only_hides_and_refuses_changes(demo):
    server = Served("--read-only")
    try:
        _, body, _ = server.get("/conversations")
        assert b'name="csrf"' not in body and b"Create training file" not in body
        _, body, _ = server.get("/files/demo-file")
        assert b"Archive" not in body and b"read-only" in body
        fields = {"csrf": "whatever", "name": "x", "id": A[0]}
        code, body, _ = server.post("/files", fields, {"Origin": server.base})
        assert code == 403 and b"read-only" in body
    finally:
        assert server.stop() == ""
    assert names(demo) == ["demo-file"]


def test_another_host_needs_the_flag_and_then_a_token(demo):
    result = subprocess.run(
        [sys.executable, "-m", "trainfiles", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "add --allow-remote" in result.stderr
    server = Served("--host", "127.0.0.1", "--allow-remote")
    try:
        assert "?token=" in server.url
        assert server.get("/")[0] == 401
        code, _, headers = server.get("/?" + server.url.split("?")[1])
        assert code == 303 and headers["location"].endswith("/")
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=strict" in headers["set-cookie"]
        assert server.get("/", headers={"Cookie": cookie})[0] == 200
    finally:
        server.stop()


def test_the_module_stays_small_and_its_files_ship():
    web = ROOT / "src" / "trainfiles" / "web"
    assert {p.name for p in (web / "static").iterdir()} == {"style.css", "table.js"}
    assert all(len(p.read_text().splitlines()) <= 500 for p in web.rglob("*.py"))
    assert os.path.exists(web / "templates" / "file.html")
    assert Path(pages.__file__).parent == web


def test_a_report_of_an_s3_store_links_presigned_downloads_and_says_until_when(s3, cli, tmp_path):
    cli("conversations", "scan", f"{SOURCES}/conversations", "--batch", generate.BATCH_A)
    cli("create", "--name", "on-s3", "--batch", generate.BATCH_A)
    cli("report", "-o", tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text()
    links = re.findall(r'href="([^"]+)" download', index)
    assert len(links) == 2 and all("X-Amz-Signature=" in link and "X-Amz-Expires=604800" in link for link in links)
    assert "Download links are presigned and expire at " in index


def test_a_transcript_is_read_only_where_this_machine_registered_it(demo, tmp_path, monkeypatch):
    """Another machine's registration names any path it likes: its source is not read here."""
    mine = next(Trainfiles().transcripts([A[0]]))
    assert mine["source_error"] is None and mine["pairs"]
    monkeypatch.setenv("TRAINFILES_CATALOG", str(tmp_path / "b.db"))
    theirs = next(Trainfiles().transcripts([A[0]]))
    assert (theirs["pairs"], theirs["source_error"]) == (
        None,
        "registered by another machine: scan its folder here to read it",
    )
