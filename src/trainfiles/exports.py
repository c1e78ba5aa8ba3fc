"""Getting training files out: the stored outputs, trainer-ready rows, splits, a dataset card,
and the check before training.

Everything streams from the stored JSONL (one pair per line, conversations consecutive), so
memory stays flat however large the file grows.
"""

from collections.abc import Iterable, Iterator

import orjson

from . import preflight, storage, trainer_formats
from .card import dataset_card
from .catalog import Catalog
from .errors import InvalidInput
from .training_files import find, record
from .settings import Settings


def stored(settings: Settings, ref: str, fmt: str, header: bool) -> Iterator[bytes]:
    """The stored JSON or JSONL, streamed; `header=False` drops the JSONL `_meta` line.

    The file is looked up now, before any output is opened; the content streams later.
    """
    url = find(Catalog(settings.catalog), ref)[f"{fmt}_file_path"]
    return storage.chunks(url, skip_first_line=fmt == "jsonl" and not header)


def sign(settings: Settings, ref: str, fmt: str, expires: int) -> str:
    """A time-limited URL that downloads the stored file (remote stores only)."""
    url = find(Catalog(settings.catalog), ref)[f"{fmt}_file_path"]
    if storage.is_local(url):
        raise InvalidInput(f"{url} is on a local store: --url needs a remote store such as s3://")
    return storage.sign(url, expires)


def trainer_rows(settings: Settings, ref: str, fmt: str, mode: str | None, with_metadata: bool) -> Iterator[tuple[str, dict]]:
    """(conversation id, row) in a trainer format, read line by line from the stored JSONL."""
    catalog = Catalog(settings.catalog)
    return _trainer_rows(catalog, find(catalog, ref), fmt, mode, with_metadata)


def _trainer_rows(catalog: Catalog, row: dict, fmt: str, mode: str | None, with_metadata: bool) -> Iterator[tuple[str, dict]]:
    metadata = None
    if with_metadata:
        metadata = {m["conversation_id"]: {"quality_score": m["quality_score"]} for m in catalog.members(row["id"])}
    try:
        return trainer_formats.rows_by_conversation(_v4_rows(row["jsonl_file_path"]), fmt, mode, metadata)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def _v4_rows(url: str) -> Iterator[dict]:
    return (orjson.loads(line) for line in storage.lines(url))


def encode(rows: Iterable[tuple[str, dict]]) -> Iterator[bytes]:
    """JSON Lines: one compact UTF-8 row per line."""
    for _, row in rows:
        yield orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def split(
    settings: Settings, ref: str, fmt: str, mode: str | None, with_metadata: bool, fraction: float, output_dir: str
) -> dict:
    """Write train.jsonl, validation.jsonl and a README.md card to `output_dir`; return row counts.

    A conversation's side is a fixed function of its id, so adding conversations to the
    file never moves an existing one to the other side.
    """
    counts = {"train": 0, "validation": 0}
    catalog = Catalog(settings.catalog)
    row = find(catalog, ref)
    rows = _trainer_rows(catalog, row, fmt, mode, with_metadata)
    with storage.atomic_writers(
        {side: storage.join(output_dir, f"{side}.jsonl") for side in counts}
    ) as writers:
        for cid, trainer_row in rows:
            side = trainer_formats.split_of(cid, fraction)
            writers[side](orjson.dumps(trainer_row, option=orjson.OPT_APPEND_NEWLINE))
            counts[side] += 1
        files = {side: f"{side}.jsonl" for side, n in counts.items() if n}
        card = dataset_card(record(row), files, rows=sum(counts.values())).encode()
    storage.write_atomic(storage.join(output_dir, "README.md"), card)
    return counts


def card(settings: Settings, ref: str) -> str:
    """A dataset card for a messages export of the file as train.jsonl (rows counted as one per
    conversation, the default row mode, for the size category)."""
    rec = record(find(Catalog(settings.catalog), ref))
    return dataset_card(rec, {"train": "train.jsonl"}, rows=rec["conversation_count"])


def check(
    settings: Settings, ref: str, fmt: str, mode: str | None, max_tokens: int, tokenizer: str | None
) -> dict:
    """The pre-training report on the file exported in `fmt`, with loss tokens for every row mode."""
    modes = trainer_formats.MODES.get(fmt)
    if modes is None:
        raise InvalidInput(f"cannot check format {fmt!r}: choose one of {', '.join(trainer_formats.FORMATS)}")
    chosen = mode or modes[0]
    catalog = Catalog(settings.catalog)
    file_row = find(catalog, ref)
    reports = {}
    for each in dict.fromkeys((chosen, *modes)):
        rows = (row for _, row in _trainer_rows(catalog, file_row, fmt, each, False))
        reports[each] = preflight.check(rows, fmt, max_tokens=max_tokens, tokenizer_path=tokenizer)
    report = {"file": ref, "rows_mode": chosen, **reports[chosen]}
    report["loss_tokens_by_mode"] = {each: r["loss_tokens"]["total"] for each, r in reports.items()}
    return report
