"""A real S3 endpoint on 127.0.0.1 for tests and benchmarks: moto's server in a thread.

Built like moto's `ThreadedMotoServer`, plus what the fault tests and the benchmark need:
it stops and starts again on the same port (moto keeps the objects in this process), a
`fault` hook can answer any request with an error before moto sees it, and `latency` delays
every request as a distant server would. S3 requests go straight to moto's S3 application:
moto's dispatcher works out the service of each request under one lock (about 4 ms),
which would make the server, not the client, what the benchmark measures.

Conditional writes (`If-None-Match: *`) are made one at a time: moto checks the condition,
then writes, so two racing writers could both win; S3 itself decides atomically, and the
concurrency tests need a server that does as S3 does."""

import logging
import threading
import time
import urllib.request
from collections.abc import Callable

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

# werkzeug logs each request to stderr, which would land in the CLI runner's output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

UNAVAILABLE = ("503 Service Unavailable", "ServiceUnavailable")


class S3Server:
    """Started on a free port by the constructor; `endpoint` stays the same across restarts."""

    def __init__(self):
        # Answers a request with an error instead of moto: True for a 503, or (status, code).
        self.fault: Callable[[dict], bool | tuple[str, str]] | None = None
        self.latency = 0.0  # seconds added to every request
        self._conditional = threading.Lock()
        self._moto = DomainDispatcherApplication(create_backend_app)  # for /moto-api/reset
        self._s3 = create_backend_app("s3")
        self.port = 0
        self.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self._app, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.port
        # A short poll makes stop() quick; the default waits up to half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket: new connections are refused (moto keeps its objects)."""
        self._server.shutdown()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def reset(self) -> None:
        """Forget every bucket and object."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).close()

    def _app(self, environ, start_response):
        time.sleep(self.latency)
        fault = self.fault and self.fault(environ)
        if fault:
            status, code = UNAVAILABLE if fault is True else fault
            start_response(status, [("Content-Type", "application/xml")])
            return [f"<Error><Code>{code}</Code><Message>injected failure</Message></Error>".encode()]
        app = self._moto if environ["PATH_INFO"].startswith("/moto-api/") else self._s3
        if environ.get("HTTP_IF_NONE_MATCH") and environ["REQUEST_METHOD"] in ("PUT", "POST"):
            with self._conditional:  # the whole answer inside: moto writes while it answers
                return list(app(environ, start_response))
        return app(environ, start_response)
