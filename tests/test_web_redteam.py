"""Red-team tests of the pages: hostile store contents, forged requests, malformed parameters.
Most drive the Starlette app in-process over ASGI (no socket); a few run `trainfiles serve`."""

import asyncio

import pytest
from test_web import A, Served, demo  # noqa: F401 (a fixture)

from trainfiles import Trainfiles
from trainfiles.web.app import create_app
from trainfiles.web.security import Guard

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
