"""`make bench`, at scale: create, add and scan beside their floors, as the size grows.

The floors are the least work any tool must do: `floor.py` reads every source once and
writes both outputs once, everything in memory with orjson (for an add: re-creating the
whole file); `scan_floor.py` walks, parses and inserts one row per file. Each case runs
alternately with its floor in fresh processes; the medians and their ratio are printed with
each side's peak memory. After an add, the same number of bytes is written and fsynced on its
own: what any durable add costs on this disk and this machine's memory at that hour.

Run: .venv/bin/python bench/scale.py [--sizes 10000 30000] [--real-sizes 10000] [--repeat 3]
Two kinds of sources, both made once under bench/out/: generated ones (~50 KB each) and
real-shaped ones, re-keyed from the platform's real conversations in
../shared/reference/enriched (as large and as varied as the platform writes them, and
costlier to check than generated ones). The goals hold for both.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import OUT, REAL, REFERENCE, ROOT, SOURCE, generated, real_shaped, run, tf

FLOOR = [sys.executable, str(ROOT / "bench" / "floor.py")]
SCAN_FLOOR = [sys.executable, str(ROOT / "bench" / "scan_floor.py")]


def alternate(repeat: int, ours, floor, before=None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median wall seconds and the peak RSS (MB) of each side, run in turn."""
    a, b = [], []
    for i in range(repeat):
        if before:
            before(i)
        a.append(run(ours(i)))
        b.append(run(floor(i)))
    return (statistics.median(t for t, _ in a), max(m for _, m in a)), (
        statistics.median(t for t, _ in b),
        max(m for _, m in b),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000], help="generated sources")
    parser.add_argument("--real-sizes", type=int, nargs="*", default=[10_000], help="real-shaped sources")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows, disk, metadata = [], [], []
    kinds = [
        ("generated", SOURCE, args.sizes, lambda n: generated(SOURCE, range(10_001, 10_001 + n + 1080), target_kb=50))
    ]
    if args.real_sizes and REFERENCE.is_dir():
        kinds.append(
            ("real-shaped", REAL, args.real_sizes, lambda n: real_shaped(REAL, range(10_001, 10_001 + n + 1080)))
        )
    elif args.real_sizes:
        print(f"bench: no {REFERENCE}: real-shaped sources left out")
    for kind, source, sizes, make in kinds:
        ids = make(max(sizes))
        for n in sizes:
            _measure(kind, source, ids, n, args.repeat, rows, disk, metadata)
    report(rows, args.repeat)
    for case, (log, checkpoints) in metadata:
        print(
            f"{case}: {(log + checkpoints) / 1e3:.1f} KB of metadata ({log / 1e3:.1f} KB of log, {checkpoints / 1e3:.1f} KB of checkpoints)"
        )
    history(SOURCE, generated(SOURCE, range(10_001, 10_501), target_kb=50), args.repeat)
    for case, seconds, (size, kept, reused) in disk:
        print(
            f"{case}: the new version is {size / 1e6:.0f} MB; writing and fsyncing that many bytes takes "
            f"{kept:.2f} s into a new file that stays ({reused:.2f} s into pages just freed; medians of {args.repeat}), "
            f"the add {seconds:.2f} s ({seconds / kept:.2f}x the first)"
        )


def _newest_record_bytes(work: Path) -> int:
    return max((work / "store" / "_log").iterdir()).stat().st_size


def _metadata(work: Path) -> tuple[int, int]:
    """Bytes of the store's log, and of its checkpoints (the store's and every file's)."""
    store = work / "store"
    log = sum(p.stat().st_size for p in (store / "_log").iterdir())
    checkpoints = [*store.glob("_checkpoints/*.json.gz"), *store.glob("*/checkpoints/*.json.gz")]
    return log, sum(p.stat().st_size for p in checkpoints)


def _written(work: Path, before: tuple[int, int]) -> tuple[int, int]:
    after = _metadata(work)
    return after[0] - before[0], after[1] - before[1]


