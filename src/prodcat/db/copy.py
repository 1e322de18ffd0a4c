"""COPY's text format, for the bulk writes (products, evaluation set, prediction log, batch
predictions, review queue)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence

SURROGATE = re.compile("[\ud800-\udfff]")
NULL = "\\N"


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


def copy_rows(cur, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """COPY rows into table's columns with the cursor cur (the caller's transaction): None is
    NULL, any other value its str()."""
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(NULL if v is None else copy_field(str(v)) for v in row))
        buffer.write("\n")
    buffer.seek(0)
    cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin", buffer)
