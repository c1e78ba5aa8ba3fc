"""A version's two outputs, written in one pass whatever their size.

Each output is a head, a body of conversations and a tail (builder.py). A body is built from
pieces, in order: conversations rendered as they were read (spooled to local files, never
held in memory), and the parent version's conversations copied as bytes (never parsed).
Staging writes head, pieces and tail under the version's key and hashes them on the way; a
parent whose bytes differ from its commit stops the write.
"""

import contextlib
import glob
import hashlib
import os
import tempfile
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from trainfiles import storage
from trainfiles.core import builder
from trainfiles.errors import Conflict
from trainfiles.storage import filecopy
from trainfiles.storage.ahead import Behind, ahead
from trainfiles.storage.filecopy import FileRange
from trainfiles.store import commits

KINDS = commits.KINDS


class Placed(NamedTuple):
    """A conversation rendered by a worker process into its own spools: where its JSON entry
    and its JSONL lines are (file, offset, length)."""

    json: tuple[str, int, int]
    jsonl: tuple[str, int, int]


class Spool:
    """Conversations rendered by this command, in a local temporary file per output, or
    placed by worker processes in spools of their own (`place`) named after these."""

    def __init__(self, folder: str | None):
        self.paths, self.files = {}, {}
        self.count = 0
        self.rows = 0
        # Where placed entries are, six numbers each (file, offset, length for the JSON
        # entry, then for the JSONL lines): a file may hold 100,000.
        self.placed = array("q")
        self.workers: dict[str, int] = {}  # worker spool path -> its number in `placed`
        try:
            if folder:
                os.makedirs(folder, exist_ok=True)
            for kind in KINDS:
                fd, self.paths[kind] = tempfile.mkstemp(dir=folder, prefix=".tmp-spool-", suffix=f".{kind}")
                self.files[kind] = os.fdopen(fd, "wb")
        except OSError as e:
            self.remove()
            raise storage.failure(folder or tempfile.gettempdir(), e) from e
        # Written on another thread: a quarter of a create's reading and rendering was spent
        # in these writes, which need no GIL.
        self._writes: Behind[tuple[bytes, bytes, bytes]] = Behind(self._write, depth=64)

    def append(self, entry: dict) -> None:
        """Render one conversation entry into both spools (both rendered before either is written)."""
        json_entry, (jsonl_lines, rows) = builder.json_entry(entry), builder.jsonl_entry(entry)
        self.add(json_entry, jsonl_lines, rows)

    def add(self, json_entry: bytes, jsonl_lines: bytes, rows: int) -> None:
        """One conversation already rendered: its JSON entry and its `rows` JSONL lines."""
        self._writes.put((builder.JSON_SEPARATOR if self.count else b"", json_entry, jsonl_lines))
        self.count += 1
        self.rows += rows

    def place(self, placed: Placed, rows: int) -> None:
        """One conversation a worker rendered into its own spools (never mixed with `add`)."""
        for path, offset, length in placed:
            self.placed.extend((self.workers.setdefault(path, len(self.workers)), offset, length))
        self.count += 1
        self.rows += rows

    def worker_prefix(self) -> str:
        """Where worker processes put their spools: beside these, under names `remove` removes."""
        return self.paths["json"].removesuffix(".json") + "-worker-"

    def _write(self, parts: tuple[bytes, bytes, bytes]) -> None:
        separator, json_entry, jsonl_lines = parts
        try:
            self.files["json"].write(separator)
            self.files["json"].write(json_entry)
            self.files["jsonl"].write(jsonl_lines)
        except OSError as e:  # a full disk under the spool, most likely
            raise storage.failure(self.paths["json"], e) from e

    def finish(self) -> None:
        self._writes.close()
        try:
            for f in self.files.values():
                f.close()
        except OSError as e:
            raise storage.failure(self.paths["json"], e) from e

    def remove(self) -> None:
        if hasattr(self, "_writes"):
            with contextlib.suppress(Exception):
                self._writes.close()
        for kind in self.paths:
            with contextlib.suppress(OSError):
                self.files[kind].close()
            with contextlib.suppress(OSError):
                os.unlink(self.paths[kind])
        if "json" in self.paths:
            for path in glob.glob(glob.escape(self.worker_prefix()) + "*"):
                with contextlib.suppress(OSError):
                    os.unlink(path)


