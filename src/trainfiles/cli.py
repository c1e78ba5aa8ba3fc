"""The command line: parse, call the use case, print. The one place errors become exit codes."""

import os
import sqlite3
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from . import __version__, arguments
from .errors import InvalidInput, StorageUnavailable, TrainfilesError, UsageError
from .text import encodes, printable
from .trainer_formats import FORMATS as TRAINER_FORMATS
from .vocabulary import ENRICHMENT_STATUSES, FILE_SORTS, FILE_STATUSES


class _Group(TyperGroup):
    """Turns our exceptions into one line on stderr and the exit code of `cli.md`; with
    `--json`, also into one JSON object on stdout."""

    def parse_args(self, ctx, args):
        for flag in ("--install-completion", "--show-completion"):
            if flag in args[:-1] and not args[args.index(flag) + 1].startswith("-"):
                # Typer takes the shell from the environment, and would install for it silently.
                shell = args[args.index(flag) + 1]
                raise typer.BadParameter(f"{flag} takes no shell: it is for the shell it runs in (run it from {shell})")
        return super().parse_args(ctx, arguments.relocate(args))

    def invoke(self, ctx):
        args = [*ctx._protected_args, *ctx.args]
        as_json = "--json" in args
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
            if isinstance(e, _click_exceptions()):
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


def _click_exceptions() -> tuple[type, ...]:
    from typer import _click

    return (_click.ClickException,)


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


class _Argument(TyperArgument):
    """An argument shown by its name: `FILE`, `[FILE]`, never `{FILE}` or `FILE <str>`."""

    def _usage_display_name(self) -> str:
        return self.display_name_raw if self.required else f"[{self.display_name_raw}]"

    def display_type_rich(self, ctx) -> None:
        return None


