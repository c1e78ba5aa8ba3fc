"""The Jinja2 environment of the pages (autoescaped), with the filters its templates use."""

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup


def size(n: int | None) -> str:
    """Bytes as people read them: 812 B, 41.2 KB, 3.0 MB."""
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return ""


def score(value: object) -> str:
    """A quality score to two places; what is not a number (a source's training_metadata is
    open) as it is."""
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, int | float) else str(value)


def day(timestamp: str | None) -> str:
    """An ISO timestamp as its date and minute, UTC."""
    return "" if not timestamp else timestamp[:16].replace("T", " ")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("trainfiles.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,  # a misspelt name fails the tests instead of showing nothing
    )
    env.filters.update(size=size, score=score, day=day, short=lambda s: (s or "")[:8], svg=Markup)
    return env


# What a page of the report lacks that a served one has (and the other way round).
DEFAULTS = {"read_only": False, "actions": False, "csrf": None, "user": None, "generated": None}


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**{**DEFAULTS, **context})
