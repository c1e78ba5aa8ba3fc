"""Command-line words into values, with usage errors in our own words.

Typer validates through pydantic, whose messages ("Value error, ...", "Input should be ...")
mean nothing to our users; every option that is not free text parses here instead. The
common options are also put where the parser expects them: anywhere on the line.
"""

from collections.abc import Callable, Sequence

import typer

# Options of `trainfiles` itself (name: takes a value), accepted after the command too.
COMMON = {"--catalog": True, "--store": True, "--user": True, "--debug": False}
# Accepted before the command too: it belongs to the command.
COMMAND_FLAG = "--json"
GROUP = "conversations"  # the one group of commands


def relocate(args: list[str]) -> list[str]:
    """The command line with the common options moved before the command, and `--json`
    given before it moved after it (`trainfiles list --catalog c.db`, `trainfiles --json
    list`). Words after `--` are left alone."""
    end = args.index("--") if "--" in args else len(args)
    front, i = [], 0
    while i < end and args[i].startswith("-"):
        takes = COMMON.get(args[i], False)
        front.extend(args[i : i + 1 + takes])
        i += 1 + takes
    command, moved, rest = args[i:end], [], []
    j = 0
    while j < len(command):
        word = command[j]
        name = word.split("=", 1)[0]
        if j > 0 and name in COMMON:
            takes = COMMON[name] and "=" not in word
            moved.extend(command[j : j + 1 + takes])
            j += 1 + takes
        else:
            rest.append(word)
            j += 1
    if COMMAND_FLAG in front and rest:
        front.remove(COMMAND_FLAG)
        rest.append(COMMAND_FLAG)
    if rest[:1] == [GROUP] and rest[1:2] == [COMMAND_FLAG]:  # `conversations --json list`
        rest.append(rest.pop(1))
    return [*front, *moved, *rest, *args[end:]]


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
        if number is None or number < low or (high is not None and number > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise typer.BadParameter(f"expected a whole number {bounds}, got {word!r}")
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
