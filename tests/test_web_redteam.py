"""Red-team tests of the pages: hostile store contents, forged requests, malformed parameters.
Most drive the Starlette app in-process over ASGI (no socket); a few run `trainfiles serve`."""

import asyncio
import os
import re
import shutil

import orjson
import pytest
from test_web import A, Served, demo  # noqa: F401 (a fixture)

from trainfiles import Trainfiles
from trainfiles.web.app import create_app
from trainfiles.web.security import Guard

from conftest import FIXTURES

HOST = "127.0.0.1:8000"
ORIGIN = f"http://{HOST}"
XSS = "<img src=x onerror=alert(1)>\"'><script>alert(2)</script>"


def call(app, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, bytes, dict]:
    """One request to an ASGI app: its status, body and headers."""
    path, _, query = path.partition("?")
    given = {"host": HOST, **{k.lower(): v for k, v in (headers or {}).items()}}
    if body and "content-type" not in given:
        given["content-type"] = "application/x-www-form-urlencoded"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.encode(), v.encode("latin-1")) for k, v in given.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], out, {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}


def form(fields: dict | list) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


@pytest.fixture
def app(demo):
    guard = Guard(remote=False)
    made = create_app(Trainfiles(), guard=guard)
    made.state.csrf = guard.csrf
    return made


def file_id(cli) -> str:
    return cli.json("show", "demo-file")["id"]


# Host header / DNS rebinding


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io:8000", "localhost.evil:8000", "x@127.0.0.1"])
def test_other_hosts_are_refused(app, host):
    assert call(app, "GET", "/", {"Host": host})[0] == 400


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"])
def test_every_loopback_host_is_answered(app, host):
    """`trainfiles serve --host ::1` prints http://[::1]:PORT/: the browser sends that Host."""
    assert call(app, "GET", "/", {"Host": host})[0] == 200


def test_a_server_on_ipv6_loopback_answers_its_own_url(demo):
    server = Served("--host", "::1")
    try:
        assert server.base.startswith("http://[::1]:")
        assert server.get("/")[0] == 200
    finally:
        assert server.stop() == ""


# Malformed parameters: a clear 4xx, never a 500


@pytest.mark.parametrize(
    "path, status",
    [
        ("/files/demo-file?page=-5", 200),
        ("/files/demo-file?page=" + "9" * 40, 200),
        ("/files/demo-file?page=1e3", 400),
        ("/files/demo-file?page=" + "9" * 5000, 400),
        ("/conversations?page=0&quality_min=nan&quality_max=1e999", 200),
        ("/?status=bogus", 400),
        ("/files/demo-file/download?format=jsonl&version=0", 404),
        ("/files/demo-file/download?format=jsonl&version=-1", 404),
        ("/files/demo-file/download?format=messages&version=-1", 404),
        ("/files/demo-file/download?format=jsonl&version=" + "9" * 30, 404),
        ("/files/demo-file/download?format=messages&version=" + "9" * 30, 404),
        ("/files/demo-file/download?format=card&version=" + "9" * 30, 404),
        ("/files/demo-file/download?format=card&version=7", 404),
        ("/files/demo-file/download?format=jsonl&rows=bogus", 400),
        ("/files/demo-file/download?format=card&rows=pair", 400),
        ("/conversations/" + "a" * 5000, 404),
        ("/files/" + "%00", 404),
    ],
)
def test_malformed_parameters_are_clear_refusals(app, path, status):
    code, body, _ = call(app, "GET", path)
    assert b"Internal error" not in body and b"Traceback" not in body, body[-600:]
    assert code == status, body[-600:]


@pytest.mark.parametrize("version", ["-1", "0", "9" * 30, "x", ""])
def test_restoring_a_version_that_is_not_one_is_refused(app, version):
    fields = {"csrf": app.state.csrf, "version": version}
    code, body, _ = call(app, "POST", "/files/demo-file/restore", {"Origin": ORIGIN}, form(fields))
    assert b"Internal error" not in body, body[-600:]
    assert code in (400, 404, 422), (code, body[-600:])


# Hostile store contents: every text a writer chose, escaped wherever it lands


