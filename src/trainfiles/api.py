"""The Python library: every command of the CLI as a typed call.

    from trainfiles import Trainfiles
    with Trainfiles(store="s3://bucket/training-files") as tf:
        tf.scan("s3://bucket/enriched")
        f = tf.create("dec-batch", batch="2025-12-02", target_model="llama-3.1-8b")
        f = f.add(ids=["2e6e3685"])
        rows = list(f.rows("messages"))

Settings default as the CLI's do (argument > TRAINFILES_* environment > default); failures
raise `TrainfilesError` kinds, whose `exit_code` the CLI exits with. Results are frozen
dataclasses; `TrainingFile` is a version of a file, and its changes return the next one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainfiles.settings import Settings, resolve

if TYPE_CHECKING:
    import datasets

    from trainfiles.usecases.gathering import Selection


@dataclass(frozen=True)
class Registration:
    """What a scan or an import registered: counts, refusals, moves and missing sources."""

    registered: int
    updated: int
    invalid: list[dict[str, str]]
    moved: list[dict[str, str]] = field(default_factory=list)
    missing_sources: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Version:
    """One version of a training file, as `trainfiles log` lists it."""

    version: int
    parent: int | None
    created_at: str
    created_by: str
    operation: str
    added: list[str]
    removed: list[str]
    conversation_count: int
    total_training_pairs: int
    json_sha256: str
    jsonl_sha256: str
    restored_from: int | None


@dataclass(frozen=True)
class TrainingFile:
    """A training file at one version, with the statistics of `cli.md`'s record. Changes
    return the file's next version; reads are of this file's latest unless told."""

    id: str
    name: str
    version: int
    description: str | None
    target_model: str | None
    status: str
    conversation_count: int
    total_training_pairs: int
    avg_quality_score: float | None
    min_quality_score: float | None
    max_quality_score: float | None
    human_reviewed_count: int
    scaffolding_distribution: dict[str, dict[str, int]]
    json_file_path: str
    jsonl_file_path: str
    json_file_size: int
    jsonl_file_size: int
    created_by: str
    created_at: str
    updated_at: str
    last_updated_at: str
    storage_bucket: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    _tf: Trainfiles | None = field(default=None, repr=False, compare=False)

    @property
    def conversation_ids(self) -> list[str]:
        """The member conversations, in file order."""
        from trainfiles.usecases import training_files

        ids: list[str] = training_files.show(self._settings, self.id)["conversation_ids"]
        return ids

    def members(self, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The members (of the file's latest version) from the `offset`-th on, at most `limit`,
        each with its statistics: quality_score, human_reviewed, persona_key,
        emotional_arc_key, topic_key, training_pairs, batch_job_id, added_at, added_by."""
        from itertools import islice

        from trainfiles.usecases import browsing

        _at_least("limit", limit)
        _at_least("offset", offset, 0)
        stop = None if limit is None else offset + limit
        return list(islice(browsing.members(self._settings, self.id), offset, stop))

    def reply_lengths(self, tokenizer: str | None = None) -> list[int]:
        """The length of every reply the file trains on, in characters, or in tokens of
        `tokenizer` (a tokenizer.json, its folder, or a cached model id)."""
        from trainfiles.usecases import browsing

        return browsing.reply_lengths(self._settings, self.id, tokenizer)

    def add(
        self,
        ids: Sequence[str] = (),
        *,
        batch: str | None = None,
        skip_invalid: bool = False,
        skip_present: bool = False,
    ) -> TrainingFile:
        """Append conversations (ids, unique id prefixes, or a whole batch); `skip_present`
        leaves out those already in the file (none left: this version, unchanged)."""
        from trainfiles.usecases import training_files

        added = training_files.add(self._settings, self.id, _selection(ids, batch), skip_invalid, skip_present)
        return self._session._file(added)

    def remove(self, ids: Sequence[str], *, skip_absent: bool = False) -> TrainingFile:
        from trainfiles.usecases import training_files

        return self._session._file(training_files.remove(self._settings, self.id, _ids(ids), skip_absent))

    def archive(self) -> TrainingFile:
        from trainfiles.usecases import training_files

        return self._session._file(training_files.archive(self._settings, self.id))

    def unarchive(self) -> TrainingFile:
        from trainfiles.usecases import training_files

        return self._session._file(training_files.unarchive(self._settings, self.id))

    def rename(self, new_name: str) -> TrainingFile:
        from trainfiles.usecases import training_files

        return self._session._file(training_files.rename(self._settings, self.id, new_name))

    def describe(self, description: str | None = None, target_model: str | None = None) -> TrainingFile:
        """Change the description and/or target model ('' clears one)."""
        from trainfiles.usecases import training_files

        return self._session._file(training_files.describe(self._settings, self.id, description, target_model))

    def restore(self, version: int, as_was: bool = False) -> TrainingFile:
        from trainfiles.usecases import training_files

        return self._session._file(training_files.restore(self._settings, self.id, version, as_was))

    def log(self) -> list[Version]:
        """Every version, oldest first."""
        from trainfiles.usecases import training_files

        return [Version(**v) for v in training_files.log(self._settings, self.id)]

    def export(
        self,
        format: str = "jsonl",
        *,
        path: str | Path | None = None,
        version: int | None = None,
        rows: str | None = None,
        with_metadata: bool = False,
        header: bool = True,
    ) -> bytes | None:
        """The export `trainfiles export FILE --format FORMAT` writes: its bytes, or written
        to `path` (atomically) and None. Checked against the commit as it streams."""
        from trainfiles import storage
        from trainfiles.usecases import exports

        _at_least("version", version)
        chunks = exports.output(self._settings, self.id, format, rows, with_metadata, version, header)
        if path is None:
            return b"".join(chunks)
        storage.write_atomic(str(path), chunks, create_folder=False)
        return None

    def url(self, format: str = "jsonl", *, expires: int = 3600, version: int | None = None) -> str:
        """A time-limited URL (`expires` seconds) that downloads a version's stored json or
        jsonl: `trainfiles export FILE --url`. Remote stores only (InvalidInput on a folder)."""
        from trainfiles.usecases import exports

        _at_least("version", version)
        _at_least("expires", expires)
        return exports.sign(self._settings, self.id, format, expires, version)

    def rows(
        self,
        format: str = "messages",
        mode: str | None = None,
        *,
        with_metadata: bool = False,
        version: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Trainer rows, one at a time (the same rows `export --format FORMAT` writes)."""
        from trainfiles.usecases import exports

        _at_least("version", version)
        return (row for _, row in exports.trainer_rows(self._settings, self.id, format, mode, with_metadata, version))

    def to_dataset(self, format: str = "messages", mode: str | None = None, **options: Any) -> datasets.Dataset:
        """The rows as a Hugging Face `datasets.Dataset` (the `datasets` package needed)."""
        try:
            import datasets
        except ImportError:
            from trainfiles.errors import UsageError

            raise UsageError("to_dataset needs the `datasets` package: pip install datasets") from None
        return datasets.Dataset.from_generator(lambda: self.rows(format, mode, **options))

    def check(
        self, format: str = "messages", mode: str | None = None, max_tokens: int = 1024, tokenizer: str | None = None
    ) -> dict[str, Any]:
        """The pre-training report of `trainfiles check FILE`."""
        from trainfiles.usecases import exports

        return exports.check(self._settings, self.id, format, mode, max_tokens, tokenizer)

    @property
    def _session(self) -> Trainfiles:
        if self._tf is None:
            raise RuntimeError("this TrainingFile was not made by a Trainfiles session")
        return self._tf

    @property
    def _settings(self) -> Settings:
        return self._session.settings


class Trainfiles:
    """One catalog, one store, one user: the CLI's `--catalog`, `--store` and `--user`."""

    def __init__(self, catalog: str | None = None, store: str | None = None, user: str | None = None):
        import os

        self.settings = resolve(
            catalog if catalog is not None else os.environ.get("TRAINFILES_CATALOG"),
            store if store is not None else os.environ.get("TRAINFILES_STORE"),
            user if user is not None else os.environ.get("TRAINFILES_USER"),
            False,
        )

    def __enter__(self) -> Trainfiles:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing stays open between calls: each opens the catalog it needs and closes it."""

    # Conversations

    def scan(self, url: str, batch: str | None = None) -> Registration:
        """Register every enriched conversation under a folder or URL."""
        from trainfiles.usecases import conversations

        return Registration(**conversations.scan(self.settings, url, batch))

    def import_manifest(self, path: str, base: str | None = None, allow_outside_base: bool = False) -> Registration:
        """Register conversations from the platform's manifest export (CSV or JSON Lines)."""
        from trainfiles.usecases import conversations

        return Registration(**conversations.import_manifest(self.settings, path, base, allow_outside_base))

    def conversations(self, status: str | None = None, batch: str | None = None) -> list[dict[str, Any]]:
        from trainfiles.usecases import conversations

        return conversations.list_conversations(self.settings, status, batch)

    def conversation(self, ref: str) -> dict[str, Any]:
        from trainfiles.usecases import conversations

        return conversations.show(self.settings, ref)

    def transcripts(self, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Each conversation's record with `pairs`, its source's training pairs in full (None,
        and `source_error` saying why, when they cannot be read); sources read ahead."""
        from trainfiles.usecases import browsing

        return browsing.transcripts(self.settings, _ids(ids))

    # Training files

    def create(
        self,
        name: str,
        ids: Sequence[str] = (),
        *,
        batch: str | None = None,
        description: str | None = None,
        target_model: str | None = None,
        profile: str | None = None,
        skip_invalid: bool = False,
    ) -> TrainingFile:
        """A new training file of the conversations named (ids or prefixes) or of a batch."""
        from trainfiles.usecases import training_files

        created = training_files.create(
            self.settings,
            name=name,
            description=description,
            target_model=target_model,
            profile_file=profile,
            selection=_selection(ids, batch),
            skip_invalid=skip_invalid,
        )
        return self._file(created)

    def get(self, ref: str) -> TrainingFile:
        """A training file by name, id or unique id prefix (NotFound if none)."""
        from trainfiles.usecases import training_files

        return self._file(training_files.show(self.settings, ref))

    def files(
        self, status: str = "active", created_by: str | None = None, sort: str = "newest", limit: int | None = None
    ) -> list[TrainingFile]:
        from trainfiles.core.vocabulary import FILE_SORTS, FILE_STATUSES
        from trainfiles.errors import UsageError
        from trainfiles.usecases import training_files

        if sort not in FILE_SORTS or status not in (*FILE_STATUSES, "all"):
            raise UsageError(
                f"sort is one of {', '.join(FILE_SORTS)}; status one of {', '.join((*FILE_STATUSES, 'all'))}"
            )
        _at_least("limit", limit)
        return [self._file(rec) for rec in training_files.list_files(self.settings, status, created_by, sort, limit)]

    # The store

    def verify(self, ref: str | None = None, sources: bool = False, bases: Sequence[str] = ()) -> dict[str, Any]:
        from trainfiles.usecases import housekeeping

        return housekeeping.verify(self.settings, ref, sources, tuple(bases))

    def gc(self, keep: int | None = None, dry_run: bool = False, min_age: float = 3600) -> dict[str, Any]:
        from trainfiles.usecases import housekeeping

        _at_least("keep", keep)
        if min_age < 0:
            from trainfiles.errors import UsageError

            raise UsageError(f"min_age must be 0 or more seconds, not {min_age!r}")
        return housekeeping.gc(self.settings, keep, dry_run, min_age)

    def repair(self, dry_run: bool = False) -> dict[str, Any]:
        from trainfiles.usecases import housekeeping

        return housekeeping.repair(self.settings, dry_run)

    def check(
        self, path: str, format: str | None = None, max_tokens: int = 1024, tokenizer: str | None = None
    ) -> dict[str, Any]:
        """The pre-training report of `trainfiles check PATH` on an export file or folder."""
        from trainfiles.usecases import exports

        return exports.check(self.settings, path, format, None, max_tokens, tokenizer)

    def _file(self, rec: dict[str, Any]) -> TrainingFile:
        known = {f.name for f in fields(TrainingFile)} - {"_tf"}
        return TrainingFile(**{k: v for k, v in rec.items() if k in known}, _tf=self)


def _ids(ids: Sequence[str]) -> list[str]:
    from trainfiles.errors import UsageError

    if isinstance(ids, str):
        raise UsageError("ids must be a list of ids, not one string")
    return list(ids)


def _at_least(name: str, value: int | None, low: int = 1) -> None:
    """UsageError, as the CLI's parser gives, for a number below what the option takes."""
    from trainfiles.core.vocabulary import MAX_NUMBER
    from trainfiles.errors import UsageError

    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_NUMBER):
        raise UsageError(f"{name} must be a whole number from {low} to {MAX_NUMBER}, not {value!r}")


def _selection(ids: Sequence[str], batch: str | None) -> Selection:
    from trainfiles.errors import UsageError
    from trainfiles.usecases.gathering import Selection
    from trainfiles.usecases.selection import parse_ids

    ids = _ids(ids)
    if bool(ids) == bool(batch):
        raise UsageError("give ids or a batch, not both and not neither")
    return Selection(batch=batch) if batch else Selection(ids=parse_ids(list(ids), "ids"))
