"""Which characters a name may hold: none that hide, reorder or control what a reader sees."""

import unicodedata

from .errors import InvalidInput

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