def history(source: Path, ids: list[str], repeat: int) -> None:
    """The metadata a file's history costs, and what a new machine's first `list` pays for
    it: a file of 300 conversations grown by 100 adds of 2 (generated sources)."""
    work = OUT / "history"
    shutil.rmtree(work, ignore_errors=True)
    _link(source, ids[:500], work / "src")
    (work / "ids.txt").write_text("\n".join(ids[:300]) + "\n")
    subprocess.run([*tf(work), "conversations", "scan", str(work / "src")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*tf(work), "create", "--name", "h", "--ids-file", str(work / "ids.txt")], check=True, stdout=subprocess.DEVNULL
    )
    create = _newest_record_bytes(work)
    registered = _metadata(work)[0] - create  # the scan's registration record

    def first_list(i: int) -> list[str]:
        (work / f"fresh-{i}.db").unlink(missing_ok=True)
        return [*tf(work)[:1], "--catalog", str(work / f"fresh-{i}.db"), "--store", str(work / "store"), "list"]

    one = statistics.median(run(first_list(i))[0] for i in range(repeat))
    adds = []
    for k in range(100):
        args = ["add", "h", "--id", ids[300 + 2 * k], "--id", ids[301 + 2 * k]]
        before = _metadata(work)
        subprocess.run([*tf(work), *args], check=True, stdout=subprocess.DEVNULL)
        adds.append(sum(_written(work, before)))
    hundred = statistics.median(run(first_list(i))[0] for i in range(repeat))
    log, checkpoints = _metadata(work)
    total = log - registered + checkpoints
    print(
        f"history of 300 conversations + 100 adds of 2: create record {create / 1e3:.1f} KB, median add "
        f"{statistics.median(adds) / 1e3:.1f} KB of metadata ({statistics.median(adds) / create:.3f}x the create's; goal <= 0.1x), "
        f"all 101 versions {total / 1e3:.0f} KB with {checkpoints / 1e3:.0f} KB of checkpoints ({total / create:.2f}x one version's; goal <= 6x); "
        f"a new machine's first list {one:.2f} s after 1 version, {hundred:.2f} s after 101 ({hundred / one:.2f}x; goal <= 1.5x)"
    )
    shutil.rmtree(work, ignore_errors=True)


