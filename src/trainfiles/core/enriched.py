"""Reading one enriched conversation file: parse, check eligibility, derive its record.

Eligibility follows `format-v4.md` section 1: structure is checked, vocabularies stay open,
and every problem is reported with the JSON path and the rule it breaks.
"""

import re
from functools import cache
from typing import Any

import orjson

from trainfiles.core.clock import normalize
from trainfiles.errors import named

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
NAME_RE = re.compile(r"^fp_conversation_(" + UUID_RE.pattern + r")$", re.I)
MAX_DEPTH = 100  # levels of nested objects and arrays; real files have under 10
SCORE_RANGE = (0, 10)  # the platform's quality scores
BOM = b"\xef\xbb\xbf"


@cache
def _document_schema():
    """The structure of an enriched file, as a pydantic validator.

    Built on first use: pydantic is the slowest import here, and commands that only read
    the catalog (list, show) never need it.
    """
    from pydantic import ConfigDict, InstanceOf, StrictInt, StrictStr, TypeAdapter, with_config
    from typing_extensions import TypedDict

    strict = with_config(ConfigDict(strict=True))
    # Open parts are checked for their type only: `dict[str, Any]` copied every one of them
    # (JSON keys are strings already), 40% of the validation of a file.
    JSONObject, JSONArray = InstanceOf[dict], InstanceOf[list]

    @strict
    class Emotions(TypedDict):
        primary: StrictStr

    @strict
    class EmotionalContext(TypedDict):
        detected_emotions: Emotions

    @strict
    class Pair(TypedDict):
        id: StrictStr
        conversation_id: StrictStr
        turn_number: StrictInt
        conversation_metadata: JSONObject
        system_prompt: StrictStr
        conversation_history: JSONArray
        current_user_input: StrictStr
        emotional_context: EmotionalContext
        target_response: StrictStr | None
        training_metadata: JSONObject

    @strict
    class Document(TypedDict):
        dataset_metadata: JSONObject
        consultant_profile: JSONObject
        training_pairs: list[Pair]

    return TypeAdapter(Document)


def prepare() -> None:
    """Build the document validator now (before forking workers that all need it)."""
    _document_schema()


class Ineligible(Exception):
    """The file is not an eligible enriched conversation; `reasons` says why."""

    def __init__(self, reasons: list[str]):
        super().__init__(named(reasons, "; "))
        self.reasons = reasons


