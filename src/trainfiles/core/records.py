"""What a record of the store's log must be before anything believes it.

A shared store's contents are input: teammates' tools of other versions, buggy scripts or
anyone with write access to the bucket may have written them. `parse` checks one record's
bytes against docs/store.md (types, required keys, bounded sizes and nesting, its sequence
equal to its object's name, a UUID file id, output keys that are plain paths under that
file's own folder, strict timestamps) and returns it, or raises `BadRecord` saying why.
Pure: bytes in, a record or a reason out.
"""

import re
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, NotRequired, Required

import orjson
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from trainfiles.core import enriched
from trainfiles.core.text import refuse_hidden_characters
from trainfiles.core.vocabulary import CONVERSATION_FIELDS, MAX_NUMBER
from trainfiles.errors import InvalidInput

COMMIT = "trainfiles.commit/1"  # every member of the version
CHANGE = "trainfiles.commit/2"  # what changed since the parent (docs/store.md)
COMMITS = (COMMIT, CHANGE)
REPAIR = "trainfiles.repair/1"
REGISTRATION = "trainfiles.registration/1"
PROTOCOL = "trainfiles.protocol/1"
FORMATS = (COMMIT, CHANGE, REPAIR, REGISTRATION, PROTOCOL)
# The store protocol this trainfiles reads and writes (docs/store.md, "Versions"): 1 is a
# log of commit and repair records (a store without a protocol object); 2 adds the protocol
# object, registration records and commit records of what changed (commit/2).
READER_VERSION = 2
WRITER_VERSION = 2
PER_REGISTRATION = 5_000  # conversations a registration record holds at most (about 3 MB)
REGISTRATION_BYTES = 16 << 20  # and their JSON at most: a quarter of what a record may be
MAX_VALUE = 1 << 20  # any one value a manifest gives (a CSV cell may be longer than csv's own limit)
# About 100,000 conversations in one version (a member takes about 600 bytes): a record is
# held whole in memory while it is read, so a larger one is refused rather than believed.
MAX_BYTES = 64 * 1024 * 1024
MAX_TEXT = 4096  # any one string but the description and the profile's
MAX_DESCRIPTION = 100_000
OPERATIONS = ("create", "add", "remove", "archive", "unarchive", "rename", "describe", "restore", "migrate")
WHOLE = ("create", "restore", "migrate")  # a commit/2 of these holds every member; others what changed
KINDS = ("json", "jsonl")
# Years a timestamp may name: one second can always be added to the last (clock.stamp_after).
YEARS = (1970, 9998)

STRICT = ConfigDict(strict=True)
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Uuid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0, le=2**53)]
Number = Annotated[int, Field(ge=1, le=MAX_NUMBER)]
Score = float | int | None
Stamp = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")]


