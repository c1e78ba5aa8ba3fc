"""What a checkpoint must be before anything believes it (docs/store.md, "Checkpoints").

A store checkpoint (`_checkpoints/<sequence>.json.gz`) is the index's state once records 1 to
`sequence` are applied: every training file with its members and versions, every
conversation the store registered, the records kept apart. A file checkpoint
(`<file id>/checkpoints/<version>.json.gz`) holds one version's members. Both are written by
any trainfiles from its own index and read by others, so they are input like a record:
`parse_store` and `parse_file` check them and return them, or raise InvalidInput saying why.
Pure: bytes in, a checkpoint or a reason out.
"""

import gzip
import zlib
from functools import cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from trainfiles.core.records import (
    KINDS,
    MAX_DESCRIPTION,
    STRICT,
    Conversation,
    Count,
    Head,
    Member,
    Naming,
    Number,
    Score,
    Sha256,
    Stamp,
    Text,
    Uuid,
    check_head,
    check_name,
    check_output_key,
    check_stamp,
    first_errors,
)
from trainfiles.errors import InvalidInput

STORE = "trainfiles.checkpoint/1"
FILE = "trainfiles.file-checkpoint/1"
# A checkpoint is read whole: 16 times what one record may be holds about 1.6 million members.
MAX_BYTES = 1 << 30


def pack(checkpoint: dict[str, Any]) -> bytes:
    """A checkpoint as stored: its JSON, gzipped (a fifth of the bytes to write and read;
    the same bytes for the same state, whoever writes them)."""
    return gzip.compress(orjson.dumps(checkpoint, option=orjson.OPT_APPEND_NEWLINE), mtime=0)


def unpack(data: bytes) -> bytes:
    """A stored checkpoint's JSON; InvalidInput if it is not gzip, or unpacks to more than
    MAX_BYTES (never unpacked further than that)."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data, MAX_BYTES + 1)
    except zlib.error as e:
        raise InvalidInput(f"not gzip ({e})") from None
    if len(out) > MAX_BYTES:
        raise InvalidInput(f"larger than {MAX_BYTES >> 20} MiB unpacked")
    if not inflate.eof or inflate.unused_data:
        raise InvalidInput("not one whole gzip stream")
    return out


class _Counted(TypedDict):
    """What every version has: its counts and its two outputs."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    conversation_count: Count
    total_training_pairs: Count
    json_key: Text
    jsonl_key: Text
    json_file_size: Count
    jsonl_file_size: Count
    json_sha256: Sha256
    jsonl_sha256: Sha256


class FileRow(_Counted, Naming):
    """A training file at its newest version, as the index keeps it."""

    id: Uuid
    version: Number
    sequence: Number
    created_at: Stamp
    updated_at: Stamp
    last_updated_at: Stamp
    avg_quality_score: Score
    min_quality_score: Score
    max_quality_score: Score
    human_reviewed_count: Count
    scaffolding_distribution: dict[Text, dict[Text, Count]]
    consultant_profile: dict[str, Any] | None
    profile_set: bool


class VersionRow(_Counted, Head):
    """One version of a file, as `trainfiles log` lists it."""


