"""What pages read besides the commands' results (`trainfiles report` and `serve`): a file's
members with their statistics, many conversations' transcripts at once, and the lengths of
a file's replies. Each opens the catalog once, however many rows it gives."""

from collections.abc import Iterable, Iterator

import orjson

from trainfiles import storage
from trainfiles.errors import NotFound
from trainfiles.settings import Settings
from trainfiles.usecases import exports
from trainfiles.usecases.conversations import source_pairs
from trainfiles.usecases.finding import find, open_catalog, open_index


def members(settings: Settings, ref: str) -> Iterator[dict]:
    """A training file's members (latest version) in file order, each with the statistics
    its commit recorded: quality_score, human_reviewed, persona_key, emotional_arc_key,
    topic_key, training_pairs, batch_job_id, added_at, added_by."""
    catalog = open_catalog(settings)
    return catalog.members(find(catalog, ref)["id"])


def transcripts(settings: Settings, ids: Iterable[str]) -> Iterator[dict]:
    """Each conversation's record (as `conversations show` gives it) with `pairs`, the training
    pairs of its source in full: None, with `source_error` saying why, when they cannot be
    read (an id this catalog has not registered gives only that). A source is read only where
    this machine's own scan or import found it: another machine's registration names any
    path it likes. Sources are read many at a time, ahead of the caller, and let go once
    yielded."""
    catalog = open_index(settings)
    wanted = list(ids)
    records = catalog.conversations(wanted)
    named = [records[cid]["enriched_file_path"] for cid in wanted if records.get(cid, {}).get("enriched_file_path")]
    here = catalog.registered_paths(named)
    reads = storage.read_each([path for path in named if path in here], digests=False)
    for cid in wanted:
        rec = records.get(cid)
        if rec is None:
            yield {"conversation_id": cid, "pairs": None, "source_error": "not registered in this catalog"}
            continue
        if not rec["enriched_file_path"]:
            pairs, problem = None, "no enriched_file_path"
        elif rec["enriched_file_path"] not in here:
            pairs, problem = None, "registered by another machine: scan its folder here to read it"
        else:
            _, data, _ = next(reads)
            pairs, problem = (None, str(data)) if isinstance(data, NotFound) else source_pairs(data)
        yield {**rec, "pairs": pairs, "source_error": problem}


def reply_lengths(settings: Settings, ref: str, tokenizer: str | None = None) -> list[int]:
    """The length of every reply the file trains on (each JSONL row's target response), in
    characters, or in tokens of `tokenizer` (a path or cached model id), from its stored JSONL."""
    count = len
    if tokenizer is not None:
        from trainfiles.core.tokenizing import Tokens

        tokens = Tokens(tokenizer)

        def count(text: str) -> int:
            return len(tokens.encode([{"role": "assistant", "content": text}], [0]).loss[0])

    lengths = []
    for line in exports.stored(settings, ref, "jsonl", header=False):
        if not line.strip():  # what is left of the header line
            continue
        reply = orjson.loads(line).get("target_response")
        if isinstance(reply, str):
            lengths.append(count(reply))
    return lengths
