"""The plain alternative a user would write: load the files, write the full JSON and the JSONL.

Standard library only, no checks, no catalog. Usage: plain.py IDS_FILE SOURCE_DIR OUT_DIR
"""

import json
import sys
from pathlib import Path

ids_file, source, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
conversations = []
for cid in Path(ids_file).read_text().split():
    with open(source / cid / "enriched.json", encoding="utf-8") as f:
        doc = json.load(f)
    conversations.append({"conversation_metadata": {"conversation_id": cid}, "training_pairs": doc["training_pairs"]})
with open(out / "training.json", "w", encoding="utf-8") as f:
    json.dump({"training_file_metadata": {}, "conversations": conversations}, f, ensure_ascii=False, indent=2)
with open(out / "training.jsonl", "w", encoding="utf-8") as f:
    for conversation in conversations:
        cid = conversation["conversation_metadata"]["conversation_id"]
        for pair in conversation["training_pairs"]:
            if pair["target_response"] is not None:
                f.write(
                    json.dumps({"id": f"{pair['id']}_{cid[:8]}", "conversation_id": cid, **pair}, ensure_ascii=False)
                    + "\n"
                )
