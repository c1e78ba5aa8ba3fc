"""A scan's findings in path order, each conversation id kept at the first path that holds
it: held in memory up to SPILL findings, beyond that in a private temporary SQLite file, so
a scan of any size holds a bounded number of rows."""

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator

import orjson

from trainfiles.errors import StorageUnavailable

SPILL = 20_000  # findings held in memory (about 0.8 KB each) before they go to disk

Found = tuple[str, dict | None, str | None]  # path, catalog row, why it is refused


class Findings:
    """Every finding of `found`, consumed at once; iterate for them in path order."""

    def __init__(self, found: Iterable[Found]):
        self._held: list[Found] = []
        self._db: sqlite3.Connection | None = None
        try:
            for item in found:
                self._held.append(item)
                if len(self._held) == SPILL:
                    self._spill()
            if self._db is not None:
                self._spill()
        except BaseException:
            self.close()
            raise

    def _spill(self) -> None:
        with _temporary_space():
            if self._db is None:
                # "": a file of its own, unlinked by SQLite as soon as it is opened (nothing
                # is left behind, even by a kill), its pages cached a couple of MB at a time.
                self._db = sqlite3.connect("")
                self._db.execute("create table found (path text, cid text, row blob, reason text)")
            self._db.executemany(
                "insert into found values (?, ?, ?, ?)",
                (
                    (path, row and row["conversation_id"], row and orjson.dumps(row), why)
                    for path, row, why in self._held
                ),
            )
        self._held = []

    def __iter__(self) -> Iterator[Found]:
        """(path, row, reason) in path order; a row whose conversation id a path before it
        holds is refused, naming that path."""
        with _temporary_space():
            if self._db is None:
                ordered = sorted(self._held, key=lambda found: found[0])
                firsts: dict[str, str] = {}
                for path, row, _ in ordered:
                    if row:
                        firsts.setdefault(row["conversation_id"], path)
            else:
                firsts = dict(
                    self._db.execute(
                        "select cid, min(path) from found where cid is not null group by cid having count(*) > 1"
                    )
                )
                ordered = (
                    (path, row and orjson.loads(row), why)
                    for path, row, why in self._db.execute("select path, row, reason from found order by path")
                )
            for path, row, why in ordered:
                first = firsts.get(row["conversation_id"]) if row else None
                if first is not None and first != path:
                    row, why = None, f"conversation {row['conversation_id']} is also at {first}"
                yield path, row, why

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


@contextlib.contextmanager
def _temporary_space() -> Iterator[None]:
    """SQLite's temporary file failing (no room, no writable folder) as our error, naming
    where it goes: not the catalog's."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        raise StorageUnavailable(
            f"temporary space for a scan of more than {SPILL:,} files: {e} "
            "(SQLITE_TMPDIR or TMPDIR can name a folder with room)"
        ) from e
