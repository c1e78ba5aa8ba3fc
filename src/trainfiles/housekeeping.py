"""Integrity and housekeeping of the store: `verify` recomputes digests against the commits,
`gc` deletes what no commit references."""

import contextlib
import os
import time

from . import commits, storage
from .settings import Settings
from .training_files import find, open_catalog


def verify(settings: Settings, ref: str | None, sources: bool) -> dict:
    """Every stored output (and with `sources`, every member's source) against the sha256 its
    commit recorded. Outputs of older versions that `gc --keep` deleted are counted, not
    mismatches; the latest version's must be there."""
    catalog = open_catalog(settings)
    rows = [find(catalog, ref)] if ref else catalog.list_files(None)
    checked, pruned, mismatches = 0, 0, []

    def compare(url: str, expected: str, what: str) -> None:
        nonlocal checked
        checked += 1
        try:
            actual, _ = storage.digest(url)
        except Exception as e:  # missing or unreadable: a mismatch to name, not a stop
            mismatches.append({"object": url, "problem": f"{what} cannot be read: {e}"})
            return
        if actual != expected:
            mismatches.append({"object": url, "problem": f"{what}: sha256 {actual[:12]}, commit says {expected[:12]}"})

    for row in rows:
        seen = set()
        for version in catalog.versions(row["id"]):
            latest = version["version"] == row["version"]
            for kind in commits.KINDS:
                key, expected = version[f"{kind}_key"], version[f"{kind}_sha256"]
                url = storage.join(settings.store, key)
                if latest:
                    fixed = storage.join(settings.store, commits.fixed_key(row["id"], kind))
                    compare(fixed, expected, f"{row['name']} download copy of version {version['version']} {kind}")
                if key in seen:  # a version that kept its parent's outputs, or restored older ones
                    continue
                seen.add(key)
                if not latest and not storage.exists(url):
                    pruned += 1
                    continue
                compare(url, expected, f"{row['name']} version {version['version']} {kind}")
        if sources:
            for member in list(catalog.members(row["id"])):  # no read held open while hashing
                compare(member["source_path"], member["source_sha256"], f"{row['name']} source of {member['conversation_id']}")
    return {"checked": checked, "pruned": pruned, "mismatches": mismatches, "ok": not mismatches}


def gc(settings: Settings, keep: int | None, dry_run: bool, min_age: float) -> dict:
    """Delete staged outputs no commit references, temporary files and open uploads older
    than `min_age` seconds; with `keep`, also the outputs of all but each file's newest
    `keep` versions (their commits stay, and such a version is built again on export)."""
    catalog = open_catalog(settings)
    referenced = set()
    for row in catalog.list_files(None):
        versions = catalog.versions(row["id"])
        kept = versions if keep is None else versions[-keep:]
        referenced.update(v[f"{kind}_key"] for v in kept for kind in commits.KINDS)
    root = storage.join(settings.store)
    cutoff = time.time() - min_age
    garbage = []
    for obj in sorted(storage.listing(settings.store), key=lambda obj: obj["url"]):
        key = obj["url"][len(root) :].lstrip("/")
        name = key.rsplit("/", 1)[-1]
        staged = "/versions/" in key and key not in referenced
        if (staged or name.startswith(".tmp-")) and obj["modified"] <= cutoff:
            garbage.append(obj)
    if not dry_run:
        for obj in garbage:
            storage.remove(obj["url"])
        if storage.is_local(settings.store):
            _remove_empty_folders(root)
    uploads = storage.unfinished_uploads(settings.store, cutoff, abort=not dry_run)
    return {
        "dry_run": dry_run,
        "deleted": [obj["url"] for obj in garbage],
        "bytes": sum(obj["size"] for obj in garbage),
        "aborted_uploads": uploads,
    }


def _remove_empty_folders(root: str) -> None:
    """Folders left empty below the store's root (a killed command's staging or spool)."""
    for folder, _, _ in os.walk(root, topdown=False):
        if folder != root:
            with contextlib.suppress(OSError):  # one that holds something stays
                os.rmdir(folder)