class FileState(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    file: FileRow
    versions: list[VersionRow]
    members: list[Member]


class Registered(Conversation, total=False):
    """A conversation as the store's registrations left it: its values, when it was first
    registered and last changed, the record that last set it and every batch it is in."""

    registered_at: Stamp
    updated_at: Stamp
    source_record: Number
    batches: list[Text]


class Kept(TypedDict):
    """A record of the log that cannot be believed, and whether a repair set it aside."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    sequence: Number
    file_id: Uuid | None
    reason: Annotated[str, Field(max_length=MAX_DESCRIPTION)]
    keys: list[Text]
    set_aside: bool


class StoreCheckpoint(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    format: Literal["trainfiles.checkpoint/1"]
    sequence: Number
    created_at: Stamp
    created_by: Text
    reader_version: Number
    writer_version: Number
    files: list[FileState]
    conversations: list[Registered]
    bad_records: list[Kept]


class FileCheckpoint(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    format: Literal["trainfiles.file-checkpoint/1"]
    file_id: Uuid
    version: Number
    sequence: Number
    created_at: Stamp
    created_by: Text
    members: list[Member]


@cache
def _schema(kind: type) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def parse_store(sequence: int, data: bytes) -> dict[str, Any]:
    """The store checkpoint named for `sequence`, checked: its rows well formed, and nothing
    in it that records 1 to `sequence` could not have made."""
    checkpoint = _parse(data, StoreCheckpoint)
    try:
        if checkpoint["sequence"] != sequence:
            raise ValueError(f"its sequence says {checkpoint['sequence']}")
        check_stamp(checkpoint["created_at"], "created_at")
        names, ids = set(), set()
        for state in checkpoint["files"]:
            _check_file(state, sequence)
            ids.add(state["file"]["id"])
            names.add(state["file"]["name"])
        if len(ids) != len(checkpoint["files"]) or len(names) != len(ids):
            raise ValueError("a training file, or a name, is there twice")
        registered = [c["conversation_id"] for c in checkpoint["conversations"]]
        if len(set(registered)) != len(registered):
            raise ValueError("a conversation is registered twice")
        for c in checkpoint["conversations"]:
            if {"registered_at", "updated_at", "source_record", "batches"} - c.keys():
                raise ValueError(f"conversation {c['conversation_id']} lacks when or by which record it was registered")
            if c["source_record"] > sequence:
                raise ValueError(f"conversation {c['conversation_id']} was set by a record after the checkpoint")
        kept = [b["sequence"] for b in checkpoint["bad_records"]]
        if len(set(kept)) != len(kept) or any(s > sequence for s in kept):
            raise ValueError("a record kept apart is there twice, or after the checkpoint")
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    return checkpoint


def parse_file(file_id: str, version: dict, ids: set[str], data: bytes) -> list[dict[str, Any]]:
    """The members of a file checkpoint, checked against the `version` of the file the log
    gives (its record's sequence) and the conversations the log's changes make it (`ids`)."""
    checkpoint = _parse(data, FileCheckpoint)
    said = (checkpoint["file_id"], checkpoint["version"], checkpoint["sequence"])
    if said != (file_id, version["version"], version["sequence"]):
        raise InvalidInput(f"it is of file {said[0]} version {said[1]} (record {said[2]})")
    members = checkpoint["members"]
    if len(members) != len(ids) or {m["conversation_id"] for m in members} != ids:
        raise InvalidInput(f"its members are not the {len(ids)} conversations of version {version['version']}")
    return members


def member_ids(versions: list[dict], number: int) -> set[str]:
    """The conversations of version `number`, from what each version's record says it
    added and removed (a restore: those of the version it restored)."""
    at: dict[int, set[str]] = {}
    for v in versions[:number]:
        if v["operation"] == "restore":
            ids = set(at[v["restored_from"]])
        else:
            ids = (set() if v["parent"] is None else at[v["parent"]]) - set(v["removed"])
        at[v["version"]] = ids | set(v["added"])
    return at[number]


def differences(checkpoint: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """What of a checkpoint is not `state`, the one its records make (in a checkpoint's form):
    the training files, records kept apart, conversations and format versions that differ.
    When a conversation was registered is not compared: a machine that had registered it
    before registrations were shared keeps its own moment."""
    ours = {f["file"]["id"]: f for f in state["files"]}
    theirs = {f["file"]["id"]: f for f in checkpoint["files"]}
    found = [f"training file {i}" for i in sorted(ours.keys() | theirs.keys()) if ours.get(i) != theirs.get(i)]
    if checkpoint["bad_records"] != state["bad_records"]:
        found.append("the records kept apart")
    moments = ("registered_at", "updated_at")
    mine = [{k: v for k, v in c.items() if k not in moments} for c in state["conversations"]]
    if mine != [{k: v for k, v in c.items() if k not in moments} for c in checkpoint["conversations"]]:
        found.append("the conversations registered")
    versions = ("reader_version", "writer_version")
    if [checkpoint[k] for k in versions] != [state[k] for k in versions]:
        found.append("the store's format versions")  # a reader takes them as the records' before it
    return found


def _parse(data: bytes, kind: type) -> dict[str, Any]:
    try:
        found: dict[str, Any] = _schema(kind).validate_python(orjson.loads(unpack(data)))
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"not JSON ({e})") from None
    except ValidationError as e:
        raise InvalidInput(first_errors(e)) from None
    return found


def _check_file(state: dict[str, Any], sequence: int) -> None:
    row, versions = state["file"], state["versions"]
    if [v["version"] for v in versions] != list(range(1, row["version"] + 1)):
        raise ValueError(f"training file {row['id']} lacks versions, or has them out of order")
    # As a record's: every version's head, outputs inside the file's folder, real dates.
    for v in versions:
        check_head(v)
        check_stamp(v["created_at"], f"training file {row['id']} version {v['version']} created_at")
    for where in (row, *versions):
        for kind in KINDS:
            check_output_key(row["id"], kind, where[f"{kind}_key"])
    for stamp in ("created_at", "updated_at", "last_updated_at"):
        check_stamp(row[stamp], f"training file {row['id']} {stamp}")
    check_name(row["name"])
    newest = versions[-1]
    outputs = [f"{kind}_{column}" for kind in KINDS for column in ("key", "file_size", "sha256")]
    if [newest[c] for c in ("sequence", *outputs)] != [row[c] for c in ("sequence", *outputs)] or any(
        v["sequence"] > sequence for v in versions
    ):
        raise ValueError(f"training file {row['id']}'s newest version is not its file's, or after the checkpoint")
    ids = {m["conversation_id"] for m in state["members"]}
    if len(ids) != len(state["members"]) or len(ids) != row["conversation_count"]:
        raise ValueError(f"training file {row['id']}'s members are not its {row['conversation_count']} conversations")