def _measure(
    kind: str, source: Path, ids: list[str], n: int, repeat: int, rows: list, disk: list, metadata: list
) -> None:
    """scan, create and (at 10,000) adds of `n` sources of `kind`, each beside its floor."""
    work = OUT / f"scale-{kind}-{n}"
    shutil.rmtree(work, ignore_errors=True)
    _link(source, ids[:n], work / "src")  # a folder of exactly n files to scan
    (work / "ids.txt").write_text("\n".join(ids[:n]) + "\n")

    def fresh_catalog(i: int) -> None:
        (work / "catalog.db").unlink(missing_ok=True)
        (work / "floor.db").unlink(missing_ok=True)
        shutil.rmtree(work / "store", ignore_errors=True)  # registrations are the store's: a first scan each time

    scan = alternate(
        repeat,
        lambda i: [*tf(work), "conversations", "scan", str(work / "src")],
        lambda i: [*SCAN_FLOOR, str(work / "src"), str(work / "floor.db")],
        before=fresh_catalog,
    )
    rows.append((f"scan {n} {kind}", *scan, "<= 1.3x, < 150 MB"))
    before = _metadata(work)
    create = alternate(
        repeat,
        lambda i: [*tf(work), "create", "--name", f"c{n}-{i}", "--ids-file", str(work / "ids.txt")],
        lambda i: [*FLOOR, str(work / "ids.txt"), str(source), str(work / f"floor-{i}")],
        before=lambda i: subprocess.run(["sync"], check=True),
    )
    rows.append((f"create {n} {kind}", *create, "<= 0.8x, < 150 MB"))
    written = _written(work, before)
    metadata.append((f"create {n} {kind} (each of {repeat})", (written[0] // repeat, written[1] // repeat)))
    for i in range(repeat):
        shutil.rmtree(work / f"floor-{i}", ignore_errors=True)
    if n == 10_000:
        _link(source, ids[n : n + 1080], work / "extra")  # registered, untimed, for the adds
        subprocess.run([*tf(work), "conversations", "scan", str(work / "extra")], check=True, stdout=subprocess.DEVNULL)
        for added, start in ((80, n), (1000, n + 80)):  # different conversations each time
            extra = work / f"add-{added}.txt"
            extra.write_text("\n".join(ids[start : start + added]) + "\n")
            whole = work / f"whole-{added}.txt"
            whole.write_text("\n".join(ids[:n] + ids[start : start + added]) + "\n")
            before = _metadata(work)
            add = alternate(
                repeat,
                lambda i, extra=extra: [*tf(work), "add", f"c{n}-{i}", "--ids-file", str(extra)],
                lambda i, whole=whole: [*FLOOR, str(whole), str(source), str(work / "floor-add")],
                before=lambda i: subprocess.run(["sync"], check=True),
            )
            rows.append(
                (f"add {added} to {n} {kind} (floor: re-create)", *add, "<= 0.2x" if added == 80 else "<= 0.3x")
            )
            disk.append((f"add {added} to {n} {kind}", add[0][0], durable_write(work, _version_bytes(work), repeat)))
            written = _written(work, before)
            metadata.append(
                (f"add {added} to {n} {kind} (each of {repeat})", (written[0] // repeat, written[1] // repeat))
            )
        # What checkpoints cost at this size: one change with a checkpoint due at every record
        # writes the store's (three files of 10,000+ and 11,080 registrations) and its file's.
        before = _metadata(work)
        subprocess.run(
            [*tf(work), "remove", f"c{n}-0", "--id", ids[0]],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "TRAINFILES_CHECKPOINT_INTERVAL": "1"},
        )
        written = _written(work, before)
        metadata.append((f"checkpoints at {n} {kind} (store and file; every 100 records or versions)", written))
    shutil.rmtree(work, ignore_errors=True)


def _version_bytes(work: Path) -> int:
    """The size of the newest outputs of one file the add just changed (each of the files
    it changed holds the same conversations)."""
    current = min((work / "store").glob("*/current.json"))
    return sum(p.stat().st_size for p in current.parent.glob("training.json*"))


def durable_write(work: Path, size: int, repeat: int) -> tuple[int, float, float]:
    """Seconds to write `size` bytes and fsync them: the least a durable add of that many
    new bytes costs on this disk, whose speed varies from hour to hour (ext4 here: no
    reflinks, so a copy writes every byte; random bytes, so no compression helps).

    Two medians: into files that stay, as a new version does, and into one file deleted
    after each write. They differ on this machine (a Firecracker VM): memory the guest has
    not used lately costs a fault on the host the first time, and the page cache of a file
    that stays needs that much more memory, while a deleted file's pages are reused."""
    block = os.urandom(8 << 20)
    kept, reused = [], []
    for i in range(2 * repeat):
        subprocess.run(["sync"], check=True)
        path = work / (f"durable-write-{i}" if i < repeat else "durable-write")
        start = time.perf_counter()
        with open(path, "wb") as f:
            for at in range(0, size, len(block)):
                f.write(block[: size - at])
            f.flush()
            os.fsync(f.fileno())
        (kept if i < repeat else reused).append(time.perf_counter() - start)
        if i >= repeat:
            path.unlink()
    for i in range(repeat):
        (work / f"durable-write-{i}").unlink()
    return size, statistics.median(kept), statistics.median(reused)


def _link(source: Path, ids: list[str], folder: Path) -> None:
    """A folder of these sources, linked, not copied."""
    for cid in ids:
        (folder / cid).mkdir(parents=True)
        (folder / cid / "enriched.json").hardlink_to(source / cid / "enriched.json")


def report(rows, repeat: int) -> None:
    print(f"\n{'case':48} {'trainfiles':>11} {'peak MB':>8} {'floor':>9} {'peak MB':>8} {'ratio':>6}  target")
    for name, (ours, ours_mb), (floor, floor_mb), target in rows:
        print(
            f"{name:48} {ours:>10.2f}s {ours_mb:>8.0f} {floor:>8.2f}s {floor_mb:>8.0f} {ours / floor:>6.2f}  {target}"
        )
    print(
        f"\nmedians of {repeat} alternating runs each, whole processes; sources: {SOURCE} (generated), {REAL} (real-shaped)"
    )


if __name__ == "__main__":
    main()