def parse(data: bytes) -> Any:
    """Parse JSON bytes; broken JSON is Ineligible with its line and column."""
    try:
        return orjson.loads(data[len(BOM) :] if data.startswith(BOM) else data)
    except orjson.JSONDecodeError as e:
        raise Ineligible([f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"]) from None


def check(doc: Any) -> dict:
    """Raise Ineligible naming every rule of format-v4 section 1 that `doc` breaks; else the
    record values derived from it (format-v4 section 2)."""
    if not isinstance(doc, dict):
        raise Ineligible([f"$: expected a JSON object, found {_kind(doc)}"])
    if "turns" in doc and "training_pairs" not in doc:
        raise Ineligible(["$: a raw conversation (`turns`), not an enriched file"])
    from pydantic import ValidationError

    try:
        _document_schema().validate_python(doc)
        reasons = []
    except ValidationError as e:
        reasons = [_describe(err) for err in e.errors()]
    pairs = doc.get("training_pairs")
    pairs = pairs if isinstance(pairs, list) else []
    if "training_pairs" in doc and not pairs:
        reasons.append("$.training_pairs: must not be empty")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            continue
        turn = pair.get("turn_number")
        if isinstance(turn, int) and turn != i + 1:
            reasons.append(f"$.training_pairs[{i}].turn_number: expected {i + 1}, found {turn}")
        for key in ("system_prompt", "current_user_input"):
            if isinstance(pair.get(key), str) and not pair[key].strip():
                reasons.append(f"$.training_pairs[{i}].{key}: must not be empty")
        score = (
            pair["training_metadata"].get("quality_score") if isinstance(pair.get("training_metadata"), dict) else None
        )
        if _number(score) and not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
            low, high = SCORE_RANGE
            reasons.append(
                f"$.training_pairs[{i}].training_metadata.quality_score: expected {low} to {high}, found {score!r}"
            )
    if pairs and all(isinstance(p, dict) and p.get("target_response") is None for p in pairs):
        reasons.append("$.training_pairs: no pair has a target_response")
    meta = doc.get("dataset_metadata")
    created = meta.get("created_date") if isinstance(meta, dict) else None
    created_at = _timestamp(created) if created not in (None, "") else None
    if created not in (None, "") and not created_at:
        shown = orjson.dumps(created).decode()
        reasons.append(
            "$.dataset_metadata.created_date: expected a date YYYY-MM-DD or an ISO 8601 date-time, "
            f"found {shown if len(shown) <= 60 else shown[:57] + '...'}"
        )
    if "input_parameters" in doc and not isinstance(doc["input_parameters"], dict):
        reasons.append(f"$.input_parameters: expected an object, found {_kind(doc['input_parameters'])}")
    elif not reasons:
        scaffolding = scaffolding_of(doc)
        missing = [key for key, field in _SCAFFOLDING_KEYS if not scaffolding[field]]
        if missing:
            reasons.append(
                "$.training_pairs[0].conversation_metadata: no v4 scaffolding "
                f"({', '.join(missing)}; an older v3 file?)"
            )
    if reasons:
        raise Ineligible(reasons)
    return _derived(pairs, scaffolding, created_at)


_SCAFFOLDING_KEYS = (
    ("persona_archetype", "persona_key"),
    ("emotional_arc_key", "emotional_arc_key"),
    ("training_topic_key", "training_topic_key"),
)


# What a depth count keeps of a document: brackets, quotes, and backslashes with every
# character that may follow one in JSON (so an escaped quote stays one); then only brackets
# (as parentheses: the document parsed, so they pair as they should) and quotes.
_ESCAPES_AND_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\/bfnrtu')
_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_NOT_OPENING = bytes(b for b in range(256) if b not in b"[{")
_AS_PARENTHESES = bytes.maketrans(b"[]{}", b"()()")
# The escapes of a backslash and of a quote, found left to right as JSON reads them (so
# `\\\"` is one of each): one regular expression, four times as fast as two `in` tests.
_QUOTE_OR_BACKSLASH_ESCAPED = re.compile(rb'\\[\\"]')


def check_depth(data: bytes, doc: Any) -> None:
    """Ineligible, naming the JSON path, if `doc` (parsed from `data`) nests deeper than
    MAX_DEPTH levels: deeper than orjson can write (255), it would fail when rendered.

    Measured on the bytes, at C speed: a document with no more opening brackets than that
    (in strings or not) cannot nest deeper; else escaped backslashes and quotes out, then
    strings out, then innermost pairs of brackets peeled off level by level. A walk of the
    document took five times as long, and runs only to name the path once the depth is
    known to be too much.
    """
    if len(data.translate(None, _NOT_OPENING)) <= MAX_DEPTH:  # no more levels than opening brackets
        return
    text = data.translate(None, _ESCAPES_AND_STRUCTURE)
    if _QUOTE_OR_BACKSLASH_ESCAPED.search(text):  # most documents have neither
        text = _QUOTE_OR_BACKSLASH_ESCAPED.sub(b"", text)
    # Most strings hold no bracket and leave two quotes side by side: removed at once. Two
    # side by side that close one string and open the next merge the two, which keeps the
    # brackets outside strings as they were.
    brackets, depth = text.translate(_AS_PARENTHESES, _STRUCTURE).replace(b'""', b""), 0
    if b'"' in brackets:
        brackets = b"".join(brackets.split(b'"')[::2])
    while brackets and depth <= MAX_DEPTH:  # one pass removes one level: the pairs empty before it
        brackets, depth = brackets.replace(b"()", b""), depth + 1
    if depth > MAX_DEPTH and (deep := too_deep(doc)):
        raise Ineligible([f"{deep}: nested deeper than {MAX_DEPTH} levels"])


def too_deep(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """The JSON path of the first container nested deeper than `limit` levels, else None.

    A loop, not recursion: the documents it exists for would overflow the stack.
    """
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        node, depth, trail = stack.pop()
        if depth > limit:
            return _path(trail)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((child, depth + 1, (trail, key)) for key, child in children if isinstance(child, (dict, list)))
    return None


def _path(trail: tuple | None) -> str:
    keys = []
    while trail:
        trail, key = trail
        keys.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "$" + "".join(reversed(keys))


def conversation_id(doc: Any, path: str) -> str | None:
    """The conversation UUID: from `dataset_name`, else the UUID folder holding the file."""
    meta = doc.get("dataset_metadata") if isinstance(doc, dict) else None
    name = meta.get("dataset_name") if isinstance(meta, dict) else None
    if isinstance(name, str) and (m := NAME_RE.match(name)):
        return m.group(1).lower()
    parts = path.rstrip("/").split("/")
    if len(parts) >= 2 and UUID_RE.fullmatch(parts[-2]):
        return parts[-2].lower()
    return None


def _derived(pairs: list[dict], scaffolding: dict, created_at: str | None) -> dict:
    scores = [s for p in pairs if _number(s := p["training_metadata"].get("quality_score"))]
    quality = round2(sum(scores) / len(scores)) if scores else None
    return {
        "persona_key": scaffolding["persona_key"] or None,
        "emotional_arc_key": scaffolding["emotional_arc_key"] or None,
        "topic_key": scaffolding["training_topic_key"] or None,
        "quality_score": quality,
        "human_reviewed": all(
            p["training_metadata"].get("human_reviewed") is True for p in pairs if p["target_response"] is not None
        ),
        "created_at": created_at,
        "tier": tier(quality),
    }


def scaffolding_of(doc: dict) -> dict:
    """Scaffolding keys and names: `input_parameters` first, else the first pair's metadata."""
    params = doc.get("input_parameters") or {}
    first = doc["training_pairs"][0]["conversation_metadata"]

    def pick(param_key: str, meta_key: str) -> str:
        return _str(params.get(param_key)) or _str(first.get(meta_key))

    return {
        "persona_key": pick("persona_key", "persona_archetype"),
        "persona_name": pick("persona_name", "client_persona"),
        "emotional_arc_key": pick("emotional_arc_key", "emotional_arc_key"),
        "emotional_arc": pick("emotional_arc_name", "emotional_arc"),
        "training_topic_key": pick("training_topic_key", "training_topic_key"),
        "training_topic": pick("training_topic_name", "training_topic"),
    }


def tier(quality: float | None) -> str:
    """Quality tier of a conversation score (format-v4 section 3)."""
    if quality is None:
        return "experimental"
    if quality >= 4.5:
        return "seed_dataset"
    if quality >= 3.5:
        return "production"
    if quality >= 2.5:
        return "experimental"
    return "rejected"


def round2(value: float) -> float:
    """Round half away from zero to 2 decimals, on the decimal value a user reads."""
    from decimal import ROUND_HALF_UP, Decimal

    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _timestamp(value: Any) -> str | None:
    """`value` normalized, or None if it is no timestamp."""
    try:
        return normalize(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _describe(err: dict) -> str:
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    if err["type"] == "missing":
        return f"{path}: required field missing"
    expected = _EXPECTED.get(err["ctx"]["class"] if err["type"] == "is_instance_of" else err["type"], err["msg"])
    return f"{path}: expected {expected}, found {_kind(err['input'])}"


_EXPECTED = {
    "dict": "an object",  # is_instance_of, by class
    "list": "an array",
    "string_type": "a string",
    "int_type": "an integer",
    "dict_type": "an object",
    "list_type": "an array",
    "typed_dict_type": "an object",
    "bool_type": "a boolean",
}


def difference(expected: Any, found: Any, path: str = "", context: int = 24) -> str:
    """Where two JSON values first differ, and both values there, short: `core_philosophy:
    the file's "...plan with care..." | this one's "...plan with "care"..."`."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(expected.keys() | found.keys()):
            if expected.get(key, _ABSENT) != found.get(key, _ABSENT):
                return difference(
                    expected.get(key, _ABSENT), found.get(key, _ABSENT), f"{path}.{key}" if path else key, context
                )
    if isinstance(expected, list) and isinstance(found, list) and len(expected) == len(found):
        for i, (a, b) in enumerate(zip(expected, found)):
            if a != b:
                return difference(a, b, f"{path}[{i}]", context)
    shown = _around(expected, found, context)
    return f"{path or 'the profile'}: the file's {shown[0]} | this one's {shown[1]}"


_ABSENT = object()


def _around(a: Any, b: Any, context: int) -> tuple[str, str]:
    """Both values, strings cut to the span around their first difference."""
    if a is _ABSENT or b is _ABSENT or not (isinstance(a, str) and isinstance(b, str)):
        return tuple("(absent)" if v is _ABSENT else _short(orjson.dumps(v).decode(), 2 * context) for v in (a, b))
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, at - context)
    return tuple(
        ("..." if start else "")
        + orjson.dumps(v[start : at + context]).decode()
        + ("..." if len(v) > at + context else "")
        for v in (a, b)
    )


def _short(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most] + "..."
