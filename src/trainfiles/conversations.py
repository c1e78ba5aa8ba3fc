"""Registering source conversations: scanning storage for enriched files, importing the
platform's manifest, listing what the catalog holds."""

import os

from . import clock, enriched, prefixes, storage
from .catalog import Catalog
from .errors import NotFound, TrainfilesError
from .manifest import parse_manifest
from .progress import bar
from .settings import Settings

NO_ID = "no conversation id (dataset_metadata.dataset_name is not fp_conversation_<uuid>, nor is the folder a UUID)"


def scan(settings: Settings, url: str, batch: str | None) -> dict:
    """Register every enriched file under `url`; report registered, updated and invalid."""
    urls = storage.find_json(url)
    with bar("Reading conversations", len(urls)) as advance:
        contents = storage.read_many(urls, advance)
    rows, invalid, seen = [], [], {}
    for path, data in zip(urls, contents):
        if isinstance(data, NotFound):
            invalid.append({"path": path, "reason": str(data)})
            continue
        row, reason = _scanned_row(path, data)
        if row and row["conversation_id"] in seen:
            row, reason = None, f"conversation {row['conversation_id']} is also at {seen[row['conversation_id']]}"
        if row:
            seen[row["conversation_id"]] = path
            if batch:
                row["batch_job_id"] = batch
            rows.append(row)
        if reason:
            invalid.append({"path": path, "reason": reason})
    return _save_conversations(settings, rows, invalid)


def _scanned_row(path: str, data: bytes) -> tuple[dict | None, str | None]:
    """The catalog row a scanned file gives, and why it is ineligible if it is."""
    doc = None
    try:
        doc = enriched.parse(data)
        enriched.check(doc)
    except enriched.Ineligible as e:
        cid = enriched.conversation_id(doc, path)
        reason = "; ".join(e.reasons)
        if cid is None:
            return None, f"{reason}; {NO_ID}"
        return {
            "conversation_id": cid,
            "enrichment_status": "validation_failed",
            "enriched_file_path": path,
            "invalid_reason": reason,
        }, reason
    cid = enriched.conversation_id(doc, path)
    if cid is None:
        return None, NO_ID
    return {
        "conversation_id": cid,
        "enrichment_status": "completed",
        "enriched_file_path": path,
        "invalid_reason": None,
        **enriched.derive(doc),
    }, None


def import_manifest(settings: Settings, manifest: str, base: str | None) -> dict:
    """Register or update conversations from a manifest export."""
    rows = parse_manifest(storage.read(manifest), manifest)
    base = base or _parent(manifest)
    for row in rows:
        path = row.get("enriched_file_path")
        if path and not _is_absolute(path):
            row["enriched_file_path"] = storage.join(base, path)
    return _save_conversations(settings, rows, [])


def _save_conversations(settings: Settings, rows: list[dict], invalid: list[dict]) -> dict:
    catalog = Catalog(settings.catalog)
    with catalog.write():
        registered, updated = catalog.save_conversations(rows, clock.stamp())
    return {"registered": registered, "updated": updated, "invalid": invalid}


def list_conversations(settings: Settings, status: str | None, batch: str | None) -> list[dict]:
    return Catalog(settings.catalog).list_conversations(status, batch)


def show(settings: Settings, ref: str) -> dict:
    """One conversation's record by id or unique prefix, with the training pairs of its
    source file: how many, how many have a target response (the rows they give in a
    training file's JSONL), and each turn. `source_error` says why the pairs are unknown."""
    catalog = Catalog(settings.catalog)
    cid = prefixes.expand([ref.lower()], catalog.conversation_ids_starting, "conversation")[0]
    rec = catalog.conversations([cid]).get(cid)
    if rec is None:
        raise NotFound(f"unknown conversation id: {ref}")
    pairs, problem = _pairs(rec["enriched_file_path"])
    rec["training_pairs"] = None if pairs is None else len(pairs)
    rec["jsonl_rows"] = None if pairs is None else sum(p["target_response"] is not None for p in pairs)
    rec["turns"] = [
        {
            "turn_number": p["turn_number"],
            "has_target_response": p["target_response"] is not None,
            "quality_score": p["training_metadata"].get("quality_score"),
            "human_reviewed": p["training_metadata"].get("human_reviewed"),
        }
        for p in pairs or []
    ]
    rec["source_error"] = problem
    return rec


def _pairs(path: str | None) -> tuple[list[dict] | None, str | None]:
    if not path:
        return None, "no enriched_file_path"
    try:
        doc = enriched.parse(storage.read(path))
        enriched.check(doc)
    except (enriched.Ineligible, TrainfilesError) as e:
        return None, str(e)
    return doc["training_pairs"], None


def _parent(url: str) -> str:
    return url.rsplit("/", 1)[0] if "/" in url else "."


def _is_absolute(path: str) -> bool:
    return "://" in path or os.path.isabs(path)
