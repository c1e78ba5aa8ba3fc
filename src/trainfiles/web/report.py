"""`trainfiles report`: the pages written as a static site that opens from file:// (no
network: the stylesheet, the script and the charts are in it). Built in a folder beside the
target, then renamed into place, so a reader never sees half a report."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from trainfiles import Trainfiles
from trainfiles.core.clock import stamp
from trainfiles.errors import InvalidInput, StorageUnavailable
from trainfiles.progress import bar
from trainfiles.web import pages
from trainfiles.web.links import SIGNED_FOR, Links
from trainfiles.web.rendering import render

MARK = ".trainfiles-report"  # in every report: only a folder holding it is ever replaced


def write(
    tf: Trainfiles,
    out: str | Path,
    refs: list[str] | None = None,
    *,
    tokenizer: str | None = None,
    max_tokens: int | None = None,
    expires: int = SIGNED_FOR,
) -> dict[str, Any]:
    """Write the report of the files named (every file when none) to `out`: index.html, a
    page per file (members in pages of pages.PER_PAGE) and per member conversation. Returns
    {"path", "pages", "files", "conversations"}."""
    out = Path(out).absolute()
    if out.is_symlink():  # the report it names is replaced, not the link
        out = out.resolve()
    _replaceable(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise StorageUnavailable(f"cannot write a report in {out.parent}: {e.strerror or e}") from None
    try:
        summary = _write_all(tf, staging, refs or [], tokenizer, max_tokens, expires)
        (staging / MARK).write_text("written by trainfiles report\n")
        _swap(staging, out)
    except OSError as e:  # the folder's own (the store's are the library's errors already)
        shutil.rmtree(staging, ignore_errors=True)
        raise StorageUnavailable(f"cannot write the report {out}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"path": str(out), **summary}


def _replaceable(out: Path) -> None:
    if out.exists() and not (out.is_dir() and ((out / MARK).exists() or not any(out.iterdir()))):
        raise InvalidInput(f"{out} exists and is not a trainfiles report: give -o a new or empty folder")


def _swap(staging: Path, out: Path) -> None:
    """`staging` renamed to `out`; an old report there is renamed aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")  # a crashed run's may remain
        out.rename(old)
    staging.rename(out)
    out.chmod(0o777 & ~_umask())  # mkdtemp made it private; a report is for reading
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(
    tf: Trainfiles, root: Path, refs: list[str], tokenizer: str | None, max_tokens: int | None, expires: int
) -> dict[str, int]:
    generated = stamp()
    links = Links(report=True, expires=expires)
    for folder in ("static", "files", "conversations"):
        (root / folder).mkdir()
    for name in ("style.css", "table.js"):
        (root / "static" / name).write_bytes(resources.files("trainfiles.web").joinpath("static", name).read_bytes())
    index = pages.index_page(tf, refs)
    written = _page(root / "index.html", "index.html", links, generated, **index)
    members: dict[str, dict] = {}  # every member of the files, in order, once
    with bar("Writing file pages", len(index["files"])) as advance:
        for f in index["files"]:
            context = pages.file_page(tf, f.id, per_page=None, tokenizer=tokenizer, max_tokens=max_tokens)
            everyone = context.pop("members")
            del context["pager_state"]
            members.update((m["conversation_id"], m) for m in everyone if m["conversation_id"] not in members)
            here = links.at(1)
            for start in range(0, max(len(everyone), 1), pages.PER_PAGE):
                number = start // pages.PER_PAGE + 1
                written += _page(
                    root / here.file(f.id, number).removeprefix("../"),
                    "file.html",
                    here,
                    generated,
                    members=everyone[start : start + pages.PER_PAGE],
                    pager_state=pages.pager(len(everyone), number),
                    page_href=lambda n, f=f, here=here: here.file(f.id, n),
                    **context,
                )
            advance(1)
    with bar("Writing conversation pages", len(members)) as advance:
        for conversation in tf.transcripts(list(members)):
            here = links.at(1)
            path = root / here.conversation(conversation["conversation_id"]).removeprefix("../")
            member = members[conversation["conversation_id"]]
            written += _page(path, "conversation.html", here, generated, **pages.transcript(conversation, member))
            advance(1)
    return {"pages": written, "files": len(index["files"]), "conversations": len(members)}


def _page(path: Path, template: str, links: Links, generated: str, **context: Any) -> int:
    path.write_text(render(template, links=links, generated=generated, **context), encoding="utf-8")
    return 1
