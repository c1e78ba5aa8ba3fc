"""Getting training files out: the stored outputs, trainer-ready rows, splits, a dataset card,
and the check before training.

Everything streams from the stored JSONL (one pair per line, conversations consecutive), so
memory stays flat however large the file grows.
"""

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson

from trainfiles import storage
from trainfiles.core import builder, preflight, recipes, trainer_formats
from trainfiles.core.card import dataset_card
from trainfiles.core.fitting import Trim
from trainfiles.core.tokenizing import Tokens
from trainfiles.errors import Conflict, InvalidInput, NotFound
from trainfiles.progress import bar
from trainfiles.settings import Settings
from trainfiles.store import changes, history, outputs
from trainfiles.store.catalog import Catalog
from trainfiles.usecases.finding import find, open_catalog, record

# Split files: `<side>-<sha256 of the content, 8 hex>.jsonl`, so a folder exported again
# names new files and `datasets` caches nothing stale; the bare names are those of 0.1.
_SPLIT_FILE = re.compile(r"(train|validation)(-[0-9a-f]{8})?\.jsonl")


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
        catalog = Catalog(settings.catalog)
        record = history.read_version(settings.store, catalog.versions(version["file_id"]), version["version"])
        with outputs.spool(settings.store, record["file_id"]) as spool:
            # Made again, it must be what its commit recorded (members from a file checkpoint
            # are believed, not proved): else Conflict, never another version's bytes.
            made = outputs.content(changes.from_sources(record, spool, catalog), kind)
            yield from outputs.verified(f"{url}, made again,", version[f"{kind}_sha256"], made)
        return
    yield from outputs.verified(
        url, version[f"{kind}_sha256"], (storage.lines if kind == "jsonl" else storage.chunks)(url)
    )


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


def fitting(
    max_tokens: int, tokenizer: str, skip_invalid: bool
) -> tuple[trainer_formats.Fitting, dict[str, list[dict]]]:
    """Rows fitted to `max_tokens` as `tokenizer` counts them, and what fitting did (filled
    as rows stream): `left_out`, the replies too long to fit (without `skip_invalid`, once
    the last row is made, InvalidInput naming every one of them), and `trimmed`, those kept
    with their user message cut."""
    tokens = Tokens(tokenizer)
    report: dict[str, list[dict]] = {"left_out": [], "trimmed": []}

    def too_long(conversation_id: str, pair_id: object, length: int) -> None:
        report["left_out"].append({"conversation_id": conversation_id, "pair_id": pair_id, "tokens": length})

    def finished() -> None:
        if report["left_out"] and not skip_invalid:
            raise InvalidInput(
                f"replies that need more than --max-tokens {max_tokens} tokens with the system prompt and only the last "
                "word of their user message: ",
                [
                    f"conversation {r['conversation_id']} pair {r['pair_id']} ({r['tokens']} tokens)"
                    for r in report["left_out"]
                ],
                sep="; ",
                suffix=" (--skip-invalid leaves them out)",
            )

    def trimmed(conversation_id: str, pair_id: object, trim: Trim) -> None:
        report["trimmed"].append(
            {
                "conversation_id": conversation_id,
                "pair_id": pair_id,
                "tokens": trim.tokens,
                "kept_words": trim.kept,
                "words": trim.words,
            }
        )

    return trainer_formats.Fitting(tokens.length, max_tokens, too_long, trimmed, finished), report


def trainer_rows(
    settings: Settings,
    ref: str,
    fmt: str,
    mode: str | None,
    with_metadata: bool,
    number: int | None = None,
    fit: trainer_formats.Fitting | None = None,
) -> Iterator[tuple[str, dict]]:
    """(conversation id, row) in a trainer format, read line by line from the stored JSONL."""
    catalog, _, version = _version(settings, ref, number)
    return _trainer_rows(settings, catalog, version, fmt, mode, with_metadata, fit)


