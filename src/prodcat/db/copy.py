"""COPY's text format, for the bulk writes (prediction log, batch predictions, review queue)."""

from __future__ import annotations

import re

SURROGATE = re.compile("[\ud800-\udfff]")


def copy_field(text: str) -> str:
    """Text as COPY's text format wants it; NUL (which PostgreSQL refuses) and lone
    surrogates (which UTF-8 cannot encode) become U+FFFD."""
    if not text.isascii() and SURROGATE.search(text):
        text = SURROGATE.sub("\ufffd", text)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        if char in text:
            text = text.replace(char, escaped)
    return text
