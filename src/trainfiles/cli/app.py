"""The command line's frame: the Typer app, the common options, errors turned into one line and an exit code, shared option types and output helpers."""

import functools
import gc
import inspect
import os
import sqlite3
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from trainfiles import __version__
from trainfiles.cli import arguments
from trainfiles.core.text import encodes, printable
from trainfiles.errors import InvalidInput, StorageUnavailable, TrainfilesError


class _Group(TyperGroup):
    """Turns our exceptions into one line on stderr and the exit code of `cli.md`; with
    `--json`, also into one JSON object on stdout."""

    def parse_args(self, ctx, args):
        for flag in ("--install-completion", "--show-completion"):
            if flag in args[:-1] and not args[args.index(flag) + 1].startswith("-"):
                # Typer takes the shell from the environment, and would install for it silently.
                shell = args[args.index(flag) + 1]
                raise typer.BadParameter(f"{flag} takes no shell: it is for the shell it runs in (run it from {shell})")
        # Every word of the line, for the checks and the error reports of `invoke` (the
        # context's meta is shared with the command's).
        ctx.meta[ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        args = ctx.meta.get(ARGS, [])
        as_json = "--json" in args[: args.index("--") if "--" in args else len(args)]
        try:
            _refuse_unusable([*args, *(v for v in ctx.params.values() if isinstance(v, str))])
            return super().invoke(ctx)
        except TrainfilesError as e:
            _fail(ctx, e, as_json)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # The reader of our output (`| head`) has all it wanted.
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            _fail(ctx, TrainfilesError("interrupted"), as_json, code=130)
        except sqlite3.DatabaseError as e:  # a query after the catalog opened: disk full, corrupt pages
            _fail(ctx, StorageUnavailable(f"catalog {getattr(ctx.obj, 'catalog', '')}: {e}"), as_json)
        except Exception as e:
            if isinstance(e, typer.TyperException):  # a usage error the framework reports itself
                if as_json:
                    _json({"error": {"exit": e.exit_code, "kind": "usage", "message": e.format_message(), "items": []}})
                raise
            _fail(ctx, TrainfilesError(f"internal error: {type(e).__name__}: {e}"), as_json)


def _refuse_unusable(values: list[str]) -> None:
    """Arguments holding bytes that are not UTF-8 (surrogate escapes from the OS) can be
    neither stored nor printed: refuse them, shown as the bytes they were. A NUL, which no
    path or name can hold, is refused too (only a caller in-process can pass one)."""
    if bad := [printable(v) for v in values if not encodes(v)]:
        raise InvalidInput("not valid UTF-8: ", bad)
    if bad := [printable(v) for v in values if "\0" in v]:
        raise InvalidInput("contains a NUL character: ", bad)


def _fail(ctx, error: TrainfilesError, as_json: bool, code: int | None = None):
    code = error.exit_code if code is None else code
    settings = ctx.obj
    debug = getattr(settings, "debug", False)
    if debug:
        traceback.print_exc(file=sys.stderr)
    message = printable(str(error))
    if as_json:
        items = [printable(item) for item in error.items]
        _json({"error": {"exit": code, "kind": error.kind, "message": message, "items": items}})
    hint = " (run with --debug for the traceback)" if code == 1 and not debug else ""
    print(f"Error: {message}{hint}", file=sys.stderr)
    raise typer.Exit(code)


class _Command(TyperCommand):
    """Help that reads like a man page: whole one-line summaries, arguments by name, and
    where the common options go."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":  # by its name: `FILE`, `[FILE]`
                pieces.append(_shown(param) if param.required else f"[{_shown(param)}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx, formatter) -> None:
        """Arguments by their name alone (`FILE`, not `FILE <str>`), then the options."""
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                sections["Arguments"].append((_shown(param), record[1]))
            else:
                sections["Options"].append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)

    def get_short_help_str(self, limit: int = 0) -> str:
        return " ".join((self.help or "").split("\n\n")[0].split())

    def format_epilog(self, ctx, formatter) -> None:
        formatter.write_paragraph()
        formatter.write_text(COMMON_OPTIONS)


def _shown(argument) -> str:
    """An argument as help names it: its metavar (`FILE`), else its name in capitals."""
    return argument.metavar or (argument.name or "").upper()


COMMON_OPTIONS = (
    "--catalog PATH, --store URL, --user NAME and --debug (see `trainfiles --help`) go before or after the command."
)


ARGS = "trainfiles.args"


JSON_BEFORE = "trainfiles.json"  # `--json` given before the command
GIVEN_BEFORE = "trainfiles.common"  # the common options given before it


def _command(group: typer.Typer, name: str | None = None):
    """Register a command, with the common options it takes after its name too."""

    def register(function):
        return group.command(name, cls=_Command)(_with_common_options(function))

    return register


# The common options, accepted after the command as well as before it: declared (hidden, as
# `--help` of the group shows them) on every command, and merged over the group's.
CatalogOption = Annotated[str | None, typer.Option("--catalog", metavar="PATH", hidden=True)]


StoreOption = Annotated[str | None, typer.Option("--store", metavar="URL", hidden=True)]


UserOption = Annotated[str | None, typer.Option("--user", metavar="NAME", hidden=True)]


DebugOption = Annotated[bool, typer.Option("--debug", hidden=True)]


COMMON = {
    "catalog": (CatalogOption, None),
    "store": (StoreOption, None),
    "user": (UserOption, None),
    "debug": (DebugOption, False),
}


def _over(before: dict, after: dict) -> dict:
    """The common options given later over those given earlier on the line."""
    return {name: after[name] if after[name] not in (None, False) else before.get(name) for name in COMMON}


def _with_common_options(function):
    """`function` with the common options as parameters of its own: Typer reads them from its
    signature. Given after the command, they win over those given before it."""
    signature = inspect.signature(function)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, (annotation, default) in COMMON.items()
    ]
    takes_json = "json" in signature.parameters

    @functools.wraps(function)
    def command(ctx: typer.Context, **kwargs):
        from trainfiles.settings import resolve

        merged = _over(ctx.meta.get(GIVEN_BEFORE, {}), {name: kwargs.pop(name) for name in COMMON})
        # Resolved once, from both: the root's too, which reports errors (a traceback under --debug).
        ctx.obj = ctx.find_root().obj = resolve(
            merged["catalog"], merged["store"], merged["user"], bool(merged["debug"])
        )
        if takes_json and ctx.meta.get(JSON_BEFORE):
            kwargs["json"] = True
        return function(ctx, **kwargs)

    command.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {**function.__annotations__, **{p.name: p.annotation for p in extra}}
    return command


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Aggregate enriched conversations into LoRA training files, recorded in a SQLite catalog.\n\n"
    "Start with `trainfiles conversations scan FOLDER`, then `trainfiles create --name NAME --batch BATCH_ID`. "
    "FILE, in every command, is a training file's name, id or unique id prefix (4 characters or more). "
    "The options below go before or after the command; --json, where a command has it, too.",
)


conversations_app = typer.Typer(no_args_is_help=True, help="Register, list and show source conversations.")


app.add_typer(conversations_app, name="conversations")


def _show_version(value: bool) -> None:
    if value:
        print(f"trainfiles {__version__}")
        raise typer.Exit()


@app.callback()
def _settings(
    ctx: typer.Context,
    catalog: Annotated[
        str | None, typer.Option(envvar="TRAINFILES_CATALOG", metavar="PATH", help="Catalog SQLite file.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            envvar="TRAINFILES_STORE", metavar="URL", help="Where training files are stored: a folder or fsspec URL."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option(envvar="TRAINFILES_USER", metavar="NAME", help="Who is acting (default: login name).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Print tracebacks of internal errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", hidden=True)] = False,
):

    # Resolved by the command, with what it was given after its name (which wins).
    ctx.meta[GIVEN_BEFORE] = {"catalog": catalog, "store": store, "user": user, "debug": debug}
    ctx.meta[JSON_BEFORE] = json


@conversations_app.callback()
def _conversations_options(
    ctx: typer.Context,
    catalog: CatalogOption = None,
    store: StoreOption = None,
    user: UserOption = None,
    debug: DebugOption = False,
    json: Annotated[bool, typer.Option("--json", hidden=True)] = False,
):
    """The common options and `--json` between `conversations` and its command, too."""
    given = {"catalog": catalog, "store": store, "user": user, "debug": debug}
    ctx.meta[GIVEN_BEFORE] = _over(ctx.meta.get(GIVEN_BEFORE, {}), given)
    ctx.meta[JSON_BEFORE] = ctx.meta.get(JSON_BEFORE) or json


def _conversations():
    from trainfiles.usecases import conversations

    return conversations


def _files():
    from trainfiles.usecases import training_files

    return training_files


def _json(value: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _complete_file(ctx: typer.Context, incomplete: str) -> list[str]:
    from trainfiles.settings import resolve

    root = ctx.find_root().params
    settings = resolve(root.get("catalog"), root.get("store"), root.get("user"), False)
    from trainfiles.usecases import finding

    return finding.completions(settings, incomplete)


FileArg = Annotated[
    str,
    typer.Argument(
        metavar="FILE",
        help="A training file's name, id or unique id prefix (4 characters or more).",
        autocompletion=_complete_file,
    ),
]


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


Csv = Annotated[bool, typer.Option("--csv", help="Print CSV with a header row.")]


Tsv = Annotated[bool, typer.Option("--tsv", help="Print tab-separated values with a header row.")]


Nl = Annotated[bool, typer.Option("--nl", help="Print newline-delimited JSON: one object per line.")]


def _choice(flag: str, values: tuple[str, ...], metavar: str, help: str):
    """An option taking one of `values` (any case), completed by the shell."""
    return typer.Option(
        flag,
        metavar=metavar,
        parser=arguments.choice(values),
        autocompletion=lambda incomplete: [v for v in values if v.startswith(incomplete.lower())],
        help=f"{help} One of: {', '.join(values)}.",
    )


def _records(records: list[dict], json: bool, csv: bool, tsv: bool, nl: bool, human, empty) -> None:
    """Records as JSON, CSV, TSV, JSON lines, or for people `human(records)`, or `empty()`
    (what to do) when there are none."""
    given = [flag for flag, on in (("--json", json), ("--csv", csv), ("--tsv", tsv), ("--nl", nl)) if on]
    if len(given) > 1:
        raise typer.BadParameter(f"give one of --json, --csv, --tsv or --nl (got {', '.join(given)})")
    if json:
        _json(records)
    elif csv or tsv or nl:
        from trainfiles.cli import tabular

        sys.stdout.write(tabular.lines(records) if nl else tabular.delimited(records, "," if csv else "\t"))
    elif records:
        sys.stdout.write(human(records))
    else:
        print(empty())


def main() -> None:
    """Console entry point: runs the command, whose exit code Typer raises as SystemExit."""
    try:
        app()
    finally:
        # What the command made is about to go: the collector need not walk it at exit
        # (50 ms of a 0.3 s `list`).
        gc.freeze()
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # a reader such as `head` left early: not our failure
            # As the Python docs advise (signal, "Note on SIGPIPE"): the exit's own flush
            # then writes nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
