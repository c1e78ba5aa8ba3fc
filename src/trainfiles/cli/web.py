"""`report` and `serve`: the pages, as a static site or live. The web libraries are imported
inside the commands, so the rest of the command line starts without them (the `web` extra)."""

import sys
from typing import Annotated

import typer

from trainfiles.cli import arguments
from trainfiles.cli.app import JsonFlag, _command, _json, app
from trainfiles.cli.exports import TokenizerOption
from trainfiles.errors import UsageError

INSTALL = "pip install 'trainfiles[web]'"


def _web(module: str):
    """trainfiles.web.<module>, or a usage error saying how to install what it needs."""
    import importlib

    try:
        return importlib.import_module(f"trainfiles.web.{module}")
    except ImportError as e:
        raise UsageError(f"the pages need the web extra ({e.name} is missing): {INSTALL}") from None


def _session(ctx: typer.Context):
    from trainfiles import Trainfiles

    settings = ctx.obj
    return Trainfiles(catalog=settings.catalog, store=settings.store, user=settings.user)


@_command(app)
def report(
    ctx: typer.Context,
    files: Annotated[
        list[str] | None,
        typer.Argument(metavar="FILE...", help="Training files to show (names, ids or prefixes); default: every one."),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="DIR", help="The folder to write (replaced if a report).")
    ] = "report",
    tokenizer: TokenizerOption = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            parser=arguments.whole(1),
            metavar="N",
            help="Show what this context length loses in each row mode, as `trainfiles check` does.",
        ),
    ] = None,
    json: JsonFlag = False,
):
    """Write the pages as a static site: an index of training files, a page per file (statistics,
    charts, versions, members) and per conversation. Opens from file://, needs no network.

    Example: trainfiles report -o site && open site/index.html
    """
    done = _web("report").write(_session(ctx), output, files or [], tokenizer=tokenizer, max_tokens=max_tokens)
    if json:
        _json(done)
    else:
        print(f"wrote {done['pages']} pages to {done['path']}/index.html", file=sys.stderr)


@_command(app)
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="The address to listen on; another than 127.0.0.1 needs --allow-remote.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(parser=arguments.whole(0, 65535), metavar="N", help="The port (0: any free one).")
    ] = 8000,
    read_only: Annotated[bool, typer.Option("--read-only", help="Show the pages, refuse every change.")] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Listen on an address other machines reach; every request then needs the token printed.",
        ),
    ] = False,
):
    """Serve the pages live, with the actions of the command line: create a training file from
    conversations ticked in a table, add to one, archive, rename, describe, restore, download.
    Listens on 127.0.0.1 only, unless told otherwise; Ctrl-C stops it.

    Example: trainfiles serve --port 8000
    """
    _web("serve").run(_session(ctx), host, port, read_only=read_only, allow_remote=allow_remote)