@contextlib.contextmanager
def spool(store: str, file_id: str) -> Iterator[Spool]:
    """A spool in the file's folder on a local store (gc removes one a kill leaves), in the
    system's temporary folder otherwise. At the end it is removed, and so are the folders
    it made if nothing else was written in them (a change that failed)."""
    folder = os.path.dirname(commits.confined(store, f"{file_id}/-")) if storage.is_local(store) else None
    with storage.removing_new_folders(os.path.join(folder, "-") if folder else store, always=True):
        s = Spool(folder)
        try:
            yield s
        finally:
            s.remove()


@dataclass(frozen=True)
class Parent:
    """The conversations of a stored version, copied as bytes from its outputs, each checked
    against the sha256 its commit recorded as the whole object streams past."""

    store: str
    outputs: dict  # the version's commit `outputs`: {kind: {"key", "size", "sha256"}}
    drop: frozenset[str] = frozenset()  # conversation ids left out
    trusted: frozenset[str] = frozenset()  # kinds this machine wrote and nothing has touched since

    def url(self, kind: str) -> str:
        return storage.join(self.store, self.outputs[kind]["key"])

    def rows(self) -> int:
        """The JSONL rows this piece gives: the parent's count from its `_meta` line (one
        small read), less the rows of dropped conversations (counted in a pass of its own)."""
        if not self.drop:
            return orjson.loads(storage.first_line(self.url("jsonl")))["_meta"]["total_pairs"]
        jsonl = storage.lines(self.url("jsonl"))
        total = orjson.loads(next(jsonl))["_meta"]["total_pairs"]
        return total - sum(1 for line in jsonl if _row_id(line) in self.drop)


@dataclass
class Composition:
    """What to stage for a version: the heads, and the body's pieces in order (Spools of
    rendered conversations, Parents to copy from)."""

    json_head: bytes
    jsonl_meta: Callable[[int], bytes]  # the JSONL's head, given its row count
    body: list = field(default_factory=list)


def stage(store: str, file_id: str, version: int, composition: Composition) -> dict[str, dict]:
    """Write both outputs under a new folder of the version; returns the commit's `outputs`.

    Nothing is left behind by a failure (the folder is the writer's own)."""
    folder = commits.output_folder(file_id, version)
    keys = {kind: f"{folder}/training.{kind}" for kind in KINDS}
    # Both outputs at once: reading, hashing and writing release the GIL, so each takes a core.
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {
            kind: pool.submit(_write, commits.confined(store, keys[kind]), keys[kind], kind, composition)
            for kind in KINDS
        }
        wait(futures.values())
    staged = {kind: f.result() for kind, f in futures.items() if f.exception() is None}
    failed = [f.exception() for f in futures.values() if f.exception() is not None]
    if failed:
        commits.unstage(store, staged)
        storage.remove_empty_folder(storage.join(store, folder))
        raise failed[0]
    return staged


def _write(url: str, key: str, kind: str, composition: Composition) -> dict:
    h = hashlib.sha256()
    size = 0
    with (
        storage.atomic_writers({kind: url}, into_special=False) as writers,
        ThreadPoolExecutor(max_workers=1) as hasher,
    ):
        # Chunks are read (and the parent's checked) on one thread, hashed and written on this one.
        for chunk in ahead(content(composition, kind), depth=8):
            if isinstance(chunk, FileRange):
                _copy_hashing(writers[kind], chunk, h, hasher, url)
                size += chunk.end - chunk.start
            else:
                h.update(chunk)
                writers[kind](chunk)
                size += len(chunk)
    return {"key": key, "size": size, "sha256": h.hexdigest()}


