"""Reading sources from S3: `trainfiles create` from 1,000 conversations held in a local S3
server, beside a plain loop that reads the same objects one by one with s3fs.

Run: .venv/bin/python bench/s3_bench.py
It starts moto's S3 on 127.0.0.1 (dummy credentials), uploads ~50 KB generated
conversations in one concurrent batch, registers them with `conversations scan`, then
times each case in a fresh process and prints the best of a few runs. Each case runs
against the bare local server, where client and server CPU are the limit, and with 5, 10
and 20 ms added to every request (a real S3 answers a small GET in the same region in
about 10 to 30 ms).
The plain loop is timed as written with s3fs's defaults (a HEAD before each GET) and with
`max_concurrency=1` (GET only); speed-ups are against the first.

Two floors show what the bare server allows: `server CPU` is the CPU time moto spent
answering each case (it runs in this process, which does nothing else meanwhile), and the
same create from a local copy of the sources is what reading from S3 would cost if it were
free. On two cores a case can take no less than its server CPU.
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "fixtures"), str(ROOT / "tests")]

import s3fs  # noqa: E402

import generate  # noqa: E402
from s3server import S3Server  # noqa: E402

N = 1000
REPEAT = 2
LATENCIES = (0.0, 0.005, 0.010, 0.020)
SOURCES = "bench-sources/conversations"
TRAINFILES = str(ROOT / ".venv" / "bin" / "trainfiles")
PLAIN_LOOP = """
import json, sys, s3fs
fs = s3fs.S3FileSystem(**json.loads(sys.argv[2]))
for path in open(sys.argv[1]).read().split():
    fs.cat_file(path)
"""
LOOPS = {"plain s3fs loop, defaults (HEAD+GET)": "{}", "plain s3fs loop, GET only": '{"max_concurrency": 1}'}


def upload(fs) -> list[str]:
    """Paths of N generated conversations, put in one concurrent batch."""
    docs = {
        f"{SOURCES}/{generate.conversation_uuid(seed)}/enriched.json": generate.dumps(
            generate.make_conversation(seed, target_kb=50)
        ).encode()
        for seed in range(20_001, 20_001 + N)
    }
    fs.pipe(docs)
    return list(docs)


def best(make_args, env=None) -> tuple[float, float]:
    """Wall time and server CPU seconds of the fastest of REPEAT fresh processes; run i runs
    `make_args(i)`."""
    runs = []
    for i in range(REPEAT):
        cpu, start = _server_cpu(), time.perf_counter()
        subprocess.run(make_args(i), check=True, stdout=subprocess.DEVNULL, env=env)
        runs.append((time.perf_counter() - start, _server_cpu() - cpu))
    return min(runs)


def _server_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    server = S3Server()
    work = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    # Only the local server, with dummy credentials and trainfiles' default S3 settings.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "TRAINFILES_STORAGE_OPTIONS"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_CONFIG_FILE=str(work / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "no-aws-credentials"),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=server.endpoint,
        TRAINFILES_CATALOG=str(work / "catalog.db"),
        TRAINFILES_STORE="s3://bench-store/files",
        TRAINFILES_USER="bench",
    )
    fs = s3fs.S3FileSystem()
    fs.mkdir("bench-sources")
    fs.mkdir("bench-store")
    paths = upload(fs)
    listing = work / "paths.txt"
    listing.write_text("\n".join(paths))
    scan = [TRAINFILES, "conversations", "scan", f"s3://{SOURCES}", "--batch", "bench"]
    subprocess.run(scan, check=True, stdout=subprocess.DEVNULL)
    local = dict(os.environ, TRAINFILES_CATALOG=str(work / "local.db"), TRAINFILES_STORE=str(work / "store"))
    fs.get(SOURCES, str(work / "sources"), recursive=True)
    subprocess.run([*scan[:3], str(work / "sources"), *scan[4:]], check=True, stdout=subprocess.DEVNULL, env=local)
    create = [TRAINFILES, "create", "--batch", "bench", "--name"]

    print(f"{N} conversations of ~50 KB on a local S3 server (moto), best of {REPEAT} fresh processes\n")
    print(f"{'case':<38}{'latency':>9}{'wall s':>9}{'server CPU s':>14}{'speed-up':>10}")
    for latency in LATENCIES:
        server.latency = latency
        rows = {"trainfiles create (read + write)": best(lambda i: [*create, f"b{latency}-{i}"])}
        for case, options in LOOPS.items():
            rows[case] = best(lambda i, options=options: [sys.executable, "-c", PLAIN_LOOP, str(listing), options])
        if not latency:  # the local copy sees no server
            rows["trainfiles create, local copy (floor)"] = best(lambda i: [*create, f"local-{i}"], env=local)
        baseline = rows[next(iter(LOOPS))][0]
        for case, (seconds, cpu) in rows.items():
            print(f"{case:<38}{latency * 1000:>6.0f} ms{seconds:>9.2f}{cpu:>14.2f}{baseline / seconds:>9.1f}x")
    server.stop()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
