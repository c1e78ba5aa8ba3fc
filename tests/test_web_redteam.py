"""Red-team tests of the pages: hostile store contents, forged requests, malformed parameters.
Most drive the Starlette app in-process over ASGI (no socket); a few run `trainfiles serve`."""

import asyncio
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