@pytest.fixture
def hostile(cli, tmp_path):
    """The fixtures scanned from a copy where one conversation's every free text, key,
    emotion and pair's quality is markup (its emotions without the optional ones: format-v4
    requires `primary` only), in a file named, described and aimed at a model with markup."""
    folder = tmp_path / "convs"
    shutil.copytree(FIXTURES / "conversations", folder)
    path = next(folder.glob(f"*/{A[0]}/enriched.json"))
    doc = orjson.loads(path.read_bytes())
    doc["input_parameters"] = {
        **(doc.get("input_parameters") or {}),
        "persona_key": "persona" + XSS,
        "emotional_arc_key": "arc" + XSS,
        "training_topic_key": "topic" + XSS,
    }
    for pair in doc["training_pairs"]:
        pair["system_prompt"] = "system" + XSS
        pair["current_user_input"] = "user" + XSS
        if pair["target_response"] is not None:
            pair["target_response"] = "reply" + XSS
        pair["conversation_metadata"]["note" + XSS] = "value" + XSS
        pair["emotional_context"]["detected_emotions"] = {"primary": "fear" + XSS}
        pair["training_metadata"]["quality_score"] = "high" + XSS  # open: only a number is checked
    path.write_bytes(orjson.dumps(doc))
    cli("conversations", "scan", folder)
    Trainfiles().create("x" + XSS, [A[0], A[1]], description="d" + XSS, target_model="m" + XSS)
    return cli


def unescaped(html: str) -> list[str]:
    """What of the payload arrived as markup."""
    return re.findall(r"<img src=x|<script>alert|\"'><", html)


def test_hostile_texts_are_escaped_on_every_served_page(hostile):
    guard = Guard(remote=False)
    app = create_app(Trainfiles(), guard=guard)
    fid = hostile.json("list", "--status", "all")[0]["id"]
    for path in ("/", f"/files/{fid}", f"/conversations/{A[0]}", "/conversations", "/conversations?persona=x"):
        code, body, _ = call(app, "GET", path)
        assert code == 200, (path, body[-800:])
        assert unescaped(body.decode()) == [], path
    code, body, _ = call(
        app,
        "POST",
        "/files/add",
        {"Origin": ORIGIN},
        form({"csrf": guard.csrf, "file": fid, "id": A[0], "invalid": "skip"}),
    )
    assert unescaped(body.decode()) == [], body[-800:]


def test_hostile_texts_are_escaped_in_the_report(hostile, tmp_path):
    hostile("report", "-o", tmp_path / "site")
    for page in (tmp_path / "site").rglob("*.html"):
        assert unescaped(page.read_text()) == [], page


# Forged changes: each refused with 403 and nothing changed


def origin_cases(token: str, other: str) -> list[tuple[dict, dict]]:
    """(headers, fields) of requests that must not change anything."""
    ok = {"csrf": token}
    return [
        ({"Origin": "null"}, ok),
        ({"Origin": "null", "Referer": ORIGIN + "/files/demo-file"}, ok),
        ({"Referer": "http://evil.example/x"}, ok),
        ({"Referer": "http://127.0.0.1:8000.evil.example/"}, ok),
        ({"Referer": "http://127.0.0.1:8000@evil.example/"}, ok),
        ({"Origin": "http://127.0.0.1:8001"}, ok),
        ({"Origin": "https://127.0.0.1:8000"}, ok),
        ({"Origin": "http://localhost:8000"}, ok),
        ({"Origin": ORIGIN}, {"csrf": other}),
        ({"Origin": ORIGIN}, {"csrf": ""}),
        ({"Origin": ORIGIN}, {"csrf": token + "x"}),
        ({"Origin": ORIGIN}, {"CSRF": token}),
    ]


def test_forged_changes_are_refused_and_change_nothing(app, demo):
    before = demo.json("list", "--status", "all")
    for headers, fields in origin_cases(app.state.csrf, Guard(remote=False).csrf):
        for path in ("/files/demo-file/archive", "/files/demo-file/rename"):
            code = call(app, "POST", path, headers, form({**fields, "name": "renamed"}))[0]
            assert code == 403, (headers, fields, path, code)
    # The token in the query string, or a body that is not a form.
    code, _, _ = call(app, "POST", f"/files/demo-file/archive?csrf={app.state.csrf}", {"Origin": ORIGIN}, b"x=1")
    assert code == 403
    text = {"Origin": ORIGIN, "Content-Type": "text/plain"}
    assert call(app, "POST", "/files/demo-file/archive", text, form({"csrf": app.state.csrf}))[0] == 403
    # No GET (nor HEAD) changes anything.
    for method in ("GET", "HEAD"):
        for action in ("archive", "rename", "restore"):
            assert call(app, method, f"/files/demo-file/{action}?csrf={app.state.csrf}&version=1")[0] == 405
    assert demo.json("list", "--status", "all") == before


def test_the_token_is_in_no_url_of_any_page(app, demo):
    fid = file_id(demo)
    for path in ("/", f"/files/{fid}", "/conversations", f"/conversations/{A[0]}", "/files/nope"):
        _, body, _ = call(app, "GET", path)
        html = body.decode()
        urls = re.findall(r'(?:href|action|src|formaction)="([^"]*)"', html)
        assert not [u for u in urls if app.state.csrf in u], path
        assert html.count(app.state.csrf) == html.count(f'name="csrf" value="{app.state.csrf}"'), path


