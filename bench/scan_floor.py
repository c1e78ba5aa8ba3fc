"""The floor of `conversations scan`: walk the folder, parse every JSON file, insert one row
each into SQLite in one statement. No checks. Usage: scan_floor.py SOURCE_DIR DB"""

import os
import sqlite3
import sys

import orjson

source, db_path = sys.argv[1], sys.argv[2]
rows = []
for folder, _, files in os.walk(source):
    for name in files:
        if name.endswith(".json"):
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                doc = orjson.loads(f.read())
            rows.append((doc["dataset_metadata"]["dataset_name"], path))
db = sqlite3.connect(db_path)
db.execute("create table if not exists conversations (name text, path text)")
db.executemany("insert into conversations values (?, ?)", rows)
db.commit()
