"""Changes to a training file and its history: `archive`, `unarchive`, `remove`, `rename`, `describe`, `restore`, `log`."""

import sys
from typing import Annotated

import typer

from trainfiles.cli import arguments
from trainfiles.cli.app import FileArg, JsonFlag, _command, _files, _json, app
from trainfiles.cli.files import Ids, IdsFile, _report_file, _selection


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
    skip_absent: Annotated[
        bool,
        typer.Option(
            "--skip-absent", help="Leave out, and list, conversations not in the file; none left: no new version."
        ),
    ] = False,
    json: JsonFlag = False,
):
    """Remove conversations from a training file you created: a new version without them.

    Example: trainfiles remove dec-batch --id 2e6e3685
    """
    selection = _selection(ids_file, id, None)
    _report_file(_files().remove(ctx.obj, file, selection.ids, skip_absent), json)


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
        from trainfiles.cli.render import versions_table

        sys.stdout.write(versions_table(versions))
