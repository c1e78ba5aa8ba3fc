"""`trainfiles serve`: the app on uvicorn, on a socket bound here (so `--port 0` can say which
port it got), 127.0.0.1 unless told otherwise. Messages go to stderr; stdout stays empty."""

from __future__ import annotations

import socket

import uvicorn

from trainfiles import Trainfiles
from trainfiles.errors import UsageError
from trainfiles.progress import note
from trainfiles.web.app import create_app
from trainfiles.web.security import LOOPBACK, Guard


def run(tf: Trainfiles, host: str, port: int, *, read_only: bool = False, allow_remote: bool = False) -> None:
    """Serve until interrupted."""
    if host not in LOOPBACK and not allow_remote:
        raise UsageError(
            f"--host {host} may be reachable from other machines: add --allow-remote "
            "(every request then needs the token printed at start)"
        )
    guard = Guard(remote=allow_remote)
    sock = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={guard.access}" if guard.access else "")
    mode = " (read-only)" if read_only else ""
    note(f"serving the training files of {tf.settings.store} as {tf.settings.user}{mode} at {url}")
    note("Ctrl-C stops it")
    app = create_app(tf, read_only=read_only, guard=guard)
    # No log configuration of uvicorn's: its access log would go to stdout.
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    server.run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a usage error saying why there cannot be one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
