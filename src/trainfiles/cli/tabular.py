"""Records for other programs, as sqlite-utils prints them: CSV or TSV with a header row, or
newline-delimited JSON. Nested values (the scaffolding distribution) are JSON text in a cell."""

import csv
import io

import orjson


def delimited(records: list[dict], delimiter: str) -> str:
    """CSV (`,`) or TSV (`\\t`): a header row of the records' keys, then one row each."""
    if not records:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(records[0])
    writer.writerows([_cell(value) for value in rec.values()] for rec in records)
    return out.getvalue()


def lines(records: list[dict]) -> str:
    """One compact JSON object per line."""
    return "".join(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE).decode() for rec in records)


def _cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
