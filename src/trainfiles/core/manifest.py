"""Reading a manifest: the platform's conversations table (joined with batch_items) as CSV or JSON Lines.

Empty cells mean unknown and are left out, so they never overwrite a known value.
"""

import csv
import io
import math
from collections.abc import Callable
from typing import Any

import orjson

from trainfiles.core.clock import normalize
from trainfiles.core.enriched import SCORE_RANGE, UUID_RE, too_deep
from trainfiles.core.vocabulary import CONVERSATION_FIELDS, ENRICHMENT_STATUSES
from trainfiles.errors import InvalidInput

SCORES = (
    "quality_score",
    "empathy_score",
    "clarity_score",
    "appropriateness_score",
    "brand_voice_alignment",
)
TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}


def parse_manifest(data: bytes, name: str, locate: Callable[[str], str]) -> list[dict]:
    """Manifest rows as conversation rows holding only known values.

    `enriched_file_path` is returned as `locate` gives it, which raises ValueError for a
    path it refuses. Every bad row is named in one InvalidInput.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"manifest {name}: not UTF-8 ({e})") from None
    rows = _jsonl(text, name) if _is_jsonl(name, text) else _csv(text, name)
    out, errors, seen = [], [], {}
    for where, raw in rows:
        try:
            row = _row(raw, locate)
        except ValueError as e:
            errors.append(f"{name} {where}: {e}")
            continue
        cid = row["conversation_id"]
        if cid in seen:
            errors.append(f"{name} {where}: conversation_id {cid} is also on {seen[cid]}")
            continue
        seen[cid] = where
        out.append(row)
    if errors:
        raise InvalidInput("bad manifest rows: ", errors, sep="; ")
    if not out:
        raise InvalidInput(f"manifest {name}: no rows")
    return out


def _is_jsonl(name: str, text: str) -> bool:
    lower = name.lower()
    if lower.endswith(".csv"):
        return False
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return True
    return text.lstrip().startswith("{")


def _csv(text: str, name: str) -> list[tuple[str, dict]]:
    # No cell is longer than the text: the csv module's own limit (128 KiB) would refuse
    # a long but valid cell.
    csv.field_size_limit(max(len(text), csv.field_size_limit()))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames or "conversation_id" not in reader.fieldnames:
            raise InvalidInput(f"manifest {name}: the header row has no conversation_id column")
        # Line numbers count the header as line 1, as an editor shows them.
        return [(f"line {reader.line_num}", row) for row in reader]
    except csv.Error as e:
        raise InvalidInput(f"manifest {name} line {reader.line_num}: {e}") from None


def _jsonl(text: str, name: str) -> list[tuple[str, dict]]:
    rows, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            if not rows and not errors and _one_document(text):
                raise InvalidInput(f"manifest {name}: one JSON document, not JSON Lines{_NOT_A_MANIFEST}") from None
            errors.append(f"line {number}: not valid JSON ({e.msg}, column {e.colno})")
            continue
        if not isinstance(value, dict):
            errors.append(f"line {number}: expected a JSON object")
        elif "training_pairs" in value:
            raise InvalidInput(f"manifest {name}: line {number} is an enriched conversation{_NOT_A_MANIFEST}")
        elif deep := too_deep(value, MAX_ROW_DEPTH):
            errors.append(f"line {number}: {deep} nested deeper than {MAX_ROW_DEPTH} levels")
        else:
            rows.append((f"line {number}", value))
    if errors:
        raise InvalidInput(f"manifest {name}: ", errors, sep="; ")
    return rows


_NOT_A_MANIFEST = "; register enriched conversation files with `trainfiles conversations scan`"
MAX_ROW_DEPTH = 10  # a row's values are scalars; a nested one is reported, not walked further


def _one_document(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _row(raw: dict, locate: Callable[[str], str]) -> dict:
    values: dict[str, Any] = {}
    problems = []
    for field in CONVERSATION_FIELDS:
        value = raw.get(field)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            if field == "conversation_id":
                problems.append("conversation_id is empty")
            continue
        try:
            values[field] = (
                locate(value) if field == "enriched_file_path" and isinstance(value, str) else _convert(field, value)
            )
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ValueError(", ".join(problems))
    values["manifest_fields"] = sorted(k for k in values if k != "conversation_id")
    return values


def _convert(field: str, value: Any) -> Any:
    shown = orjson.dumps(value).decode()
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if field == "conversation_id":
        if not (isinstance(value, str) and UUID_RE.fullmatch(value)):
            raise ValueError(f"conversation_id {shown} is not a UUID")
        return value.lower()
    if field == "enrichment_status":
        if value not in ENRICHMENT_STATUSES:
            raise ValueError(f"enrichment_status {shown} is not one of ({', '.join(ENRICHMENT_STATUSES)})")
        return value
    if field == "human_reviewed":
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE:
            return True
        if str(value).lower() in FALSE:
            return False
        raise ValueError(f"human_reviewed {shown} is not a boolean")
    if field in SCORES:
        if isinstance(value, bool):
            raise ValueError(f"{field} {shown} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"{field} {shown} is not a number")
        if not SCORE_RANGE[0] <= number <= SCORE_RANGE[1]:
            raise ValueError(f"{field} {shown} is not from {SCORE_RANGE[0]} to {SCORE_RANGE[1]}")
        return number
    if not isinstance(value, str):  # JSON Lines can hold numbers, lists and objects
        raise ValueError(f"{field} {shown} is not text")
    if field == "created_at":
        return _timestamp(value, shown)
    return value


def _timestamp(value: str, shown: str) -> str:
    try:
        return normalize(value)
    except ValueError:
        raise ValueError(
            f"created_at {shown} is not an ISO 8601 date or date-time (e.g. 2025-10-09T10:07:00Z)"
        ) from None
