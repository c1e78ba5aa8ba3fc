"""`export` and `check`: what leaves the store, for people and for trainers."""

import sys
from typing import Annotated, Any

import typer

from trainfiles.cli import arguments
from trainfiles.cli.app import FileArg, JsonFlag, _choice, _command, _json, _warn, app
from trainfiles.core.trainer_formats import FORMATS as TRAINER_FORMATS
from trainfiles.errors import UsageError

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
    from trainfiles.core.trainer_formats import MODES

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
            from trainfiles.cli.render import size as shown

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
    from trainfiles.usecases import exports

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
        chunks = exports.output(ctx.obj, file, fmt, rows, with_metadata, version, not no_header, fit)
        if output in (None, "-"):
            _write_stdout(chunks, guarded=output is None, what="Markdown" if fmt == "card" else "JSON")
        else:
            from trainfiles.storage import write_atomic

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
    from trainfiles.core.preflight import warned
    from trainfiles.usecases import exports

    _check_rows(format or "messages", rows)
    report = exports.check(ctx.obj, file, format, rows, max_tokens, tokenizer)
    if json:
        _json(report)
    else:
        from trainfiles.cli.render import check_report

        sys.stdout.write(check_report(report))
    found = [f"{name} in {e['count']} rows" for name, e in report["errors"].items() if e["count"]]
    if strict:
        found += [f"{name} in {count} rows" for name, count in warned(report).items()]
    if found:
        _warn(f"Error: {file} is not ready to train: {', '.join(found)}")
        raise typer.Exit(3)
