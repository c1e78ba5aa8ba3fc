"""A version's members, in file order, kept in an anonymous temporary file rather than in
memory: a training file may hold 100,000 conversations, and each member is a dozen values.

Each member is one line of compact JSON, the bytes its commit record holds, so a record is
written by copying lines; the statistics are tallied as members are appended.
"""

import os
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice

import orjson

from trainfiles import storage
from trainfiles.core.builder import Tally


class Members:
    """Members appended in file order, read back as often as needed."""

    def __init__(self, members: Iterable[dict] = ()):
        try:  # unnamed (unlinked at once): nothing is left behind, even by a kill
            self._file = tempfile.TemporaryFile(prefix="trainfiles-members-")
        except OSError as e:
            raise storage.failure(tempfile.gettempdir(), e) from e
        self._tally = Tally()
        self.extend(members)

    def append(self, member: dict) -> None:
        try:
            self._file.write(orjson.dumps(member, option=orjson.OPT_APPEND_NEWLINE))
        except OSError as e:  # a full temporary folder
            raise storage.failure(tempfile.gettempdir(), e) from e
        self._tally.add(member)

    def extend(self, members: Iterable[dict]) -> None:
        for member in members:
            self.append(member)

    def __len__(self) -> int:
        return self._tally.count

    def statistics(self) -> dict:
        """format-v4's statistics over every member appended."""
        return self._tally.result()

    def lines(self, start: int = 0) -> Iterator[bytes]:
        """Each member's JSON (with its newline), from the `start`-th on. Read whole each
        time; appending again goes on at the end."""
        self._file.flush()
        self._file.seek(0)
        yield from islice(self._file, start, None)
        self._file.seek(0, os.SEEK_END)

    def __iter__(self) -> Iterator[dict]:
        return self.after(0)

    def after(self, start: int) -> Iterator[dict]:
        """The members from the `start`-th on."""
        return (orjson.loads(line) for line in self.lines(start))

    def json(self, start: int = 0) -> Iterator[bytes]:
        """The members (from the `start`-th on) as one compact JSON array, in chunks: what
        orjson writes for the list."""
        yield b"["
        batch: list[bytes] = []
        first = True
        for line in self.lines(start):
            batch.append(line[:-1])
            if len(batch) == 1000:
                yield (b"" if first else b",") + b",".join(batch)
                batch, first = [], False
        if batch:
            yield (b"" if first else b",") + b",".join(batch)
        yield b"]"


class Tail:
    """The members of a spool from the `start`-th on: those a version added, for its record."""

    def __init__(self, members: Members, start: int):
        self.members, self.start = members, start

    def __iter__(self) -> Iterator[dict]:
        return self.members.after(self.start)

    def json(self) -> Iterator[bytes]:
        return self.members.json(self.start)


def after(members: "Members | list[dict]", start: int) -> Iterable[dict]:
    """Members from the `start`-th on, of a version this process built or one read from the store."""
    return members.after(start) if isinstance(members, Members) else members[start:]
