"""Getting training files out: the stored outputs, trainer-ready rows, splits, a dataset card,
and the check before training.

Everything streams from the stored JSONL (one pair per line, conversations consecutive), so
memory stays flat however large the file grows.
"""

import hashlib
from collections.abc import Iterable, Iterator

import orjson

from . import changes, commits, outputs, preflight, storage, trainer_formats
from .card import dataset_card
from .catalog import Catalog
from .errors import Conflict, InvalidInput, NotFound
from .settings import Settings
from .training_files import find, open_catalog, record


def _version(settings: Settings, ref: str, number: int | None) -> tuple[Catalog, dict, dict]:
    """The catalog, the file's row and the version row to read (the latest by default)."""
    catalog = open_catalog(settings)
    row = find(catalog, ref)
    version = catalog.version(row["id"], number or row["version"])
    if version is None:
        raise NotFound(f"training file {row['name']!r} has no version {number} (versions 1 to {row['version']})")
    return catalog, row, version


def _content(settings: Settings, version: dict, kind: str) -> Iterator[bytes]:
    """A version's output, streamed and checked against its commit as it goes: a mismatch
    ends the stream with Conflict. Outputs `gc --keep` deleted are built again from the
    sources."""
    url = storage.join(settings.store, version[f"{kind}_key"])
    if not storage.exists(url):
        record = commits.read(settings.store, [version["sequence"]])[0]
        with outputs.spool(settings.store, record["file_id"]) as spool:
            yield from outputs.content(changes.from_sources(record, spool), kind)
        return
    h = hashlib.sha256()
    for chunk in (storage.lines if kind == "jsonl" else storage.chunks)(url):
        h.update(chunk)
        yield chunk
    if h.hexdigest() != version[f"{kind}_sha256"]:
        raise Conflict(f"{url} differs from its commit (sha256 {h.hexdigest()[:12]}, expected {version[f'{kind}_sha256'][:12]}): run `trainfiles verify`")


def stored(settings: Settings, ref: str, fmt: str, header: bool, number: int | None = None) -> Iterator[bytes]:
    """The stored JSON or JSONL of a version, streamed; `header=False` drops the JSONL `_meta` line.

    The file is looked up now, before any output is opened; the content streams later.
    """
    _, _, version = _version(settings, ref, number)
    content = _content(settings, version, fmt)
    return content if header or fmt != "jsonl" else _without_first_line(content)


def _without_first_line(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        end = chunk.find(b"\n")
        if end >= 0:
            yield chunk[end + 1 :]
            break
    yield from chunks


def sign(settings: Settings, ref: str, fmt: str, expires: int, number: int | None = None) -> str:
    """A time-limited URL that downloads a version's stored file (remote stores only)."""
    _, _, version = _version(settings, ref, number)
    url = storage.join(settings.store, version[f"{fmt}_key"])
    if storage.is_local(url):
        raise InvalidInput(f"{url} is on a local store: --url needs a remote store such as s3://")
    return storage.sign(url, expires)


def trainer_rows(
    settings: Settings, ref: str, fmt: str, mode: str | None, with_metadata: bool, number: int | None = None
) -> Iterator[tuple[str, dict]]:
    """(conversation id, row) in a trainer format, read line by line from the stored JSONL."""
    catalog, _, version = _version(settings, ref, number)
    return _trainer_rows(settings, catalog, version, fmt, mode, with_metadata)


def _trainer_rows(
    settings: Settings, catalog: Catalog, version: dict, fmt: str, mode: str | None, with_metadata: bool
) -> Iterator[tuple[str, dict]]:
    metadata = None
    if with_metadata:
        members = commits.read(settings.store, [version["sequence"]])[0]["members"]
        metadata = {m["conversation_id"]: {"quality_score": m["quality_score"]} for m in members}
    try:
        return trainer_formats.rows_by_conversation(_v4_rows(settings, version), fmt, mode, metadata)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def _v4_rows(settings: Settings, version: dict) -> Iterator[dict]:
    for chunk in _content(settings, version, "jsonl"):
        for line in chunk.splitlines():
            yield orjson.loads(line)


def encode(rows: Iterable[tuple[str, dict]]) -> Iterator[bytes]:
    """JSON Lines: one compact UTF-8 row per line."""
    for _, row in rows:
        yield orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def split(
    settings: Settings,
    ref: str,
    fmt: str,
    mode: str | None,
    with_metadata: bool,
    fraction: float,
    output_dir: str,
    number: int | None = None,
) -> dict:
    """Write train.jsonl, validation.jsonl and a README.md card to `output_dir`; return row counts.

    A conversation's side is a fixed function of its id, so adding conversations to the
    file never moves an existing one to the other side.
    """
    counts = {"train": 0, "validation": 0}
    catalog, row, version = _version(settings, ref, number)
    rows = _trainer_rows(settings, catalog, version, fmt, mode, with_metadata)
    with storage.atomic_writers(
        {side: storage.join(output_dir, f"{side}.jsonl") for side in counts}
    ) as writers:
        for cid, trainer_row in rows:
            side = trainer_formats.split_of(cid, fraction)
            writers[side](orjson.dumps(trainer_row, option=orjson.OPT_APPEND_NEWLINE))
            counts[side] += 1
        files = {side: f"{side}.jsonl" for side, n in counts.items() if n}
        card = dataset_card(record(settings, row), files, rows=sum(counts.values())).encode()
    storage.write_atomic(storage.join(output_dir, "README.md"), card)
    return counts


def card(settings: Settings, ref: str) -> str:
    """A dataset card for a messages export of the file as train.jsonl (rows counted as one per
    conversation, the default row mode, for the size category)."""
    rec = record(settings, find(open_catalog(settings), ref))
    return dataset_card(rec, {"train": "train.jsonl"}, rows=rec["conversation_count"])


def check(
    settings: Settings, ref: str, fmt: str, mode: str | None, max_tokens: int, tokenizer: str | None
) -> dict:
    """The pre-training report on the file exported in `fmt`, with loss tokens for every row mode."""
    modes = trainer_formats.MODES.get(fmt)
    if modes is None:
        raise InvalidInput(f"cannot check format {fmt!r}: choose one of {', '.join(trainer_formats.FORMATS)}")
    chosen = mode or modes[0]
    catalog, _, version = _version(settings, ref, None)
    reports = {}
    for each in dict.fromkeys((chosen, *modes)):
        rows = (row for _, row in _trainer_rows(settings, catalog, version, fmt, each, False))
        reports[each] = preflight.check(rows, fmt, max_tokens=max_tokens, tokenizer_path=tokenizer)
    report = {"file": ref, "rows_mode": chosen, **reports[chosen]}
    report["loss_tokens_by_mode"] = {each: r["loss_tokens"]["total"] for each, r in reports.items()}
    return report
