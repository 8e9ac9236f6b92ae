"""One CSV row with a cell beyond the csv module's field limit, read as the module's default (excel)
dialect reads it. The limit (`csv.field_size_limit`, 128 KiB) is process-wide, so raising it for
one reader would raise it for every reader in the process: the rows that outgrow it (a large Bind
record's AuditData) are read here instead, and only those.
https://docs.python.org/3/library/csv.html#csv.field_size_limit
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable

_UNQUOTED = re.compile(r"[^,\r\n]*")


class RowError(ValueError):
    """The row is not CSV the excel dialect reads."""


def beyond_field_limit(problem: csv.Error) -> bool:
    return "field larger than field limit" in str(problem)


def parse_row(text: str, next_line: Callable[[], str | None], limit: int) -> list[str]:
    """The cells of the row that begins `text`; `next_line` gives the lines a quoted cell goes on
    into (None at the end of the file). Raises RowError past `limit` characters."""
    fields: list[str] = []
    position = 0
    while True:
        if text.startswith('"', position):
            cell, position, text = _quoted(text, position + 1, next_line, limit)
        else:
            match = _UNQUOTED.match(text, position)
            assert match is not None  # the pattern matches the empty string
            cell, position = match.group(), match.end()
        fields.append(cell)
        if position >= len(text):
            return fields
        if text[position] == ",":
            position += 1
            continue
        if text[position:] in ("\n", "\r\n", "\r"):
            return fields
        raise RowError("new-line character seen in unquoted field")


def _quoted(
    text: str, position: int, next_line: Callable[[], str | None], limit: int
) -> tuple[str, int, str]:
    """A quoted cell from after its opening quote: (cell, position after it, the row's text so far)."""
    parts: list[str] = []
    while True:
        quote = text.find('"', position)
        if quote < 0:
            if len(text) > limit:
                raise RowError(f"a row longer than {limit} characters: the rest is not read")
            line = next_line()
            if line is None:
                raise RowError("unexpected end of data")
            text += line
            continue
        parts.append(text[position:quote])
        if text.startswith('"', quote + 1):  # a doubled quote is one quote
            parts.append('"')
            position = quote + 2
            continue
        break
    # After the closing quote the excel dialect (strict=False) keeps what follows, up to the comma.
    match = _UNQUOTED.match(text, quote + 1)
    assert match is not None
    parts.append(match.group())
    return "".join(parts), match.end(), text
