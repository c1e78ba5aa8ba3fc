"""Shared test set-up: isolated settings, a CLI runner, paths to fixtures and reference data."""

import os
import sys
from pathlib import Path

import hypothesis
import orjson
import pytest
import s3fs
from typer.testing import CliRunner

from trainfiles.cli import app

from s3server import S3Server

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


def _shared() -> Path:
    """The platform's shared contracts and reference data: TRAINFILES_SHARED, else `shared/`
    beside this checkout (as in CI)."""
    return Path(os.environ.get("TRAINFILES_SHARED") or ROOT.parent / "shared")


REFERENCE = _shared() / "reference"
NO_REFERENCE = f"the platform's reference data is not at {REFERENCE} (beside the checkout in CI; TRAINFILES_SHARED points elsewhere)"


def require_reference() -> None:
    """Skip, saying why, a test that needs the platform's reference data where it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(NO_REFERENCE)


# Never a Hypothesis database in the checkout.
hypothesis.settings.register_profile("trainfiles", database=None)
hypothesis.settings.load_profile("trainfiles")


def pytest_collection_modifyitems(items):
    """`s3` on every test of the live S3 server (its fixture, or a store parametrized "s3"),
    for `make test-fast` to leave out with `slow` and `crash`."""
    for item in items:
        if "s3" in item.fixturenames or "[s3" in item.nodeid or "-s3]" in item.nodeid:
            item.add_marker(pytest.mark.s3)


sys.path.insert(0, str(FIXTURES))


def reference_tool():
    """tools/cli_reference.py, which writes docs/cli.md and knows every command."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own catalog, store and user, and never touches the real home."""
    monkeypatch.setenv("TRAINFILES_CATALOG", str(tmp_path / "catalog.db"))
    monkeypatch.setenv("TRAINFILES_STORE", str(tmp_path / "store"))
    (tmp_path / "store").mkdir()  # a store that exists (an empty one): a missing store is refused
    monkeypatch.setenv("TRAINFILES_USER", "alice")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")  # 2025-12-01T00:00:00Z
    # COLUMNS and LINES: set by pytest-xdist's workers, and a table's width follows COLUMNS.
    for name in ("TRAINFILES_DEBUG", "TRAINFILES_STORAGE_OPTIONS", "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Cli:
    """Runs `trainfiles` in-process and checks the exit code."""

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args, code: int = 0, input: str | None = None, env: dict | None = None):
        result = self.runner.invoke(app, [str(a) for a in args], input=input, env=env)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
        if code not in (0, 2):
            # Every refusal is exactly one line on stderr, never a traceback.
            assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
        return result

    def json(self, *args, **kwargs):
        return orjson.loads(self(*args, "--json", **kwargs).stdout)


@pytest.fixture
def cli():
    return Cli()


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every file under the roots with its bytes, and every folder (as None): to prove a
    refused command changed nothing, not even an empty folder left behind."""
    return {
        str(p): p.read_bytes() if p.is_file() else None
        for root in roots
        if root.exists()
        for p in sorted(root.rglob("*"))
    }


# A live S3 endpoint (moto on 127.0.0.1) for every test that asks for `s3`.

SOURCES = "s3://sources/fixtures"
STORE = "s3://trainfiles/store"
BUCKETS = ("sources", "trainfiles")
KEY_ID = "AKIATESTINGONLY00000"
SECRET = "testing-secret-never-printed"
# Short bounds keep the fault tests fast; storage.py notes what the defaults take.
FAST = {
    "s3": {
        "config_kwargs": {
            "connect_timeout": 1,
            "read_timeout": 2,
            "retries": {"total_max_attempts": 2, "mode": "standard"},
        }
    }
}
BOUND = 5  # seconds a failing command may take with FAST
REFUSED = "Could not connect to the endpoint URL"


@pytest.fixture(scope="session")
def server():
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(server, monkeypatch, tmp_path):
    """The test endpoint through the standard AWS variables, the fixtures uploaded under
    SOURCES, an empty store bucket. Yields a filesystem for looking at the objects."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    # Never the developer's own ~/.aws: no real credentials, profiles or endpoints.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    monkeypatch.setenv("TRAINFILES_STORE", STORE)
    monkeypatch.setenv("TRAINFILES_STORAGE_OPTIONS", orjson.dumps(FAST).decode())
    server.reset()
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    for bucket in BUCKETS:
        fs.mkdir(bucket)
    fs.pipe(
        {
            f"sources/fixtures/{p.relative_to(FIXTURES)}": p.read_bytes()
            for p in FIXTURES.rglob("*")
            if p.suffix in (".json", ".jsonl", ".csv") and "legacy-0.1" not in p.parts
        }
    )
    yield fs
    server.fault = None
    if not server.running:
        server.start()
    s3fs.S3FileSystem.clear_instance_cache()
