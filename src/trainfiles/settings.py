"""Where the catalog and the store live, and who is acting: option > environment > default."""

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from trainfiles.errors import NotFound, UsageError

APP_NAME = "trainfiles"


def _data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # No passwd entry (some containers): fall back to a stable placeholder.
        return "unknown"


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one command."""

    catalog: str
    store: str
    user: str
    debug: bool = False


def resolve(catalog: str | None, store: str | None, user: str | None, debug: bool) -> Settings:
    """Fill each unset option from its environment variable, then from the default.

    Typer already reads `TRAINFILES_*` into the options; here only defaults remain. An
    empty value is refused: it would mean a temporary catalog or the current folder.
    """
    empty = [f"--{name}" for name, value in (("catalog", catalog), ("store", store), ("user", user)) if value == ""]
    if empty:
        raise UsageError("must not be empty: ", empty)
    if catalog is not None and not Path(catalog).expanduser().absolute().parent.is_dir():
        raise NotFound(
            f"no folder {Path(catalog).expanduser().absolute().parent} for the catalog {catalog}: make it first, or check --catalog"
        )
    if catalog is None or store is None:
        data = _data_dir()
        catalog = catalog or str(data / "catalog.db")
        store = store or str(data / "training-files")
    debug = debug or os.environ.get("TRAINFILES_DEBUG", "") not in ("", "0")
    return Settings(catalog=catalog, store=store, user=user or _login(), debug=debug)
