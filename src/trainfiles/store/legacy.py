"""Training files of catalogs made before the store held versions (trainfiles 0.1).

Their outputs sit at `<store>/<id>/training.json|jsonl` and their members in the catalog.
The first command that opens such a catalog publishes each of them to the store as
version 1 (operation `migrate`), then drops the old rows: once per file, on any machine.
"""

import orjson

from trainfiles import storage
from trainfiles.settings import Settings
from trainfiles.store import changes, commits
from trainfiles.store.catalog import Catalog
from trainfiles.store.changes import Draft
from trainfiles.store.members import Members
from trainfiles.store.outputs import spool
from trainfiles.store.rows import member_row


def migrate(settings: Settings, catalog: Catalog) -> None:
    for row in catalog.legacy_files():
        if catalog.find_file(row["id"]) is None:
            _publish(settings, catalog, row)
        with catalog.write():
            catalog.drop_legacy(row["id"])


def _publish(settings: Settings, catalog: Catalog, row: dict) -> None:
    restores = catalog.legacy_restores(row["id"])
    outputs = {}
    for kind in commits.KINDS:
        url = row[f"{kind}_file_path"]
        outputs[kind] = restores[url] if url in restores else storage.read(url, sources=False)
    doc = orjson.loads(outputs["json"])
    meta = doc["training_file_metadata"]
    entries = {c["conversation_metadata"]["conversation_id"]: c["conversation_metadata"] for c in doc["conversations"]}
    members = [
        member_row(
            {
                **m,
                "created_at": entries.get(m["conversation_id"], {}).get("created_date"),
                "batch_job_id": entries.get(m["conversation_id"], {}).get("batch_id"),
            }
        )
        for m in catalog.legacy_members(row["id"])
    ]
    file = changes.file_fields(row, profile=doc["consultant_profile"])
    with spool(settings.store, row["id"]) as rebuilt:
        if any(storage.sha256(outputs[kind]) != row[f"{kind}_sha256"] for kind in commits.KINDS) or meta[
            "total_conversations"
        ] != len(members):
            # An add killed between its two writes: the outputs are ahead of the catalog,
            # which is what every command showed. Publish the catalog's state, built again.
            outputs = changes.from_sources({"version": 1, "file": file, "members": members}, rebuilt)

        def build(current: dict | None, now: str) -> Draft:
            return Draft("migrate", file, Members(members), outputs, added=[m["conversation_id"] for m in members])

        changes.commit(settings, catalog, row["id"], lambda current: None, build)
