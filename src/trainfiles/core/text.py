"""Text from outside: which characters a name may hold (none that hide, reorder or control
what a reader sees), whether text can be stored as UTF-8, and how to show any text on one line."""

import re
import unicodedata

from trainfiles.errors import InvalidInput

ZERO_WIDTH = {*range(0x200B, 0x2010), 0x2060, 0xFEFF}
BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def refuse_hidden_characters(text: str, what: str) -> None:
    """InvalidInput naming each control, zero-width or bidi character in `text` (two names
    that look alike must not be two files)."""
    hidden = [
        f"U+{ord(c):04X}"
        for c in dict.fromkeys(text)
        if ord(c) in ZERO_WIDTH or ord(c) in BIDI or unicodedata.category(c) == "Cc"
    ]
    if hidden:
        raise InvalidInput(f"{what} must not contain control, zero-width or bidi characters: ", hidden)


def encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """Text on one line that prints and that JSON can hold: bytes the OS could not decode
    shown as `\\xff`, control characters (a newline in a path) as `\\n`, `\\x00`."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        text = text.encode("utf-8", "backslashreplace").decode()
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


CONTROL = re.compile(r"[\x00-\x1f\x7f]")
