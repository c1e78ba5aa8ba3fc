"""Where each page and download lives: relative file names in the static report (which opens
from file:// and moves as one folder), URLs on the server. Files are named by id, version
and format, never by a path of the store."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from trainfiles import TrainingFile

SIGNED_FOR = 7 * 24 * 3600  # the longest an S3 presigned URL may live


class Links:
    """The server's URLs, or with `report` the report's relative names from a page `depth`
    folders down (0: index.html; 1: files/ and conversations/)."""

    def __init__(self, report: bool = False, depth: int = 0, expires: int = SIGNED_FOR):
        self.report, self.depth, self.expires = report, depth, expires
        self.root = "../" * depth if report else "/"
        self.signed_until: str | None = None  # set once a presigned link is made

    def at(self, depth: int) -> Links:
        """The same links, for pages `depth` folders down."""
        return Links(self.report, depth, self.expires)

    def index(self) -> str:
        return self.root + ("index.html" if self.report else "")

    def static(self, name: str) -> str:
        return f"{self.root}static/{name}"

    def file(self, file_id: str, page: int = 1) -> str:
        if self.report:
            return f"{self.root}files/{file_id}{'' if page == 1 else f'-{page}'}.html"
        return f"/files/{file_id}" + (f"?page={page}" if page > 1 else "")

    def conversation(self, conversation_id: str) -> str:
        if self.report:
            return f"{self.root}conversations/{conversation_id}.html"
        return f"/conversations/{conversation_id}"

    def conversations(self, **params: object) -> str:
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return "/conversations" + (f"?{query}" if query else "")

    def download(self, file: TrainingFile, fmt: str, version: int | None = None) -> str:
        """A version's output: on the server, any version in any export format; in the report,
        the latest stored json or jsonl (a file:// link on a local store, else presigned)."""
        if not self.report:
            return f"/files/{file.id}/download?" + urlencode({"format": fmt, "version": version or file.version})
        path = file.json_file_path if fmt == "json" else file.jsonl_file_path
        if "://" not in path:
            return Path(path).resolve().as_uri()
        self.signed_until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + self.expires))
        return file.url(fmt, expires=self.expires)