def _trainer_rows(
    settings: Settings,
    catalog: Catalog,
    version: dict,
    fmt: str,
    mode: str | None,
    with_metadata: bool,
    fit: trainer_formats.Fitting | None = None,
) -> Iterator[tuple[str, dict]]:
    metadata = None
    if with_metadata:
        members = history.read_version(settings.store, catalog.versions(version["file_id"]), version["version"])[
            "members"
        ]
        metadata = {m["conversation_id"]: {"quality_score": m["quality_score"]} for m in members}
    try:
        return trainer_formats.rows_by_conversation(_v4_rows(settings, version), fmt, mode, metadata, fit)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def _v4_rows(settings: Settings, version: dict) -> Iterator[dict]:
    """A version's JSONL rows (its header first), with progress for a large file."""
    with bar("Reading conversations", version["conversation_count"]) as advance:
        previous = None
        for chunk in _content(settings, version, "jsonl"):
            for line in chunk.splitlines():
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    url = storage.join(settings.store, version["jsonl_key"])
                    raise Conflict(
                        f"{url}: a line is not JSON: the object differs from its commit (`trainfiles verify` checks it)"
                    ) from None
                if isinstance(row, dict) and row.get("conversation_id") != previous:
                    previous = row.get("conversation_id")
                    advance(1)
                yield row


def output(
    settings: Settings,
    ref: str,
    fmt: str,
    mode: str | None = None,
    with_metadata: bool = False,
    number: int | None = None,
    header: bool = True,
    fit: trainer_formats.Fitting | None = None,
) -> Iterator[bytes]:
    """The bytes `trainfiles export FILE --format FMT` writes: a version's stored JSON or
    JSONL, the dataset card, or trainer rows as JSON Lines. The file is looked up now."""
    if fmt in ("json", "jsonl"):
        return stored(settings, ref, fmt, header=header, number=number)
    if fmt == "card":
        return iter([card(settings, ref).encode()])
    return encode(trainer_rows(settings, ref, fmt, mode, with_metadata, number, fit))


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
    fit: trainer_formats.Fitting | None = None,
    license: str | None = None,
    language: str | None = None,
) -> dict:
    """Write the split files, a README.md card and the trainers' recipes to `output_dir`;
    return the files written per side and their row counts.

    A conversation's side is a fixed function of its id, so adding conversations to the
    file never moves an existing one to the other side. Files are named by their content
    (`train-<sha8>.jsonl`); an empty side gets no file; split files of an earlier export
    in the folder are removed once the new ones and the card are written.
    """
    sides = ("train", "validation")
    counts = dict.fromkeys(sides, 0)
    catalog, row, version = _version(settings, ref, number)
    rows = _trainer_rows(settings, catalog, version, fmt, mode, with_metadata, fit)
    with tempfile.TemporaryDirectory(prefix="trainfiles-split-") as tmp:
        spools = {side: open(Path(tmp) / side, "w+b") for side in sides}
        hashes = {side: hashlib.sha256() for side in sides}
        for cid, trainer_row in rows:
            side = trainer_formats.split_of(cid, fraction)
            line = orjson.dumps(trainer_row, option=orjson.OPT_APPEND_NEWLINE)
            spools[side].write(line)
            hashes[side].update(line)
            counts[side] += 1
        files = {side: f"{side}-{hashes[side].hexdigest()[:8]}.jsonl" for side in sides if counts[side]}
        for side, name in files.items():
            spools[side].seek(0)
            storage.write_atomic(storage.join(output_dir, name), iter(lambda f=spools[side]: f.read(1 << 20), b""))
        for spool in spools.values():
            spool.close()
    chosen = trainer_formats.MODES[fmt][0] if mode is None else mode
    card = dataset_card(
        record(settings, row),
        files,
        rows=sum(counts.values()),
        fmt=fmt,
        mode=chosen,
        license=license,
        language=language,
        max_tokens=fit.max_tokens if fit else None,
    )
    storage.write_atomic(storage.join(output_dir, "README.md"), card.encode())
    written = ["README.md", *files.values()]
    for name, content in (
        ("dataset_info.json", recipes.dataset_info(row["name"], fmt, files)),
        ("axolotl.yaml", recipes.axolotl(fmt, files, weighted=fit is not None)),
    ):
        if content is not None:
            storage.write_atomic(storage.join(output_dir, name), content)
            written.append(name)
        else:
            storage.remove(storage.join(output_dir, name))
    _remove_stale(output_dir, set(files.values()))
    return {"files": written, "rows": counts}