def test_a_multipart_change_from_this_origin_works(app, demo):
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{app.state.csrf}\r\n--{boundary}--\r\n'
    ).encode()
    headers = {"Origin": ORIGIN, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert call(app, "POST", "/files/demo-file/archive", headers, body)[0] == 303
    assert demo.json("show", "demo-file")["status"] == "archived"


def test_remote_mode_asks_the_token_of_everything(demo):
    guard = Guard(remote=True)
    app = create_app(Trainfiles(), guard=guard)
    for path in ("/", "/static/style.css", "/static/table.js", "/files/demo-file/download", "/conversations"):
        assert call(app, "GET", path, {"Host": "evil.example"})[0] == 401, path
    code, _, headers = call(app, "POST", f"/files/demo-file/archive?token={guard.access}", {"Origin": ORIGIN})
    assert code == 303 and "set-cookie" in headers
    assert demo.json("show", "demo-file")["status"] == "active"
    cookie = {"Cookie": f"trainfiles_token={guard.access}"}
    assert call(app, "GET", "/", {**cookie, "Host": "192.168.1.5:8000"})[0] == 200
    assert call(app, "GET", "/", {"Cookie": "trainfiles_token=" + guard.access[:-1]})[0] == 401


# The report's folder


def test_the_report_refuses_what_is_not_a_report_and_leaves_nothing(demo, tmp_path):
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "marked").mkdir()
    (tmp_path / "marked" / ".trainfiles-report").mkdir()  # a folder, not the mark a report writes
    (tmp_path / "marked" / ".trainfiles-report" / "keep").write_text("keep")
    before = sorted(p.name for p in tmp_path.iterdir())
    demo("report", "-o", tmp_path / "notes.txt", code=3)
    assert (tmp_path / "notes.txt").read_text() == "keep"
    result = demo("report", "nope", "-o", tmp_path / "site", code=4)
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_report_it_cannot_write_is_a_clear_refusal(demo, tmp_path):
    """Exit 1 is a bug (cli.md): a folder that cannot be written is storage unavailable (6),
    as `export --output-dir` says it."""
    (tmp_path / "notes.txt").write_text("keep")
    result = demo("report", "-o", tmp_path / "notes.txt" / "site", code=6)
    assert result.stderr.startswith(f"Error: cannot write a report in {tmp_path / 'notes.txt'}: ")
    assert (tmp_path / "notes.txt").read_text() == "keep"
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o500)
    try:
        if not os.access(tmp_path / "locked", os.W_OK):  # root writes anywhere
            demo("report", "-o", tmp_path / "locked" / "site", code=6)
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == []


def test_the_report_prints_nothing_on_stdout_but_its_json(demo, tmp_path):
    result = demo("report", "-o", tmp_path / "site")
    assert result.stdout == "" and result.stderr.startswith("wrote 13 pages to ")
    assert orjson.loads(demo("report", "-o", tmp_path / "site", "--json").stdout)["pages"] == 13


def test_the_report_writes_only_under_its_folder(demo, tmp_path):
    site = tmp_path / "site"
    demo("report", "-o", site)
    outside = {p for p in tmp_path.iterdir()} - {site}
    demo("report", "-o", site)
    assert {p for p in tmp_path.iterdir()} - {site} == outside
    assert all(p.resolve().is_relative_to(site) for p in site.rglob("*"))


# A stored output another writer changed


def test_a_tampered_output_is_not_served_as_a_whole_download(demo, tmp_path):
    """The store is shared: its outputs are input. A download whose bytes differ from the
    commit's digest must not arrive as a complete 200 response (a browser would keep it)."""
    fid = file_id(demo)
    stored = sorted((tmp_path / "store").rglob("*.jsonl"))
    assert stored, list((tmp_path / "store").rglob("*"))
    for path in stored:
        path.write_bytes(path.read_bytes().replace(b"a", b"4"))
    server = Served()
    try:
        import http.client

        host, port = server.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", f"/files/{fid}/download?format=jsonl")
        response = connection.getresponse()
        try:
            body = response.read()
            complete = True
        except http.client.IncompleteRead:
            body, complete = b"", False
        assert not (response.status == 200 and complete), (response.status, body[:200])
    finally:
        server.stop()