def _copy_hashing(write, part: FileRange, h, hasher: ThreadPoolExecutor, url: str) -> None:
    """Copy `part` by the kernel; each window is hashed on `hasher` as read back from the new
    file while the next is copied, so the record describes the bytes written. At most two
    windows are in hand, so a failure on either side ends the other soon."""
    buffer = bytearray(8 << 20)
    pending: deque = deque()

    def copied(fd: int, offset: int, length: int) -> None:
        while len(pending) > 1:
            pending.popleft().result()
        pending.append(hasher.submit(filecopy.hash_written, fd, offset, length, h, buffer))

    write(part, copied)
    try:
        while pending:
            pending.popleft().result()
    except OSError as e:  # reading back what was just written
        raise storage.failure(url, e) from e


def content(composition: Composition, kind: str) -> Iterator[bytes]:
    """One output of a composition, in chunks: head, conversations, tail."""
    if kind == "json":
        yield composition.json_head
    else:
        yield composition.jsonl_meta(sum(_rows(piece) for piece in composition.body))
    wrote = False
    for piece in composition.body:
        for run in _runs(piece, kind):
            if kind == "json" and wrote:
                yield builder.JSON_SEPARATOR
            yield from run
            wrote = True
    if kind == "json":
        yield builder.JSON_TAIL


def _rows(piece: "Spool | Parent") -> int:
    return piece.rows if isinstance(piece, Spool) else piece.rows()


def _runs(piece: "Spool | Parent", kind: str) -> Iterator[Iterator[bytes]]:
    """The piece's conversations as runs of chunks, each run whole entries: for the JSON,
    the separator goes between runs."""
    if isinstance(piece, Spool):
        if piece.placed:
            yield from _placed(piece, kind)
        elif piece.count:
            yield storage.chunks(piece.paths[kind])
    elif piece.drop:
        yield from (_filtered_json if kind == "json" else _filtered_jsonl)(piece)
    else:
        yield (_json_body if kind == "json" else _jsonl_body)(piece)


RUN = storage.CHUNK  # bytes of placed entries read at a time, at most


def _placed(spool: Spool, kind: str) -> Iterator[Iterator[bytes]]:
    """The entries workers placed, in order, one run per stretch of bytes that follow each
    other in one worker's spool (a worker writes each JSON entry after a separator, so a
    stretch of JSON entries holds the separators between them)."""
    gap = len(builder.JSON_SEPARATOR) if kind == "json" else 0
    files: dict[str, int] = {}
    try:
        paths = list(spool.workers)
        path, start, end = None, 0, 0
        numbers = spool.placed
        for at in range(0 if kind == "json" else 3, len(numbers), 6):
            where, offset, length = paths[numbers[at]], numbers[at + 1], numbers[at + 2]
            if where == path and offset == end + gap and end - start < RUN:
                end = offset + length
                continue
            if path is not None:
                yield iter([_read(files, path, start, end)])
            path, start, end = where, offset, offset + length
        if path is not None:
            yield iter([_read(files, path, start, end)])
    finally:
        for fd in files.values():
            os.close(fd)


def _read(files: dict[str, int], path: str, start: int, end: int) -> bytes:
    if path not in files:
        files[path] = os.open(path, os.O_RDONLY)
    data = os.pread(files[path], end - start, start)
    if len(data) != end - start:
        raise Conflict(f"{path}: a worker's spool ends before what it placed there")
    return data


def verified(url: str, sha256: str | None, items: Iterator[bytes]) -> Iterator[bytes]:
    """`items` (an object's chunks or lines, in order), hashed on the way: when they end,
    their sha256 must be `sha256`, else Conflict naming the object. None: trusted as it is."""
    h = hashlib.sha256() if sha256 else None
    for item in items:
        if h is not None:
            h.update(item)
        yield item
    if h is not None and h.hexdigest() != sha256:
        raise Conflict(
            f"{url} differs from its commit (sha256 {h.hexdigest()[:12]}, expected {sha256[:12]}): run `trainfiles verify`"
        )


def _parent_stream(parent: Parent, kind: str, read) -> Iterator[bytes]:
    url = parent.url(kind)
    expected = None if kind in parent.trusted else parent.outputs[kind]["sha256"]
    return verified(url, expected, read(url))


