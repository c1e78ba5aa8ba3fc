"""What keeps the live pages safe on a shared machine or network: a CSRF token per server
that every change must carry, a same-origin check of every change (Origin, else Referer),
and, when other machines may connect, an access token every request must show (as the
query parameter of the URL printed at start, then as a cookie)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

COOKIE = "trainfiles_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The same, as a Host header names them (an IPv6 address in brackets).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class Guard:
    """The secrets of one server run: made at start, never stored."""

    def __init__(self, remote: bool):
        self.csrf = secrets.token_urlsafe(32)
        self.access = secrets.token_urlsafe(24) if remote else None

    def csrf_ok(self, value: object) -> bool:
        return isinstance(value, str) and secrets.compare_digest(value.encode(), self.csrf.encode())

    def access_ok(self, value: str | None) -> bool:
        """Whether a request may see anything: always, unless an access token is required."""
        if self.access is None:
            return True
        return value is not None and secrets.compare_digest(value.encode(), self.access.encode())


def same_origin(origin: str | None, referer: str | None, scheme: str, host: str | None) -> bool:
    """Whether a change comes from a page of this server: its Origin header (else its
    Referer's origin) is this server's scheme and host. Neither header: refused."""
    if not host:
        return False
    claimed = origin if origin else _origin_of(referer)
    return claimed == f"{scheme}://{host}"


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
