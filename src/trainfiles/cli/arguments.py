"""Command-line words into values, with usage errors in our own words.

Typer validates through pydantic, whose messages ("Value error, ...", "Input should be ...")
mean nothing to our users; every option that is not free text parses here instead.
"""

from collections.abc import Callable, Sequence

import typer

from trainfiles.core.vocabulary import MAX_NUMBER


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """A parser for one of `values`, any case: `--format JSONL` is `jsonl`."""

    def parse(word: str) -> str:
        if word.lower() in values:
            return word.lower()
        raise typer.BadParameter(f"{word!r} is not one of: {', '.join(values)}")

    return parse


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """A parser for a whole number from `low` (to `high`)."""

    def parse(word: str) -> int:
        try:
            number = int(word)
        except ValueError:
            number = None
        if number is None or number < low or number > (MAX_NUMBER if high is None else high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            too_large = " (too large)" if number is not None and number >= low else ""
            raise typer.BadParameter(f"expected a whole number {bounds}, got {word!r}{too_large}")
        return number

    return parse


def seconds(word: str) -> float:
    """A parser for a duration in seconds, 0 or more (`1.5` allowed)."""
    try:
        value = float(word)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise typer.BadParameter(f"expected a number of seconds, 0 or more, got {word!r}")
    return value
