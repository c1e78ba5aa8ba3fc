"""Our exceptions. Each carries the exit code that `cli.md` assigns to it."""


class TrainfilesError(Exception):
    """Base class: a failure the user can act on, reported as one line."""

    exit_code = 1


class InvalidInput(TrainfilesError):
    """Ineligible conversations, a bad manifest or ids file, a bad name."""

    exit_code = 3


class NotFound(TrainfilesError):
    """A training file, conversation id or source file does not exist."""

    exit_code = 4


class Conflict(TrainfilesError):
    """Name taken, conversation already in the file, duplicate ids, file archived."""

    exit_code = 5


class StorageUnavailable(TrainfilesError):
    """The store or a source cannot be reached after retries."""

    exit_code = 6


class PermissionDenied(TrainfilesError):
    """Changing (adding to, archiving) a training file created by another user."""

    exit_code = 7


class UsageError(TrainfilesError):
    """A command line that cannot be carried out as given (exit 2, like a parser's refusal)."""

    exit_code = 2
