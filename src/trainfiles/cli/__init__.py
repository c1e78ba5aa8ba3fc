"""The command line: a thin layer that parses, calls the use cases and prints. `app.py` is
its frame (the one place errors become exit codes); each other module holds one group of
commands, registered when imported, in the order `trainfiles --help` lists them."""

import importlib

from trainfiles.cli.app import app, main

for _group in ("files", "exports", "versions", "store", "conversations", "web"):
    importlib.import_module(f"trainfiles.cli.{_group}")

__all__ = ["app", "main"]
