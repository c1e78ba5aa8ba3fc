"""The store's integrity: `verify`, `gc` and `repair`."""

from typing import Annotated

import typer

from trainfiles.cli import arguments
from trainfiles.cli.app import JsonFlag, _command, _complete_file, _json, _warn, app


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
    from trainfiles.usecases.housekeeping import verify as run

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
    from trainfiles.usecases.housekeeping import gc as run

    report = run(ctx.obj, keep, dry_run, min_age)
    if json:
        _json(report)
        return
    from trainfiles.cli.render import size

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
    then ignores them. `trainfiles verify` lists such records. A store checkpoint that is not
    what the log makes is removed: it only saves reading, and readers then read the log.

    Example: trainfiles repair --dry-run
    """
    from trainfiles.usecases.housekeeping import repair as run

    report = run(ctx.obj, dry_run)
    if json:
        _json(report)
        return
    verb = "would set aside" if dry_run else "set aside"
    print(f"{verb} {len(report['set_aside'])} records")
    for item in report["set_aside"]:
        print(f"  {item['record']}: {item['reason']}")
    for item in report["removed_checkpoints"]:
        print(f"{'would remove' if report['dry_run'] else 'removed'} {item['object']}: {item['problem']}")
