"""Terminal-safe report output: attacker-chosen text never drives the responder's terminal.

Subjects, folder names and client strings are chosen by whoever sent the mail or called the
API. Written raw to a terminal, an ESC sequence can move the cursor to hide rows, OSC 52 can
write the clipboard (ECMA-48; xterm "Operating System Commands"), and a bidi override can
reorder what the responder reads (Unicode UAX #9, "Trojan Source", CVE-2021-42574). On a
terminal such characters are shown as visible escapes (`\\x1b`, `\\u202e`); pipes and files keep
the exact text.
"""

from __future__ import annotations

import re
from typing import TextIO

from shared.reports.render import TextSink

# C0 controls (newline and tab included: a data newline could fake a report row), DEL, C1
# controls (8-bit CSI/OSC on some terminals), bidi embeddings, overrides, isolates and marks,
# and the Unicode line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# csv.writer writes each row, row end included, in one write() call; only that row end is
# passed through as a line break. Any other CR or LF is data and is shown escaped.
_ROW_END = "\r\n"


def visible(text: str, *, json_escapes: bool = False) -> str:
    """`text` with every unsafe character replaced by its escape: `\\x1b` style, or `\\u001b`
    style inside JSON so the shown output still parses to the exact text."""
    return _UNSAFE.sub(_json_escape if json_escapes else _escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class TerminalSink:
    """Wraps a terminal stream; every write shows control and bidi characters as escapes."""

    def __init__(self, stream: TextSink, *, json_escapes: bool = False) -> None:
        self._stream = stream
        self._json = json_escapes

    def write(self, text: str, /) -> int:
        if text.endswith(_ROW_END):
            safe = visible(text.removesuffix(_ROW_END), json_escapes=self._json) + _ROW_END
        else:
            safe = visible(text, json_escapes=self._json)
        self._stream.write(safe)
        return len(text)


def for_stdout(stream: TextIO, fmt: str) -> TextSink:
    """`stream` itself when it is a pipe or file (exact text); a TerminalSink on a terminal,
    with JSON escapes for the `json` format."""
    return TerminalSink(stream, json_escapes=fmt == "json") if stream.isatty() else stream