class _Command(TyperCommand):
    """Help that reads like a man page: whole one-line summaries, arguments by name, and
    where the common options go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Typer builds the arguments itself, with no way to choose their class.
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.__class__ = _Argument

    def get_short_help_str(self, limit: int = 0) -> str:
        return " ".join((self.help or "").split("\n\n")[0].split())

    def format_epilog(self, ctx, formatter) -> None:
        formatter.write_paragraph()
        formatter.write_text(COMMON_OPTIONS)


COMMON_OPTIONS = (
    "--catalog PATH, --store URL, --user NAME and --debug (see `trainfiles --help`) go before or after the command."
)


def _command(group: typer.Typer, name: str | None = None):
    return group.command(name, cls=_Command)


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
):
    from .settings import resolve

    ctx.obj = resolve(catalog, store, user, debug)


def _conversations():
    from . import conversations

    return conversations


def _files():
    from . import training_files

    return training_files


def _json(value: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _complete_file(ctx: typer.Context, incomplete: str) -> list[str]:
    from .settings import resolve

    root = ctx.find_root().params
    settings = resolve(root.get("catalog"), root.get("store"), root.get("user"), False)
    return _files().completions(settings, incomplete)


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
        from . import tabular

        sys.stdout.write(tabular.lines(records) if nl else tabular.delimited(records, "," if csv else "\t"))
    elif records:
        sys.stdout.write(human(records))
    else:
        print(empty())


# conversations


@_command(conversations_app, "scan")
def conversations_scan(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(metavar="URL", help="Folder or fsspec URL to walk for enriched *.json files.")],
    batch: Annotated[
        str | None,
        typer.Option(metavar="BATCH_ID", help="Record the conversations as members of this generation batch."),
    ] = None,
    json: JsonFlag = False,
):
    """Register every enriched conversation file under a folder or URL.

    Eligible files become `completed`; ineligible ones are listed with the reason (and
    recorded as `validation_failed` when their id is known). Running it again updates.

    Example: trainfiles conversations scan s3://bucket/enriched --batch 2025-12-02
    """
    _report_registration(_conversations().scan(ctx.obj, url, batch), json)


@_command(conversations_app, "import")
def conversations_import(
    ctx: typer.Context,
    manifest: Annotated[
        str,
        typer.Argument(metavar="MANIFEST", help="CSV (header row) or JSON Lines export of the conversations table."),
    ],
    base: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Folder or URL that relative enriched_file_path values are under (default: the manifest's folder).",
        ),
    ] = None,
    allow_outside_base: Annotated[
        bool,
        typer.Option(
            "--allow-outside-base", help="Accept enriched_file_path values outside --base (absolute paths, other URLs)."
        ),
    ] = False,
    json: JsonFlag = False,
):
    """Register or update conversations from the platform's manifest export.

    A manifest value wins over one derived from the file; empty cells mean unknown. Every
    enriched_file_path must lead inside --base unless --allow-outside-base is given.

    Example: trainfiles conversations import conversations.csv --base s3://bucket/enriched
    """
    _report_registration(_conversations().import_manifest(ctx.obj, manifest, base, allow_outside_base), json)


def _report_registration(result: dict, json: bool) -> None:
    if json:
        _json(result)
        return
    print(f"registered {result['registered']}, updated {result['updated']}, invalid {len(result['invalid'])}")
    for item in result["invalid"]:
        print(f"  invalid {item['path']}: {item['reason']}")
    for item in result["moved"]:
        print(f"  moved {item['conversation_id']}: from {item['from']} to {item['to']}")
    for item in result.get("missing_sources", []):
        print(f"  missing source of {item['conversation_id']}: {item['path']} is not there (`create` will refuse it)")


@_command(conversations_app, "list")
def conversations_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        _choice("--status", ENRICHMENT_STATUSES, "STATUS", "Only conversations with this enrichment status."),
    ] = None,
    batch: Annotated[str | None, typer.Option(metavar="BATCH_ID", help="Only conversations of this batch.")] = None,
    json: JsonFlag = False,
    csv: Csv = False,
    tsv: Tsv = False,
    nl: Nl = False,
):
    """List registered conversations with their source file (created_at, then id order).

    Example: trainfiles conversations list --status completed --batch 2025-12-02
    """
    from .render import conversations_table, terminal_width

    records = _conversations().list_conversations(ctx.obj, status, batch)
    filters = " ".join(f"--{name} {value}" for name, value in (("status", status), ("batch", batch)) if value)
    empty = f"No conversations match {filters}" if filters else NO_CONVERSATIONS
    _records(records, json, csv, tsv, nl, lambda rs: conversations_table(rs, terminal_width()), lambda: empty)


NO_CONVERSATIONS = "No conversations registered yet. Register some with: trainfiles conversations scan FOLDER"


@_command(conversations_app, "show")
def conversations_show(
    ctx: typer.Context,
    id: Annotated[
        str, typer.Argument(metavar="ID", help="A conversation id or a unique prefix of it (4 characters or more).")
    ],
    json: JsonFlag = False,
):
    """Show one conversation: its record and the training pairs of its source file.

    Example: trainfiles conversations show 2e6e3685
    """
    rec = _conversations().show(ctx.obj, id)
    if json:
        _json(rec)
    else:
        from .render import conversation_summary

        sys.stdout.write(conversation_summary(rec))


# training files

IdsFile = Annotated[
    str | None,
    typer.Option(
        "--ids-file",
        metavar="PATH",
        help="File of conversation ids or unique prefixes, one per line (`-` for stdin; # comments).",
    ),
]
Ids = Annotated[
    list[str] | None,
    typer.Option(
        "--id", metavar="ID", help="A conversation id or a unique prefix of it (4+ characters); repeat for more."
    ),
]
Batch = Annotated[
    str | None, typer.Option("--batch", metavar="BATCH_ID", help="Every conversation of this generation batch.")
]
SkipInvalid = Annotated[
    bool, typer.Option("--skip-invalid", help="Leave ineligible conversations out and list them, instead of refusing.")
]


def _selection(ids_file: str | None, ids: list[str] | None, batch: str | None):
    from .selection import parse_ids, read_ids_file

    given = [name for name, value in (("--ids-file", ids_file), ("--id", ids), ("--batch", batch)) if value]
    if len(given) != 1:
        raise typer.BadParameter(
            "give exactly one of --ids-file, --id or --batch" + (f" (got {', '.join(given)})" if given else "")
        )
    files = _files()
    if batch:
        return files.Selection(batch=batch)
    return files.Selection(ids=read_ids_file(ids_file) if ids_file else parse_ids(ids, "--id"))


def _report_file(rec: dict, json: bool) -> None:
    if json:
        _json(rec)
        return
    from .render import file_summary, left_out

    for item in rec.get("skipped", []):
        _warn(f"skipped {item['conversation_id']}: {item['reason']}")
    if rec.get("skipped"):
        _warn(left_out(rec["skipped"]))

    sys.stdout.write(file_summary(rec))


@_command(app)
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(metavar="NAME", help="Unique name of the training file.")],
    description: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Free text shown by show and list --json.")
    ] = None,
    target_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Model the file is meant for, e.g. llama-3.1-8b.")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            metavar="PATH", help="JSON file with the consultant_profile to use when the conversations' profiles differ."
        ),
    ] = None,
    ids_file: IdsFile = None,
    id: Ids = None,
    batch: Batch = None,
    skip_invalid: SkipInvalid = False,
    json: JsonFlag = False,
):
    """Create a training file (full JSON + JSONL) from conversations.

    Conversations keep the order given (a batch: created_at, then id). Nothing is written
    unless every conversation is eligible, or --skip-invalid is given.

    Example: trainfiles create --name dec-batch --ids-file ids.txt --target-model llama-3.1-8b
    """
    selection = _selection(ids_file, id, batch)
    rec = _files().create(
        ctx.obj,
        name=name,
        description=description,
        target_model=target_model,
        profile_file=profile,
        selection=selection,
        skip_invalid=skip_invalid,
    )
    _report_file(rec, json)


@_command(app)
def add(
    ctx: typer.Context,
    file: FileArg,
    ids_file: IdsFile = None,
    id: Ids = None,
    batch: Batch = None,
    skip_invalid: SkipInvalid = False,
    json: JsonFlag = False,
):
    """Add conversations to a training file you created; both outputs are regenerated.

    Example: trainfiles add dec-batch --id 2e6e3685
    """
    selection = _selection(ids_file, id, batch)
    _report_file(_files().add(ctx.obj, file, selection, skip_invalid), json)


@_command(app, "list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str, _choice("--status", (*FILE_STATUSES, "all"), "STATUS", "Which training files to list.")
    ] = "active",
    created_by: Annotated[
        str | None, typer.Option("--created-by", metavar="USER", help="Only files this user created.")
    ] = None,
    sort: Annotated[
        str, _choice("--sort", tuple(FILE_SORTS), "KEY", "Order of the files (largest first for counts and quality).")
    ] = "newest",
    limit: Annotated[int | None, typer.Option(parser=arguments.whole(1), metavar="N", help="At most N files.")] = None,
    json: JsonFlag = False,
    csv: Csv = False,
    tsv: Tsv = False,
    nl: Nl = False,
):
    """List training files with their statistics, newest first.

    The table fits the terminal (the id column always stays); `show FILE` has the full
    scaffolding distribution.

    Example: trainfiles list --status all --created-by alice --sort quality --limit 10 --csv
    """
    from .render import files_table, terminal_width

    files = _files()
    records = files.list_files(ctx.obj, status, created_by, sort, limit)
    _records(
        records,
        json,
        csv,
        tsv,
        nl,
        lambda rs: files_table(rs, terminal_width()),
        lambda: files.nothing_listed(ctx.obj, status, created_by),
    )


@_command(app)
def show(
    ctx: typer.Context,
    file: FileArg,
    json: JsonFlag = False,
):
    """Show one training file: statistics, storage and member conversation ids.

    Example: trainfiles show dec-batch --json
    """
    _report_file(_files().show(ctx.obj, file), json)


EXPORT_FORMATS = ("json", "jsonl", *TRAINER_FORMATS, "card")
Rows = Annotated[
    str | None,
    _choice(
        "--rows",
        ("conversation", "pair"),
        "ROWS",
        "One row per conversation (every reply trained once; default) or per reply (pair). "
        "prompt-completion is always per reply.",
    ),
]


def _check_rows(fmt: str, rows: str | None) -> None:
    from .trainer_formats import MODES

    if rows and rows not in MODES.get(fmt, (rows,)):
        raise typer.BadParameter(f"--format {fmt} has one row per reply: use --rows pair")


def _fraction(value: str | None) -> float | None:
    if value is None:
        return None
    side, _, number = value.partition("=")
    try:
        fraction = float(number)
    except ValueError:
        fraction = -1.0
    if side != "validation" or not 0 < fraction < 1:
        raise typer.BadParameter(f"expected validation=FRACTION with 0 < FRACTION < 1, got {value!r}")
    return fraction


TERMINAL_LIMIT = 64_000  # bytes a bare `export` writes to a terminal before it asks for -o


def _to_terminal() -> bool:
    return sys.stdout.isatty()


def _write_stdout(chunks, guarded: bool, what: str) -> None:
    """Write to standard output once the whole output is made and checked (a stored output
    whose digest differs from its commit, a fitted export that must refuse): a pipe never
    takes rows the command then disowns. It waits in a temporary file, so memory stays flat.
    A large output bound for a terminal without `-o` is refused, as curl refuses binary output."""
    import shutil
    import tempfile

    with tempfile.TemporaryFile(prefix="trainfiles-export-") as spool:
        for chunk in chunks:
            spool.write(chunk)
        total = spool.tell()
        if guarded and total > TERMINAL_LIMIT and _to_terminal():
            from .render import size as shown

            raise UsageError(
                f"refusing to write {shown(total)} of {what} to the terminal: use -o FILE, or -o - to insist"
            )
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout.buffer, 1 << 20)
    sys.stdout.buffer.flush()


TokenizerOption = Annotated[
    str | None,
    typer.Option(
        metavar="TOKENIZER",
        help="A tokenizer.json, a folder holding one, or a model id in the local Hugging Face cache; "
        "its chat template is applied (else a plain one). Default (check): an estimate, chars/4.",
    ),
]


@_command(app)
def export(
    ctx: typer.Context,
    file: FileArg,
    format: Annotated[
        str,
        _choice(
            "--format",
            EXPORT_FORMATS,
            "FORMAT",
            "json/jsonl: the stored outputs. messages, prompt-completion, sharegpt, alpaca: "
            "rows trainers load (no header). card: a Hugging Face dataset card.",
        ),
    ] = "json",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Where to write (default: standard output, except more than 64 KB to a terminal; `-`: standard output always).",
        ),
    ] = None,
    no_header: Annotated[bool, typer.Option("--no-header", help="JSONL without its `_meta` first line.")] = False,
    rows: Rows = None,
    with_metadata: Annotated[
        bool, typer.Option("--with-metadata", help="Add a `metadata` object to every row (ids, scaffolding, quality).")
    ] = False,
    split: Annotated[
        str | None,
        typer.Option(
            metavar="validation=FRACTION",
            help="Write the split files, a README.md card and trainer recipes to --output-dir.",
        ),
    ] = None,
    output_dir: Annotated[str | None, typer.Option(metavar="DIR", help="Folder for a --split export.")] = None,
    url: Annotated[
        bool, typer.Option("--url", help="Print a time-limited download URL instead (remote stores).")
    ] = False,
    expires: Annotated[
        int,
        typer.Option(
            parser=arguments.whole(1, 604800), metavar="SECONDS", help="Seconds the --url stays valid (1 to 604800)."
        ),
    ] = 3600,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            parser=arguments.whole(1),
            metavar="N",
            help="Export version N (see `trainfiles log`), byte for byte; default: the latest.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            parser=arguments.whole(1),
            metavar="N",
            help="Fit rows to N tokens (chat template applied): long conversations become several rows, every reply trained once, "
            "whole (a user message cut from its start when its reply needs it, and listed).",
        ),
    ] = None,
    tokenizer: TokenizerOption = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="With --max-tokens: leave out, and list, replies that cannot fit.")
    ] = False,
    license: Annotated[
        str | None, typer.Option(metavar="ID", help="License id for the --split dataset card (e.g. cc-by-4.0).")
    ] = None,
    language: Annotated[
        str | None, typer.Option(metavar="CODE", help="Language for the --split dataset card (e.g. en).")
    ] = None,
    json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print what was written as one JSON document (with -o FILE, --output-dir or --url)."
        ),
    ] = False,
):
    """Export a training file: its stored JSON or JSONL, rows for a trainer, or a dataset card.

    Splits are by conversation and stable: adding conversations never moves one across.
    A split folder also gets LLaMA-Factory's dataset_info.json and an Axolotl axolotl.yaml.

    Example: trainfiles export dec-batch --format messages --split validation=0.1 --output-dir data/
    """
    from . import exports

    fmt = format
    stored = fmt in ("json", "jsonl")
    fraction = _fraction(split)
    if (fraction is None) != (output_dir is None):
        raise typer.BadParameter("--split and --output-dir go together")
    if fraction is not None and fmt not in TRAINER_FORMATS:
        raise typer.BadParameter("--split needs a trainer format: " + ", ".join(TRAINER_FORMATS))
    if url and not stored:
        raise typer.BadParameter("--url exports the stored json or jsonl")
    if no_header and fmt != "jsonl":
        raise typer.BadParameter("--no-header applies to --format jsonl")
    if (rows or with_metadata) and fmt not in TRAINER_FORMATS:
        raise typer.BadParameter("--rows and --with-metadata apply to trainer formats: " + ", ".join(TRAINER_FORMATS))
    _check_rows(fmt, rows)
    if (max_tokens is None) != (tokenizer is None) or (max_tokens and fmt not in TRAINER_FORMATS):
        raise typer.BadParameter("--max-tokens and --tokenizer go together, with a trainer format")
    if skip_invalid and max_tokens is None:
        raise typer.BadParameter("--skip-invalid applies to --max-tokens")
    if (license or language) and fraction is None:
        raise typer.BadParameter("--license and --language are written to the card of a --split export")
    if json and output in (None, "-") and fraction is None and not url:
        raise typer.BadParameter(
            "--json describes an export written with -o FILE, --output-dir or --url (standard output holds the export)"
        )
    if url:
        signed = exports.sign(ctx.obj, file, fmt, expires, version)
        _json({"url": signed, "expires_in": expires}) if json else print(signed)
        return
    fit, fitted = exports.fitting(max_tokens, tokenizer, skip_invalid) if max_tokens else (None, None)
    summary: dict[str, Any] = {"file": file, "format": fmt}
    if fraction is not None:
        done = exports.split(
            ctx.obj, file, fmt, rows, with_metadata, fraction, output_dir, version, fit, license, language
        )
        counts = done["rows"]
        summary.update(output_dir=output_dir, files=done["files"], rows=counts)
        if not json:
            _warn(
                f"train {counts['train']} rows, validation {counts['validation']} rows in {output_dir}: {', '.join(done['files'])}"
            )
    else:
        if stored:
            chunks = exports.stored(ctx.obj, file, fmt, header=not no_header, number=version)
        elif fmt == "card":
            chunks = iter([exports.card(ctx.obj, file).encode()])
        else:
            chunks = exports.encode(exports.trainer_rows(ctx.obj, file, fmt, rows, with_metadata, version, fit))
        if output in (None, "-"):
            _write_stdout(chunks, guarded=output is None, what="Markdown" if fmt == "card" else "JSON")
        else:
            from .storage import write_atomic

            written = [0]

            def counting(chunks):
                for chunk in chunks:
                    written[0] += len(chunk)
                    yield chunk

            write_atomic(output, counting(chunks), create_folder=False)
            summary.update(output=output, bytes=written[0])
    if json:
        _json({**summary, **(fitted or {})})
    elif fitted is not None:
        _report_fitting(fitted, max_tokens)


def _report_fitting(fitted: dict[str, list[dict]], max_tokens: int) -> None:
    """On stderr: the replies fitting left out, and those whose user message it cut."""
    for reply in fitted["left_out"]:
        _warn(
            f"left out: conversation {reply['conversation_id']} pair {reply['pair_id']} ({reply['tokens']} tokens > {max_tokens})"
        )
    for reply in fitted["trimmed"]:
        _warn(
            f"trimmed: conversation {reply['conversation_id']} pair {reply['pair_id']} ({reply['tokens']} tokens > "
            f"{max_tokens}): its user message cut to its last {reply['kept_words']} of {reply['words']} words"
        )


@_command(app)
def check(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A training file's name, id or unique id prefix, or an export: a JSONL file or a split folder.",
        ),
    ],
    format: Annotated[
        str | None,
        _choice(
            "--format",
            TRAINER_FORMATS,
            "FORMAT",
            "The trainer format to check (a training file: default messages; an export: told by its rows).",
        ),
    ] = None,
    rows: Rows = None,
    max_tokens: Annotated[
        int,
        typer.Option(
            parser=arguments.whole(1),
            metavar="N",
            help="The context length: rows over it, and the loss TRL (truncates) and Axolotl (drops) would lose.",
        ),
    ] = 1024,
    tokenizer: TokenizerOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 3 on warnings too: duplicate rows, rows over --max-tokens, replies that differ from the history.",
        ),
    ] = False,
    json: JsonFlag = False,
):
    """Check a training file or an export before training: errors, duplicates, token lengths,
    loss tokens, and what a context length of --max-tokens costs.

    Exits 3 when it finds any error (and with --strict any warning).

    Example: trainfiles check dec-batch --format messages --tokenizer ./tokenizer.json --json
    """
    from . import exports
    from .preflight import warned

    _check_rows(format or "messages", rows)
    report = exports.check(ctx.obj, file, format, rows, max_tokens, tokenizer)
    if json:
        _json(report)
    else:
        from .render import check_report

        sys.stdout.write(check_report(report))
    found = [f"{name} in {e['count']} rows" for name, e in report["errors"].items() if e["count"]]
    if strict:
        found += [f"{name} in {count} rows" for name, count in warned(report).items()]
    if found:
        _warn(f"Error: {file} is not ready to train: {', '.join(found)}")
        raise typer.Exit(3)


@_command(app)
def archive(
    ctx: typer.Context,
    file: FileArg,
    json: JsonFlag = False,
):
    """Archive a training file: it leaves `list`, and nothing more can be added to it.

    Example: trainfiles archive dec-batch
    """
    _report_file(_files().archive(ctx.obj, file), json)


@_command(app)
def unarchive(
    ctx: typer.Context,
    file: FileArg,
    json: JsonFlag = False,
):
    """Make an archived training file active again.

    Example: trainfiles unarchive dec-batch
    """
    _report_file(_files().unarchive(ctx.obj, file), json)


@_command(app)
def remove(
    ctx: typer.Context,
    file: FileArg,
    ids_file: IdsFile = None,
    id: Ids = None,
    json: JsonFlag = False,
):
    """Remove conversations from a training file you created: a new version without them.

    Example: trainfiles remove dec-batch --id 2e6e3685
    """
    selection = _selection(ids_file, id, None)
    _report_file(_files().remove(ctx.obj, file, selection.ids), json)


@_command(app)
def rename(
    ctx: typer.Context,
    file: FileArg,
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="The new, unique name.")],
    json: JsonFlag = False,
):
    """Rename a training file (a new version: the outputs carry the name).

    Example: trainfiles rename dec-batch dec-batch-v2
    """
    _report_file(_files().rename(ctx.obj, file, new_name), json)


@_command(app)
def describe(
    ctx: typer.Context,
    file: FileArg,
    description: Annotated[str | None, typer.Option(metavar="TEXT", help="The new description ('' clears it).")] = None,
    target_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="The new target model ('' clears it).")
    ] = None,
    json: JsonFlag = False,
):
    """Change a training file's description or target model.

    Example: trainfiles describe dec-batch --description "December, reviewed" --target-model llama-3.1-8b
    """
    if description is None and target_model is None:
        raise typer.BadParameter("give --description, --target-model or both")
    _report_file(_files().describe(ctx.obj, file, description, target_model), json)


@_command(app)
def restore(
    ctx: typer.Context,
    file: FileArg,
    version: Annotated[
        int,
        typer.Option(
            "--version",
            parser=arguments.whole(1),
            metavar="N",
            help="The version to bring back (see `trainfiles log`).",
        ),
    ],
    as_was: Annotated[
        bool,
        typer.Option(
            "--as-was", help="Also take back version N's name and description (default: keep the current ones)."
        ),
    ] = False,
    json: JsonFlag = False,
):
    """Give a training file the conversations it had at version N, as a new version (history is kept).

    The name and description stay as they are now, unless --as-was.

    Example: trainfiles restore dec-batch --version 2
    """
    _report_file(_files().restore(ctx.obj, file, version, as_was), json)


@_command(app)
def log(
    ctx: typer.Context,
    file: FileArg,
    json: JsonFlag = False,
):
    """List every version of a training file: who changed what, when, and the output digests.

    Example: trainfiles log dec-batch --json
    """
    versions = _files().log(ctx.obj, file)
    if json:
        _json(versions)
    else:
        from .render import versions_table

        sys.stdout.write(versions_table(versions))


@_command(app)
def verify(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(metavar="FILE", help="Only this training file (default: all).", autocompletion=_complete_file),
    ] = None,
    sources: Annotated[bool, typer.Option("--sources", help="Also check every member's source file.")] = False,
    base: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL",
            help="With --sources, also read sources under this folder or URL (repeatable); "
            "by default only sources registered on this machine at the recorded path are read.",
        ),
    ] = None,
    json: JsonFlag = False,
):
    """Recompute the sha256 of every stored output against its commit, and check every record of the store's log; exit 3 on any mismatch or record that cannot be believed.

    Example: trainfiles verify --sources --base s3://bucket/enriched
    """
    from .housekeeping import verify as run

    report = run(ctx.obj, file, sources, tuple(base or ()))
    if json:
        _json(report)
    else:
        print(
            f"checked {report['checked']} objects, {len(report['mismatches'])} mismatches, {report['pruned']} pruned by gc"
        )
    if report["not_read"]:
        _warn(f"note: {len(report['not_read'])} sources not read: neither registered on this machine nor under --base")
    if report["mismatches"]:
        problems = "; ".join(f"{m['object']}: {m['problem']}" for m in report["mismatches"])
        _warn(f"Error: digest mismatches: {problems}")
        raise typer.Exit(3)


@_command(app)
def gc(
    ctx: typer.Context,
    keep: Annotated[
        int | None,
        typer.Option(
            parser=arguments.whole(1),
            metavar="N",
            help="Also delete the outputs of all but each file's newest N versions.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    min_age: Annotated[
        float,
        typer.Option(
            parser=arguments.seconds,
            metavar="SECONDS",
            help="Only what is older than this: a command still running may be about to commit what it wrote.",
        ),
    ] = 3600,
    json: JsonFlag = False,
):
    """Delete what no commit needs: outputs of commands that died, temporary files, open uploads, and with --keep old versions' outputs.

    Export builds a deleted version's outputs again from the sources.

    Example: trainfiles gc --keep 3 --dry-run
    """
    from .housekeeping import gc as run

    report = run(ctx.obj, keep, dry_run, min_age)
    if json:
        _json(report)
        return
    from .render import size

    verb = "would delete" if dry_run else "deleted"
    print(
        f"{verb} {len(report['deleted'])} objects ({size(report['bytes'])}), {len(report['aborted_uploads'])} open uploads"
    )
    for url in report["deleted"]:
        print(f"  {url}")


@_command(app)
def repair(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be set aside; write nothing.")] = False,
    json: JsonFlag = False,
):
    """Set aside the records of the store's log that cannot be believed, so the files they touch are usable again.

    Nothing is deleted: a repair record naming them is added to the log, and every machine
    then ignores them. `trainfiles verify` lists such records.

    Example: trainfiles repair --dry-run
    """
    from .housekeeping import repair as run

    report = run(ctx.obj, dry_run)
    if json:
        _json(report)
        return
    verb = "would set aside" if dry_run else "set aside"
    print(f"{verb} {len(report['set_aside'])} records")
    for item in report["set_aside"]:
        print(f"  {item['record']}: {item['reason']}")


def main() -> None:
    """Console entry point."""
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    # Everything is written, committed and closed by now; the interpreter's own teardown
    # would only free memory, at 0.1 s after a 1,000-conversation create.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # a reader such as `head` left early: not our failure
        pass
    os._exit(code)