def _remove_stale(output_dir: str, keep: set[str]) -> None:
    """Split files of earlier exports directly in `output_dir` (nothing else is touched)."""
    for entry in storage.listing(output_dir):
        name = entry["url"].rstrip("/").rpartition("/")[2]
        if name not in keep and _SPLIT_FILE.fullmatch(name) and entry["url"] == storage.join(output_dir, name):
            storage.remove(entry["url"])


def card(settings: Settings, ref: str) -> str:
    """A dataset card for a messages export of the file as train.jsonl (rows counted as one per
    conversation, the default row mode, for the size category)."""
    rec = record(settings, find(open_catalog(settings), ref))
    return dataset_card(rec, {"train": "train.jsonl"}, rows=rec["conversation_count"])


def check(
    settings: Settings,
    target: str,
    fmt: str | None,
    mode: str | None,
    max_tokens: int,
    tokenizer: str | None,
) -> dict:
    """The pre-training report on a training file exported in `fmt` (with loss tokens and the
    cost of `max_tokens` for every row mode), or on an export: a JSONL file or a folder of
    them (a split export) whose rows are checked in file name order, `fmt` told by the rows.
    A training file of that name or id wins over a path."""
    tokens = Tokens(tokenizer)
    path = Path(target)
    if path.exists() and not _is_training_file(settings, target):
        v4 = _v4_export(path)
        if v4 is not None:  # our own outputs, checked as the rows a trainer format makes of them
            kind, rows = v4
            return {
                "file": target,
                "source": f"brightrun-lora-v4 {kind}",
                **_check_v4(rows, fmt, mode, max_tokens, tokens, {}),
            }
        if mode is not None:
            raise InvalidInput(
                f"--rows applies to a training file or a brightrun-lora-v4 export: the rows of {path} are checked as written"
            )
        return _check_export(path, fmt, max_tokens, tokens)
    catalog, _, version = _version(settings, target, None)
    members = history.read_version(settings.store, catalog.versions(version["file_id"]), version["version"])["members"]
    metadata = {m["conversation_id"]: {"quality_score": m["quality_score"]} for m in members}
    return {"file": target, **_check_v4(lambda: _v4_rows(settings, version), fmt, mode, max_tokens, tokens, metadata)}


def _check_v4(
    v4_rows: Callable[[], Iterator[dict]],
    fmt: str | None,
    mode: str | None,
    max_tokens: int,
    tokens: Tokens,
    metadata: dict,
) -> dict:
    """The report on v4 rows made into `fmt` rows in `mode`, with the loss tokens and the
    cost of `max_tokens` for every row mode of the format."""
    fmt = fmt or "messages"
    modes = trainer_formats.MODES.get(fmt)
    if modes is None:
        raise InvalidInput(f"cannot check format {fmt!r}: choose one of {', '.join(trainer_formats.FORMATS)}")
    chosen = mode or modes[0]
    reports = {}
    for each in dict.fromkeys((chosen, *modes)):
        mismatched = trainer_formats.history_mismatches(v4_rows())
        numbers: list[int] = []
        try:
            made = trainer_formats.rows_by_conversation(v4_rows(), fmt, each, metadata)
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        rows = _marking(made, mismatched, numbers)
        reports[each] = preflight.check(rows, fmt, max_tokens=max_tokens, tokens=tokens, history_mismatches=numbers)
    report = {"rows_mode": chosen, **reports[chosen]}
    report["loss_tokens_by_mode"] = {each: r["loss_tokens"]["total"] for each, r in reports.items()}
    report["length_cost_by_mode"] = {each: r["length_cost"] for each, r in reports.items()}
    return report


