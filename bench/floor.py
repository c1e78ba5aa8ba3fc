"""The floor of `create`: the least work any tool must do, in one process with orjson.

Read every source once, write the full JSON and the JSONL once, everything held in memory;
no checks, no catalog, no digests. Usage: floor.py IDS_FILE SOURCE_DIR OUT_DIR
"""

import sys
from pathlib import Path

import orjson

ids_file, source, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
conversations = []
for cid in Path(ids_file).read_text().split():
    doc = orjson.loads((source / cid / "enriched.json").read_bytes())
    conversations.append({"conversation_metadata": {"conversation_id": cid}, "training_pairs": doc["training_pairs"]})
(out / "training.json").write_bytes(
    orjson.dumps({"training_file_metadata": {}, "conversations": conversations}, option=orjson.OPT_INDENT_2)
)
with open(out / "training.jsonl", "wb") as f:
    for conversation in conversations:
        cid = conversation["conversation_metadata"]["conversation_id"]
        for pair in conversation["training_pairs"]:
            if pair["target_response"] is not None:
                f.write(orjson.dumps({"id": f"{pair['id']}_{cid[:8]}", "conversation_id": cid, **pair}) + b"\n")