def test_what_a_url_says_is_escaped_on_its_page(app, demo):
    for path in (
        f"/files/demo-file?page={XSS}",
        f"/?status={XSS}",
        f"/conversations?status={XSS}&persona={XSS}&page=2",
        f"/conversations/{XSS}",
        f"/files/{XSS}",
        f"/files/demo-file/download?format={XSS}",
        f"/files/demo-file/download?version={XSS}",
    ):
        code, body, _ = call(app, "GET", path.replace(" ", "%20"))
        assert code < 500 and unescaped(body.decode()) == [], (path, code)


@pytest.mark.parametrize(
    "path", ["/static/../app.py", "/static/..%2fapp.py", "/static//etc/passwd", "/static/%2e%2e/app.py"]
)
def test_static_files_stay_in_their_folder(app, path):
    code, body, _ = call(app, "GET", path)
    assert code == 404 and b"create_app" not in body and b"root:" not in body


def test_a_change_by_name_leads_to_the_page_of_the_file_changed(app, demo):
    fields = form({"csrf": app.state.csrf, "name": "renamed"})
    code, _, headers = call(app, "POST", "/files/demo-file/rename", {"Origin": ORIGIN}, fields)
    assert code == 303
    assert call(app, "GET", headers["location"])[0] == 200, headers["location"]


# A store whose members this machine has not registered


def test_members_registered_nowhere_here_still_have_pages(cli, tmp_path, monkeypatch):
    """A store written before registrations were shared (protocol 1): its members are in no
    registration this catalog reads. Their pages say so; the report does not fail."""
    store = tmp_path / "old-store"
    shutil.copytree(FIXTURES / "store-92696c5", store)
    monkeypatch.setenv("TRAINFILES_STORE", str(store))
    files = cli.json("list", "--status", "all")
    assert files
    result = cli("report", "-o", tmp_path / "site")
    assert result.exit_code == 0
    page = next((tmp_path / "site" / "conversations").iterdir()).read_text()
    assert "not registered in this catalog" in page
    assert re.search(r"<dt>Persona</dt><dd>\w+</dd>", page), "the member's statistics, as committed"
    app = create_app(Trainfiles(), guard=Guard(remote=False))
    fid = files[0]["id"]
    assert call(app, "GET", f"/files/{fid}")[0] == 200


@pytest.mark.parametrize(
    "path, fields",
    [
        ("/files/add", {"file": "", "id": A[0]}),
        ("/files/add", {"file": "   ", "id": A[0]}),
        ("/files/add", {"file": "demo-file", "id": "../../etc/passwd"}),
        ("/files/add", {"file": "demo-file", "id": "a" * 10_000}),
        ("/files", {"name": "", "id": A[0]}),
        ("/files", {"name": "n", "id": "/etc/passwd"}),
        ("/files", {"name": "n", "id": [A[0], A[0]]}),
        ("/files", {"name": "n" * 5000, "id": A[0]}),
        ("/files", {"name": "n\u202e", "id": A[0]}),
        ("/files", {"name": "n", "all_matching": "1", "quality_min": "9"}),
        ("/files/demo-file/describe", {"description": "d" * 200_000}),
        ("/files/demo-file/rename", {"name": ""}),
    ],
)
def test_hostile_form_values_are_clear_refusals(app, demo, path, fields):
    before = demo.json("list", "--status", "all")
    pairs = [(k, x) for k, v in fields.items() for x in (v if isinstance(v, list) else [v])]
    code, body, _ = call(app, "POST", path, {"Origin": ORIGIN}, form([("csrf", app.state.csrf), *pairs]))
    assert 400 <= code < 500, (code, body[-600:])
    assert demo.json("list", "--status", "all") == before


def test_a_report_through_a_symlink_replaces_the_report_it_names(demo, tmp_path):
    demo("report", "-o", tmp_path / "real")
    (tmp_path / "real" / "stale.html").write_text("old")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    demo("report", "-o", tmp_path / "link")
    demo("report", "-o", tmp_path / "link")
    litter = [p.name for p in tmp_path.iterdir() if p.name.startswith((".link", ".real"))]
    assert litter == []
    assert (tmp_path / "link" / "index.html").exists()
    assert not (tmp_path / "real" / "stale.html").exists() and (tmp_path / "link").is_symlink()


def test_a_report_replaces_its_folder_though_a_killed_run_left_its_old_one(demo, tmp_path):
    """The old report is renamed aside before it is removed: a run killed between the two
    leaves it, and a later run of the same process id (common in containers) must not stop."""
    demo("report", "-o", tmp_path / "site")
    aside = tmp_path / f".site.old-{os.getpid()}"
    aside.mkdir()
    (aside / "index.html").write_text("left by a killed run")
    demo("report", "-o", tmp_path / "site")
    assert (tmp_path / "site" / "index.html").exists()