class Output(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    key: Text
    size: Count
    sha256: Sha256


class Outputs(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    json: Output
    jsonl: Output


class Member(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    conversation_id: Uuid
    source_path: Text
    source_sha256: Sha256
    batch_job_id: Text | None
    created_at: Text | None
    quality_score: Score
    human_reviewed: bool | None
    persona_key: Text | None
    emotional_arc_key: Text | None
    topic_key: Text | None
    training_pairs: Count
    added_at: Stamp
    added_by: Text


class Naming(TypedDict):
    """What names and describes a training file (a record's `file`, a checkpoint's row)."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)] | None
    target_model: Text | None
    vertical: Text | None
    status: Literal["active", "archived"]
    created_by: Text


class File(Naming):
    created_at: Stamp
    last_updated: Stamp
    consultant_profile: dict[str, Any] | None
    profile_set: NotRequired[bool]


class Quality(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    avg_quality_score: Score
    min_quality_score: Score
    max_quality_score: Score
    human_reviewed_count: Count


class Statistics(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    total_conversations: Count
    total_training_pairs: Count
    quality_summary: Quality
    scaffolding_distribution: dict[Text, dict[Text, Count]]


class Head(TypedDict):
    """What every version says of itself: a record's, a checkpoint's (and `trainfiles log`)."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    sequence: Number
    version: Number
    parent: Number | None
    operation: Literal[OPERATIONS]  # type: ignore[valid-type]
    created_at: Stamp
    created_by: Text
    added: list[Uuid]
    removed: list[Uuid]
    restored_from: Number | None


class _Version(Head):
    """What every commit record holds of its version, whatever its format."""

    file_id: Uuid
    file: File
    statistics: Statistics
    outputs: Outputs


class Commit(_Version):
    format: Literal["trainfiles.commit/1"]
    members: list[Member]


class Change(_Version):
    """A commit/2 record: its members those of its parent without `removed`, then
    `members_added` (an add); `members` itself for WHOLE operations."""

    format: Literal["trainfiles.commit/2"]
    members: NotRequired[list[Member]]
    members_added: NotRequired[list[Member]]


class Repair(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    format: Literal["trainfiles.repair/1"]
    sequence: Number
    created_at: Stamp
    created_by: Text
    set_aside: list[Number]


Value = Annotated[str, StringConstraints(max_length=MAX_VALUE)]


class Conversation(TypedDict, total=False):
    """One conversation registered: the values a scan derived or a manifest gave (a
    manifest row holds only the columns it has)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    conversation_id: Required[Uuid]
    enrichment_status: Value | None
    enriched_file_path: Value | None
    source_sha256: Sha256 | None
    batch_job_id: Value | None
    persona_key: Value | None
    emotional_arc_key: Value | None
    topic_key: Value | None
    quality_score: Score
    empathy_score: Score
    clarity_score: Score
    appropriateness_score: Score
    brand_voice_alignment: Score
    created_at: Value | None
    tier: Value | None
    human_reviewed: bool | None
    invalid_reason: Value | None
    manifest_fields: Annotated[list[Literal[CONVERSATION_FIELDS]], Field(max_length=len(CONVERSATION_FIELDS))]  # type: ignore[valid-type]


class Registration(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    format: Literal["trainfiles.registration/1"]
    sequence: Number
    created_at: Stamp
    created_by: Text
    source: Text
    conversations: Annotated[list[Conversation], Field(min_length=1, max_length=PER_REGISTRATION)]


class Protocol(TypedDict):
    """The store's protocol object (`_protocol.json`), or a protocol record of its log."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    format: Literal["trainfiles.protocol/1"]
    sequence: NotRequired[Number]
    reader_version: Number
    writer_version: Number
    created_at: Stamp
    created_by: Text


@cache
def _schema(name: str) -> TypeAdapter[Any]:
    """A validator, built the first time it is needed (building them all takes 0.1 s, which
    a command that reads no record, such as most `list`s, need not pay)."""
    kinds = {
        COMMIT: Commit,
        CHANGE: Change,
        REPAIR: Repair,
        REGISTRATION: Registration,
        PROTOCOL: Protocol,
        "member": Member,
    }
    return TypeAdapter(kinds[name])


class BadRecord(InvalidInput):
    """A record of the log that cannot be believed. `file_id` is the training file it
    claims to change when that much can be read, `keys` the output keys it names (gc keeps
    them all the same)."""

    def __init__(self, sequence: int, reason: str, file_id: str | None = None, keys: list[str] | None = None):
        self.sequence, self.reason, self.file_id, self.keys = sequence, reason, file_id, keys or []
        super().__init__(f"store record {record_name(sequence)} is invalid: {reason}")


def record_name(sequence: int) -> str:
    """The record's object under the store: `_log/<20 digits>.json`."""
    return f"_log/{sequence:020d}.json"


def parse(sequence: int, data: bytes) -> dict[str, Any]:
    """The record stored at `sequence`, checked; BadRecord if it cannot be believed."""
    if len(data) > MAX_BYTES:
        raise BadRecord(sequence, f"larger than {MAX_BYTES // 2**20} MiB")
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadRecord(sequence, f"not JSON ({e})") from None
    if not isinstance(record, dict):
        raise BadRecord(sequence, f"a JSON {type(record).__name__}, not an object")
    file_id, keys = _claims(record)
    fmt = record.get("format")
    if fmt not in FORMATS:
        raise BadRecord(
            sequence, f"format {str(fmt)[:80]!r} is not one this trainfiles reads ({', '.join(FORMATS)})", file_id, keys
        )
    try:
        _schema(fmt).validate_python(record)
        if record.get("sequence") != sequence:  # a protocol record may lack it: the object's form
            raise ValueError(f"its sequence says {record.get('sequence')}")
        if fmt in COMMITS:
            _check_commit(record, data)
            return record
        check_stamp(record["created_at"], "created_at")
        if fmt == REPAIR and any(s >= sequence for s in record["set_aside"]):
            raise ValueError("it sets aside a record that is not before it")
        if fmt == REGISTRATION:
            _check_registration(record)
    except ValidationError as e:
        raise BadRecord(sequence, first_errors(e), file_id, keys) from None
    except (ValueError, InvalidInput, enriched.Ineligible) as e:
        reason = "; ".join(e.reasons) if isinstance(e, enriched.Ineligible) else str(e)
        raise BadRecord(sequence, reason, file_id, keys) from None
    return record


def check_own(record: dict[str, Any]) -> None:
    """InvalidInput if a commit record this process is about to publish would not be
    believed by a reader (a description or user name too long for it, say): checked as
    `parse` checks one read, but for its members, which `member_problem` checked as each
    was gathered (they may be a spool of 100,000)."""
    head = {**record, "sequence": 1}
    for key in ("members", "members_added"):
        if key in head:
            head[key] = []
    if "members" in head:
        head["statistics"] = {**record["statistics"], "total_conversations": 0}
    if "members_added" in head:
        head["added"] = []
    try:
        _schema(record["format"]).validate_python(head)
        _check_commit(head, b"")
    except ValidationError as e:
        raise InvalidInput(f"the store's readers would refuse this change: {first_errors(e)}") from None
    except (ValueError, InvalidInput) as e:
        raise InvalidInput(f"the store's readers would refuse this change: {e}") from None


def member_problem(member: dict[str, Any]) -> str | None:
    """Why a conversation's member values cannot go into a record a reader believes, if so."""
    stamped = {**member, "added_at": member["added_at"] or "2000-01-01T00:00:00Z", "added_by": member["added_by"] or ""}
    try:
        _schema("member").validate_python(stamped)  # who added it, and when, are checked with the record
    except ValidationError as e:
        return f"cannot be recorded in the store: {first_errors(e)}"
    return None


def parse_protocol(data: bytes) -> dict[str, Any]:
    """The store's protocol object, checked; InvalidInput if it cannot be believed."""
    if len(data) > MAX_TEXT:
        raise InvalidInput(f"larger than {MAX_TEXT} bytes")
    try:
        record: dict[str, Any] = _schema(PROTOCOL).validate_python(orjson.loads(data))
        if "sequence" in record:
            raise ValueError("the protocol object has a sequence; a protocol record belongs in the log")
        check_stamp(record["created_at"], "created_at")
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"not JSON ({e})") from None
    except ValidationError as e:
        raise InvalidInput(first_errors(e)) from None
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    return record


def check_own_registration(record: dict[str, Any]) -> None:
    """InvalidInput if a registration record this process is about to publish would not be
    believed (a path or a value longer than a record may hold, say)."""
    try:
        _schema(REGISTRATION).validate_python({**record, "sequence": 1})
        _check_registration(record)
    except ValidationError as e:
        raise InvalidInput(f"the store's readers would refuse this registration: {first_errors(e)}") from None
    except ValueError as e:
        raise InvalidInput(f"the store's readers would refuse this registration: {e}") from None


def _check_registration(record: dict[str, Any]) -> None:
    ids = [c["conversation_id"] for c in record["conversations"]]
    if len(set(ids)) != len(ids):
        raise ValueError("a conversation is registered twice")


def check_head(head: dict[str, Any]) -> None:
    """ValueError unless a version's `parent` and `restored_from` are what its number and
    operation allow (a record's, or a checkpoint's version)."""
    version, parent = head["version"], head["parent"]
    if parent != (version - 1 or None):
        raise ValueError(f"version {version} names parent {parent}")
    restored = head["restored_from"]
    if (head["operation"] == "restore") != (restored is not None) or (restored is not None and restored >= version):
        raise ValueError(f"operation {head['operation']} with restored_from {restored}")


def check_output_key(file_id: str, kind: str, key: str) -> None:
    """ValueError unless `key` is one of the file's staged outputs: never outside the store."""
    if not re.fullmatch(rf"{file_id}/versions/\d{{6}}-[0-9a-f]{{12}}/training\.{kind}", key):
        raise ValueError(f"output key {key[:200]!r} is not under {file_id}/versions/")


def check_name(name: str) -> None:
    """ValueError unless `name` is one trainfiles gives a training file."""
    refuse_hidden_characters(name, "file.name")
    if name != name.strip() or enriched.UUID_RE.fullmatch(name):
        raise ValueError(f"file.name {name[:80]!r} is not a name trainfiles gives")


def _check_commit(record: dict[str, Any], data: bytes) -> None:
    check_head(record)
    for kind in KINDS:
        check_output_key(record["file_id"], kind, record["outputs"][kind]["key"])
    if record["format"] == CHANGE:
        _check_change(record)
    if "members" in record and record["statistics"]["total_conversations"] != len(record["members"]):
        raise ValueError(
            f"{len(record['members'])} members for total_conversations {record['statistics']['total_conversations']}"
        )
    ids = [m["conversation_id"] for m in record.get("members", record.get("members_added", []))]
    if len(set(ids)) != len(ids):
        raise ValueError("a conversation is a member twice")
    for where, stamp in (
        ("created_at", record["created_at"]),
        ("file.created_at", record["file"]["created_at"]),
        ("file.last_updated", record["file"]["last_updated"]),
    ):
        check_stamp(stamp, where)
    check_name(record["file"]["name"])
    enriched.check_depth(data, record)  # the profile must be writable again


def _check_change(record: dict[str, Any]) -> None:
    """A commit/2 holds every member for WHOLE operations, those it added for an add (the ids
    `added` names, in order), and no member otherwise."""
    operation = record["operation"]
    if operation in ("create", "migrate") and record["version"] != 1:
        raise ValueError(f"a {operation} of version {record['version']}")
    for key in ("added", "removed"):
        if len(set(record[key])) != len(record[key]):
            raise ValueError(f"a conversation twice in `{key}`")
        if record[key] and operation not in (*WHOLE, "remove" if key == "removed" else "add"):
            raise ValueError(f"a commit/2 {operation} with conversations `{key}`")
    if (operation in WHOLE) != ("members" in record):
        raise ValueError(f"a commit/2 {operation} {'lacks' if operation in WHOLE else 'has'} members")
    if ("members_added" in record) != (operation == "add"):
        raise ValueError(f"a commit/2 {operation} {'lacks' if operation == 'add' else 'has'} members_added")
    if operation == "add" and [m["conversation_id"] for m in record["members_added"]] != record["added"]:
        raise ValueError("members_added are not the conversations `added` names")


def check_stamp(value: str, where: str) -> None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where} {value!r} is not a date") from None
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise ValueError(f"{where} {value!r} is outside the years {YEARS[0]} to {YEARS[1]}")


def _claims(record: dict[str, Any]) -> tuple[str | None, list[str]]:
    """What a record that fails still says, read leniently: the file it would change (a
    UUID only) and every output key it names."""
    file_id = record.get("file_id")
    file_id = (
        file_id if isinstance(file_id, str) and enriched.UUID_RE.fullmatch(file_id) and file_id.islower() else None
    )
    outputs = record.get("outputs")
    found = outputs.values() if isinstance(outputs, dict) else []
    keys = [
        o["key"] for o in found if isinstance(o, dict) and isinstance(o.get("key"), str) and len(o["key"]) <= MAX_TEXT
    ]
    return file_id, keys


def first_errors(error: ValidationError, shown: int = 3) -> str:
    problems = [f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors()[:shown]]
    more = error.error_count() - shown
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