def _json_body(parent: "Parent") -> Iterator[bytes | FileRange]:
    """Everything between the parent JSON's head and tail, in large chunks (a range of the
    file when it is local and trusted)."""
    if "json" in parent.trusted:
        yield _trusted_range(parent, "json")
        return
    head, tail, skipping = b"", b"", True
    for chunk in _parent_stream(parent, "json", storage.chunks):
        if skipping:
            head += chunk
            at = head.find(builder.JSON_ENTRIES_START)
            if at < 0:
                continue
            chunk, skipping = head[at + len(builder.JSON_ENTRIES_START) :], False
        chunk = tail + chunk
        # Hold back what may be the tail until the object ends.
        tail = chunk[-len(builder.JSON_TAIL) :]
        if chunk[: -len(builder.JSON_TAIL)]:
            yield chunk[: -len(builder.JSON_TAIL)]
    if tail != builder.JSON_TAIL:
        raise Conflict(f"{parent.url('json')} does not end as a training JSON does")


def _jsonl_body(parent: "Parent") -> Iterator[bytes | FileRange]:
    """The parent JSONL without its `_meta` line, in large chunks (a range of the file when
    it is local and trusted)."""
    if "jsonl" in parent.trusted:
        yield _trusted_range(parent, "jsonl")
        return
    first = True
    for chunk in _parent_stream(parent, "jsonl", storage.chunks):
        if first:
            chunk, first = chunk[chunk.index(b"\n") + 1 :], False
        yield chunk


def _trusted_range(parent: "Parent", kind: str) -> FileRange:
    """Where the conversations are in an output this machine wrote (a local file): after
    the head's last line, before the JSON's tail."""
    path = storage.join(parent.url(kind))
    mark, tail = (builder.JSON_ENTRIES_START, builder.JSON_TAIL) if kind == "json" else (b"\n", b"")
    end = parent.outputs[kind]["size"] - len(tail)
    try:
        with open(path, "rb") as f:
            head = b""
            while (at := head.find(mark)) < 0 and (chunk := f.read(64 << 10)):
                head += chunk
            ends_well = os.pread(f.fileno(), len(tail), end) == tail
    except OSError as e:
        raise storage.failure(path, e) from e
    if at < 0 or at + len(mark) > end or not ends_well:
        raise Conflict(f"{parent.url(kind)} is not shaped as a training file's {kind} output")
    return FileRange(path, at + len(mark), end)


ENTRY_START = b"    {\n"
ENTRY_ENDS = (b"    },\n", b"    }\n")
ID_FIELD = b'"conversation_id": "'
ROW_ID_FIELD = b'"conversation_id":"'


def _filtered_json(parent: "Parent") -> Iterator[Iterator[bytes]]:
    """The parent JSON's entries but the dropped ones, one run each: an entry is the lines
    from `    {` to `    }` (deeper lines are indented more, so none inside has either shape)."""
    entry: list[bytes] = []
    in_body = False
    for line in _parent_stream(parent, "json", storage.lines):
        if not in_body:
            in_body = line == builder.JSON_ENTRIES_START[1:]
        elif line in ENTRY_ENDS:
            entry.append(b"    }")
            if _entry_id(entry) not in parent.drop:
                yield iter([b"".join(entry)])
            entry = []
        elif entry or line == ENTRY_START:
            entry.append(line)


def _entry_id(entry: list[bytes]) -> str:
    head = b"".join(entry[:3])
    at = head.index(ID_FIELD) + len(ID_FIELD)
    return head[at : at + 36].decode()


def _filtered_jsonl(parent: "Parent") -> Iterator[Iterator[bytes]]:
    lines = _parent_stream(parent, "jsonl", storage.lines)
    next(lines)  # the parent's `_meta` line
    yield (line for line in lines if _row_id(line) not in parent.drop)


def _row_id(line: bytes) -> str:
    at = line.index(ROW_ID_FIELD) + len(ROW_ID_FIELD)
    return line[at : at + 36].decode()
