"""`make bench`: whole-process timings and peak memory of trainfiles beside the plain script.

Generates ~50 KB conversations once into bench/out/, then runs each case a few times in
fresh processes and prints the best wall time and the peak RSS of that run.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
SOURCE = OUT / "conversations"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "fixtures"))

import generate  # noqa: E402

SIZES = (80, 1000)
REPEAT = 3


def generated(folder: Path, seeds: range, **options) -> list[str]:
    """Ids of generated conversations on disk under `folder` (made once, reused)."""
    return _made(folder, seeds, lambda seed: generate.make_conversation(seed, **options))


REFERENCE = ROOT.parent / "shared" / "reference" / "enriched"
REAL = OUT / "real-shaped"


def real_shaped(folder: Path, seeds: range) -> list[str]:
    """Ids of conversations re-keyed from the platform's real ones (../shared/reference/
    enriched, in turn), on disk under `folder` (made once, reused): as large and as varied as
    the platform writes them, where generated ones are cheaper to check."""
    import orjson

    references = [orjson.loads(p.read_bytes()) for p in sorted(REFERENCE.glob("*.json"))]
    if not references:
        sys.exit(f"bench: no reference conversations in {REFERENCE}")
    return _made(folder, seeds, lambda seed: generate.rekeyed(references[seed % len(references)], seed))


def _made(folder: Path, seeds: range, make) -> list[str]:
    """`make(seed)` written as `folder/<id>/enriched.json` for each seed not there yet; the ids."""
    ids = []
    for seed in seeds:
        cid = generate.conversation_uuid(seed)
        path = folder / cid / "enriched.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(generate.dumps(make(seed)), encoding="utf-8")
        ids.append(cid)
    return ids


def run(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(args)} failed")
    return elapsed, usage.ru_maxrss / 1024


def best(make_args, setup=None) -> tuple[float, float]:
    results = []
    for i in range(REPEAT):
        env = setup(i) if setup else None
        results.append(run(make_args(i), env))
    return min(results)


def tf(workdir: Path) -> list[str]:
    return [str(BIN / "trainfiles"), "--catalog", str(workdir / "catalog.db"), "--store", str(workdir / "store")]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ids = generated(SOURCE, range(10_001, 10_001 + max(SIZES) * 2), target_kb=50)
    rows = []
    for n in SIZES:
        work = OUT / f"local-{n}"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        work.mkdir(parents=True)
        first, second = work / "ids.txt", work / "more.txt"
        first.write_text("\n".join(ids[:n]) + "\n")
        second.write_text("\n".join(ids[n : 2 * n]) + "\n")
        subprocess.run([*tf(work), "conversations", "scan", str(SOURCE)], check=True, stdout=subprocess.DEVNULL)
        create = best(lambda i: [*tf(work), "create", "--name", f"c{n}-{i}", "--ids-file", str(first)])
        add = best(lambda i: [*tf(work), "add", f"c{n}-{i}", "--ids-file", str(second)])
        plain = best(
            lambda i: [
                sys.executable,
                str(ROOT / "bench" / "plain.py"),
                str(first),
                str(SOURCE),
                str(work / f"plain-{i}"),
            ]
        )
        rows.append((f"create from {n}", create, plain))
        rows.append((f"add {n} to {n}", add, None))

    rows.extend(export_rows())

    listing = OUT / "list-1000"
    if not (listing / "catalog.db").exists():
        # In a child process: the parent's memory would count in every later child's peak.
        subprocess.run([sys.executable, __file__, "populate", str(listing), *ids[:1000]], check=True)
    rows.append(("list, 1000 files in catalog", best(lambda i: [*tf(listing), "list", "--status", "all"]), None))
    history = OUT / "history-1000x3"
    if not (history / "store" / "_log").exists():
        subprocess.run([sys.executable, __file__, "populate", str(history), "--versions", *ids[:1001]], check=True)
    rebuilt = history / "rebuilt.db"
    rebuild = [
        str(BIN / "trainfiles"),
        "--catalog",
        str(rebuilt),
        "--store",
        str(history / "store"),
        "list",
        "--status",
        "all",
    ]
    rows.append(
        (
            "rebuild catalog: 1000 files x 3 versions",
            best(lambda i: rebuild, setup=lambda i: rebuilt.unlink(missing_ok=True)),
            None,
        )
    )
    rows.append(("list on the rebuilt catalog (up to date)", best(lambda i: rebuild), None))
    rows.append(("list --json, 1000 files", best(lambda i: [*tf(listing), "list", "--status", "all", "--json"]), None))
    rows.append(("trainfiles --help", best(lambda i: [str(BIN / "trainfiles"), "--help"]), None))
    report(rows)


def export_rows() -> list:
    """Peak memory of exports as the file grows tenfold: it should stay flat."""
    small = OUT / "small"
    rows = []
    for n in (1000, 10_000):
        work = OUT / f"export-{n}"
        if not (work / "catalog.db").exists():
            ids = generated(small, range(50_001, 50_001 + n), turns=4)
            work.mkdir(parents=True, exist_ok=True)
            (work / "ids.txt").write_text("\n".join(ids) + "\n")
            subprocess.run([*tf(work), "conversations", "scan", str(small)], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(
                [*tf(work), "create", "--name", "big", "--ids-file", str(work / "ids.txt")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        for fmt in ("messages", "jsonl"):
            out = str(work / f"out.{fmt}")
            rows.append(
                (
                    f"export {fmt}, {n} conversations",
                    best(lambda i: [*tf(work), "export", "big", "--format", fmt, "--output", out]),
                    None,
                )
            )
    return rows


def populate_catalog(folder: Path, ids: list[str], versions: bool) -> None:
    """1,000 one-conversation training files, made in-process through the use cases; with
    `versions`, each gets two more versions (an add, a new description)."""
    from trainfiles.settings import Settings
    from trainfiles.usecases import conversations, training_files

    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(catalog=str(folder / "catalog.db"), store=str(folder / "store"), user="bench")
    conversations.scan(settings, str(SOURCE), None)
    for i, cid in enumerate(ids[:1000]):
        name = f"file-{i:04d}"
        training_files.create(
            settings,
            name=name,
            description=None,
            target_model=None,
            profile_file=None,
            selection=training_files.Selection(ids=[cid]),
            skip_invalid=False,
        )
        if versions:
            training_files.add(settings, name, training_files.Selection(ids=[ids[1000]]), skip_invalid=False)
            training_files.describe(settings, name, "three versions", None)


TARGETS = {
    "create from 80": "< 0.3 s",
    "create from 1000": "< 1.5 s, faster than plain",
    "list, 1000 files in catalog": "< 0.3 s",
    "list --json, 1000 files": "< 0.3 s",
    "rebuild catalog: 1000 files x 3 versions": "< 2 s",
    "trainfiles --help": "< 0.3 s",
}


def report(rows) -> None:
    print(f"\n{'case':38} {'trainfiles':>12} {'peak MB':>8} {'plain script':>13} {'peak MB':>8}  target")
    for name, (seconds, peak), plain in rows:
        plain_cols = f"{plain[0]:>12.3f}s {plain[1]:>8.0f}" if plain else f"{'':>13} {'':>8}"
        print(f"{name:38} {seconds:>11.3f}s {peak:>8.0f} {plain_cols}  {TARGETS.get(name, '')}")
    print(f"\nbest of {REPEAT} runs each, whole process, {os.cpu_count()} cores; sources: {SOURCE}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["populate"]:
        with_versions = sys.argv[3:4] == ["--versions"]
        populate_catalog(Path(sys.argv[2]), sys.argv[4 if with_versions else 3 :], with_versions)
    else:
        main()
