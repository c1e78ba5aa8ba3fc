"""`conversations scan|import|list|show`: registering source conversations."""

import sys
from typing import Annotated

import typer

from trainfiles.cli.app import (
    Csv,
    JsonFlag,
    Nl,
    Tsv,
    _choice,
    _command,
    _conversations,
    _json,
    _records,
    conversations_app,
)
from trainfiles.core.vocabulary import ENRICHMENT_STATUSES


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
    from trainfiles.cli.render import conversations_table, terminal_width

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
        from trainfiles.cli.render import conversation_summary

        sys.stdout.write(conversation_summary(rec))
