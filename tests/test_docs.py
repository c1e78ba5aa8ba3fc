"""The documentation in docs/ stays true: the command reference is what the CLI prints, and
the README points inside the repository only."""

import re

from conftest import ROOT, reference_tool


def test_the_command_reference_is_the_cli_help():
    tool = reference_tool()
    assert tool.DOC.read_text() == tool.reference(), "docs/cli.md is stale: run python tools/cli_reference.py"


def test_the_reference_has_every_command_and_option():
    from typer.main import get_command

    from trainfiles.cli import app

    text = (ROOT / "docs" / "cli.md").read_text()
    for words in reference_tool().commands(get_command(app)):
        assert f"## trainfiles {' '.join(words)}".rstrip() + "\n" in text


def test_the_readme_links_to_docs_and_nothing_outside_the_repository():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert {"docs/cli.md", "docs/json.md", "docs/exit-codes.md", "docs/store.md"} <= set(links)
    assert "../" not in readme and "shared/" not in readme
    for link in links:
        assert (ROOT / link.split("#")[0]).exists(), link


def test_the_house_stays_readable():
    """README short, no module over 500 lines, Typer used through its public face."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
    modules = list((ROOT / "src" / "trainfiles").rglob("*.py"))
    assert modules and max(len(p.read_text().splitlines()) for p in modules) <= 500
    for path in modules:
        text = path.read_text()
        assert not re.search(r"_protected_args|__class__ =|typer\._click|os\._exit", text), path
