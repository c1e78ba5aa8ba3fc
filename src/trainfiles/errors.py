"""Our exceptions. Each carries the exit code that `cli.md` assigns to it."""

from collections.abc import Iterable

NAMED = 20  # offenders a message names before "and N more"


def named(items: list[str], sep: str = ", ") -> str:
    """The first NAMED items joined by `sep`, then "and N more": a message of bounded length."""
    shown = sep.join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


class TrainfilesError(Exception):
    """Base class: a failure the user can act on, reported as one line.

    `items` lists every offender (ids, paths, rows); the message is `message` followed by
    the first of them and `suffix`, so it stays one line of bounded length however many
    there are, while `--json` still reports them all.
    """

    exit_code = 1
    kind = "internal"

    def __init__(self, message: str, items: Iterable[str] | None = None, *, sep: str = ", ", suffix: str = ""):
        self.items = list(items) if items is not None else []
        super().__init__(message + (named(self.items, sep) if items is not None else "") + suffix)


class UsageError(TrainfilesError):
    """An option value no command can use, such as an empty --catalog."""

    exit_code = 2
    kind = "usage"


class InvalidInput(TrainfilesError):
    """Ineligible conversations, a bad manifest or ids file, a bad name."""

    exit_code = 3
    kind = "invalid_input"


class NotFound(TrainfilesError):
    """A training file, conversation id or source file does not exist."""

    exit_code = 4
    kind = "not_found"


class Conflict(TrainfilesError):
    """Name taken, conversation already in the file, duplicate ids, file archived."""

    exit_code = 5
    kind = "conflict"


class StorageUnavailable(TrainfilesError):
    """The store, a source or the catalog cannot be reached or used."""

    exit_code = 6
    kind = "storage_unavailable"


class PermissionDenied(TrainfilesError):
    """Changing (adding to, archiving) a training file created by another user."""

    exit_code = 7
    kind = "permission_denied"
