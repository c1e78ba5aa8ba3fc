"""`make bench`: the pages at scale. A store of 1,000 one-conversation training files and one
of 10,000 conversations (made once under bench/out/web, with run.py's sources and helpers);
`trainfiles serve` answering the index and the large file's page, and `trainfiles report`
writing the whole site.

Run: .venv/bin/python bench/web_bench.py [--repeat 3]
"""

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from run import OUT, SOURCE, generated, run, tf

WORK = OUT / "web"
SMALL = OUT / "small"
BIG = "big-10000"
TARGETS = {"served index": 2.0, f"served page of {BIG}": 2.0, "report written": 30.0}


def store() -> Path:
    """The bench store, made once: run.py's 1,000 files, then one of 10,000 small conversations."""
    if (WORK / "ready").exists():
        return WORK
    subprocess.run(["rm", "-rf", str(WORK)], check=True)
    ids = generated(SOURCE, range(10_001, 11_001), target_kb=50)
    # In a child process, as run.py does: the parent's memory would count in later peaks.
    subprocess.run([sys.executable, str(Path(__file__).parent / "run.py"), "populate", str(WORK), *ids], check=True)
    big = generated(SMALL, range(50_001, 60_001), turns=4)
    (WORK / "big-ids.txt").write_text("\n".join(big) + "\n")
    quiet = {"check": True, "stdout": subprocess.DEVNULL}
    subprocess.run([*tf(WORK), "--user", "bench", "conversations", "scan", str(SMALL)], **quiet)
    subprocess.run(
        [*tf(WORK), "--user", "bench", "create", "--name", BIG, "--ids-file", str(WORK / "big-ids.txt")], **quiet
    )
    (WORK / "ready").touch()
    return WORK


def served(work: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """(first, median of the next `repeat`) seconds of each page from a fresh `trainfiles serve`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*tf(work), "serve", "--port", str(port), "--read-only"], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base)
        results = {}
        for name, path in (("served index", "/"), (f"served page of {BIG}", f"/files/{BIG}")):
            times = [_get(base + path) for _ in range(repeat + 1)]
            results[name] = (times[0], statistics.median(times[1:]))
        return results
    finally:
        server.terminate()
        server.wait()


def _wait(base: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/static/style.css", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("bench: trainfiles serve did not start")


def _get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = store()
    rows = {name: (first, median, None) for name, (first, median) in served(work, args.repeat).items()}
    seconds, peak = run([*tf(work), "report", "-o", str(work / "report")])
    pages = sum(1 for _ in (work / "report").rglob("*.html"))
    rows["report written"] = (seconds, seconds, peak)
    print(
        f"\n{'pages (1,001 files, one of 10,000 conversations)':52} {'first':>8} {'median':>8} {'peak MB':>8}  target"
    )
    for name, (first, median, peak) in rows.items():
        peak_col = f"{peak:>8.0f}" if peak else f"{'':>8}"
        print(f"{name:52} {first:>7.3f}s {median:>7.3f}s {peak_col}  < {TARGETS[name]:.0f} s")
    print(f"the report: {pages} pages in {work / 'report'}; served: first request, then the median of {args.repeat}")


if __name__ == "__main__":
    main()
