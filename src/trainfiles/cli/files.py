"""`create`, `add`, `list` and `show`: making training files and looking at them."""

import sys
from typing import Annotated

import typer

from trainfiles.cli import arguments
from trainfiles.cli.app import Csv, FileArg, JsonFlag, Nl, Tsv, _choice, _command, _files, _json, _records, _warn, app
from trainfiles.core.vocabulary import FILE_SORTS, FILE_STATUSES

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
    from trainfiles.usecases.selection import parse_ids, read_ids_file

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
    from trainfiles.cli.render import file_summary, left_out

    for key, where in (("already_present", "already in"), ("already_absent", "not in")):
        if rec.get(key):
            _warn(f"skipped, {where} {rec['name']}: {', '.join(rec[key])}")
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
    skip_present: Annotated[
        bool,
        typer.Option(
            "--skip-present", help="Leave out, and list, conversations already in the file; none left: no new version."
        ),
    ] = False,
    json: JsonFlag = False,
):
    """Add conversations to a training file you created; both outputs are regenerated.

    Example: trainfiles add dec-batch --id 2e6e3685
    """
    selection = _selection(ids_file, id, batch)
    _report_file(_files().add(ctx.obj, file, selection, skip_invalid, skip_present), json)


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
    from trainfiles.cli.render import files_table, terminal_width

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