def _v4_export(path: Path) -> tuple[str, Callable[[], Iterator[dict]]] | None:
    """("json" or "jsonl", a reader of its v4 rows) when `path` is one of our two outputs
    (as exported, or as stored): the full JSON, or the JSONL with or without its header."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        first = f.readline()
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError:
        head = None
    doc = head if isinstance(head, dict) and "training_file_metadata" in head else None  # on one line
    if head is None and first.strip() == b"{":  # an indented JSON document
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"{path}: not JSON: {e}") from None
    if doc is not None:
        if not (
            isinstance(doc, dict) and isinstance(doc.get("conversations"), list) and "training_file_metadata" in doc
        ):
            return None
        _check_counts(path, doc)
        return "json", lambda: (orjson.loads(line) for line in builder.render_jsonl(doc).splitlines()[1:])
    if isinstance(head, dict) and (isinstance(head.get("_meta"), dict) or set(head) >= V4_ROW):
        return "jsonl", lambda: _v4_lines(path)
    return None


V4_ROW = {"conversation_id", "conversation_history", "current_user_input", "target_response"}


def _check_counts(path: Path, doc: dict) -> None:
    """A full JSON's metadata against its conversations: InvalidInput naming what differs."""
    meta = doc["training_file_metadata"] if isinstance(doc["training_file_metadata"], dict) else {}
    conversations = doc["conversations"]
    pairs = sum(len(c.get("training_pairs") or []) for c in conversations if isinstance(c, dict))
    wrong = [
        f"{key} {meta.get(key)!r}, counted {counted}"
        for key, counted in (("total_conversations", len(conversations)), ("total_training_pairs", pairs))
        if meta.get(key) != counted
    ]
    if wrong:
        raise InvalidInput(f"{path}: its metadata does not count what it holds: ", wrong, sep="; ")


def _v4_lines(path: Path) -> Iterator[dict]:
    """The rows of a v4 JSONL, its `_meta` header checked against them."""
    declared, count = None, 0
    for number, row in enumerate(_export_rows([path]), 1):
        if number == 1 and isinstance(row, dict) and isinstance(row.get("_meta"), dict):
            declared = row["_meta"].get("total_pairs")
            if type(declared) is not int:
                raise InvalidInput(f"{path}: its header's total_pairs is {declared!r}, not a number of rows")
            continue
        if not (isinstance(row, dict) and set(row) >= V4_ROW):
            raise InvalidInput(
                f"{path} row {number}: not a brightrun-lora-v4 row (it has no {', '.join(sorted(V4_ROW))})"
            )
        count += 1
        yield row
    if declared is not None and declared != count:
        raise InvalidInput(f"{path}: its header says {declared} pairs, and {count} rows follow it")


def _is_training_file(settings: Settings, ref: str) -> bool:
    try:
        find(open_catalog(settings), ref)
    except NotFound:
        return False
    return True


def _marking(rows: Iterable[tuple[str, dict]], pair_ids: set, numbers: list[int]) -> Iterator[dict]:
    """Rows without their metadata; the numbers of those training one of `pair_ids` go to `numbers`."""
    for number, (_, row) in enumerate(rows, 1):
        if pair_ids & set(row.pop("metadata")["pair_ids"]):
            numbers.append(number)
        yield row


def _check_export(path: Path, fmt: str | None, max_tokens: int, tokens: Tokens) -> dict:
    files = sorted(p for p in path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise NotFound(f"no .jsonl file in {path}")
    first = next(_export_rows(files[:1]), None)
    found = trainer_formats.format_of(first) if first is not None else fmt or "messages"
    if fmt is not None and fmt != found:
        raise InvalidInput(f"{path} holds {found} rows, not {fmt}")
    report = preflight.check(_export_rows(files), found, max_tokens=max_tokens, tokens=tokens)
    return {"file": str(path), "files": [str(f) for f in files], **report}


def _export_rows(files: list[Path]) -> Iterator[dict]:
    for file in files:
        with file.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise InvalidInput(f"{file} line {number}: not JSON: {e}") from None
