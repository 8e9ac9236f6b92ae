"""Reading an export forward, in bounded memory (docs/architecture.md#importing-exports).

`ByteSource` buffers a binary stream a chunk at a time and knows the byte offset of everything it
hands out, so a reader can say where each record starts (the pieces of an imported file are
ranges of its records). `JsonValues` finds where each element of a JSON array ends without
decoding the whole document: memory is bounded by the largest single element (`MAX_RECORD_BYTES`),
never the file.

Finding an element's end fast: the elements of an audit export share their first key
(`{"CreationTime":` in a Management API blob), so after the first element the next boundary is
the next `}` `,` `{"<that key>"` and the bytes before it are decoded with orjson. A candidate that
does not decode was inside a string or a nested object; a JSON object is self-delimiting, so a
candidate that does decode is the element's end. When there is no usable candidate the element is
found exactly, by the standard library's scanner on a growing window.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import orjson

from shared.parse.text import repair_value

MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record larger than this is reported, never loaded
CHUNK_BYTES = 1024 * 1024
_FIRST_WINDOW = 64 * 1024  # the exact scanner's first window; doubled until the element fits
_MAX_FALSE_CANDIDATES = 16  # then the element is found exactly
_WHITESPACE = b" \t\r\n"
_FIRST_KEY = re.compile(rb'\{[ \t\r\n]*"((?:[^"\\]|\\.){1,200})"[ \t\r\n]*:')
_DECODER = json.JSONDecoder()
_ENDS_EARLY = "array ends early: the data stops before the closing ']'"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class RecordTooLarge(ValueError):
    """A single record is larger than MAX_RECORD_BYTES."""


class _Utf8FromUtf16:
    """A UTF-16 stream (with BOM) as UTF-8 bytes; unpaired surrogates pass through (as CESU-style
    three-byte sequences, which the strict decoders refuse and the repairing path reads)."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-16")(errors="surrogatepass")

    def read(self, size: int = -1) -> bytes:
        while True:
            data = self._stream.read(size if size > 0 else CHUNK_BYTES)
            text = self._decoder.decode(data, final=not data)
            if text or not data:
                return text.encode("utf-8", errors="surrogatepass")


class ByteSource:
    """A binary stream read forward with a bounded buffer. `offset` is the stream offset of the
    next unread byte; `errors` is how bytes that are not UTF-8 become text (kept as lone
    surrogates, which the repairing decode turns into U+FFFD and names)."""

    def __init__(self, stream: Readable, limit: int = MAX_RECORD_BYTES, chunk: int = CHUNK_BYTES) -> None:
        self._stream: Readable = stream
        self.limit = limit
        self._chunk = chunk
        self._buf = bytearray()
        self._pos = 0
        self._base = 0
        self._eof = False
        self.errors = "surrogateescape"
        self._start()

    def _start(self) -> None:
        self.more()
        head = bytes(self._buf[:3])
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            # Transcoded: offsets are then the UTF-8 text's, and such a file is read as one piece.
            self._stream = _Utf8FromUtf16(Prefixed(bytes(self._buf), self._stream))
            self._buf = bytearray()
            self._eof = False
            self.errors = "surrogatepass"
            self.more()
        elif head == codecs.BOM_UTF8:
            self._pos = 3

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def transcoded(self) -> bool:
        return self.errors == "surrogatepass"

    def more(self) -> bool:
        """Read one more chunk into the buffer (dropping what was consumed); False at the end."""
        if self._eof:
            return False
        data = self._stream.read(self._chunk)
        if not data:
            self._eof = True
            return False
        if self._pos:
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data
        return True

    def at_end(self) -> bool:
        return self._pos >= len(self._buf) and not self.more()

    def peek(self, size: int) -> bytes:
        """Up to `size` unread bytes, without consuming them."""
        while len(self._buf) - self._pos < size and self.more():
            pass
        return bytes(self._buf[self._pos : self._pos + size])

    def next_byte(self) -> bytes:
        """The next byte that is not JSON whitespace (consumed whitespace only), or b"" at the end."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf):
                return bytes(self._buf[self._pos : self._pos + 1])
            if not self.more():
                return b""

    def skip(self, size: int) -> None:
        self._pos += size

    def readline(self) -> bytes:
        """The next line with its LF (none at the end of the stream); b"" at the end. Only LF ends a
        line (JSON writers leave U+2028 and friends unescaped inside strings). Raises
        RecordTooLarge past `limit`, having consumed nothing."""
        searched = 0  # relative to the line's start: reading more may move the buffer
        while True:
            end = self._buf.find(b"\n", self._pos + searched)
            if end >= 0:
                line = bytes(self._buf[self._pos : end + 1])
                self._pos = end + 1
                return line
            if len(self._buf) - self._pos > self.limit:
                raise RecordTooLarge(f"a line longer than {self.limit} bytes")
            searched = len(self._buf) - self._pos
            if not self.more():
                line = bytes(self._buf[self._pos :])
                self._pos = len(self._buf)
                return line

    def text(self, data: bytes | bytearray) -> str:
        return bytes(data).decode("utf-8", errors=self.errors)

    def window(self) -> tuple[bytearray, int]:
        """The buffer and the position of the next unread byte in it (do not keep either)."""
        return self._buf, self._pos


class Prefixed:
    """`head`, then the rest of `stream`."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._stream.read(size)


def loads(
    data: bytes | bytearray | str, errors: str = "surrogateescape", repair: bool = True
) -> tuple[object, tuple[str, ...]]:
    """One JSON document and the JSON paths of the text in it that had to be repaired.

    orjson first (fast, and it only ever yields valid Unicode); what it refuses, the standard
    library reads: bytes that are not UTF-8, lone surrogate escapes, integers beyond 64 bits.
    Raises ValueError (or RecursionError for very deep nesting) when neither can. With `repair`
    False the text is left as decoded (lone surrogates in it) for a caller that repairs later."""
    try:
        return orjson.loads(data), ()
    except orjson.JSONDecodeError:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", errors=errors)
        value = json.loads(text)
    if not repair:
        return value, ()
    repaired: list[str] = []
    return repair_value(value, repaired), tuple(repaired)


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a JSON array: its decoded value and repaired paths, or why it could not be read
    (`error`; a damaged element ends the array: nothing after it can be placed)."""

    start: int  # stream offset of its first byte
    value: object = None
    repaired: tuple[str, ...] = ()
    error: str = ""


class JsonValues:
    """The elements of the JSON array whose `[` the source has just consumed, one at a time.

    `resumed`: the source continues with an element directly (no comma first), as a piece of an
    imported file does, and may end after any comma; such a piece ends at an element's start."""

    def __init__(self, source: ByteSource, resumed: bool = False, repair: bool = True) -> None:
        self._source = source
        self._repair = repair
        self._boundary: re.Pattern[bytes] | None = None
        self._learned = False
        self._resumed = resumed
        self.closed = False  # the array's `]` was read
        self.next_start = source.offset  # stream offset where the next element starts

    def __iter__(self) -> Iterator[Element]:
        source = self._source
        first = True
        while True:
            byte = source.next_byte()
            if byte == b"]":
                source.skip(1)
                self.closed = True
                return
            if not first:
                if byte != b",":
                    if byte == b"" and self._resumed:
                        return  # a piece ends where its last element does
                    problem = _ENDS_EARLY if byte == b"" else f"expected ',' or ']', found {byte!r}"
                    yield Element(source.offset, error=problem)
                    return
                source.skip(1)
                byte = source.next_byte()
                if byte == b"" and self._resumed:
                    return  # a piece ends at the start of the next element
            if byte == b"":
                yield Element(source.offset, error=_ENDS_EARLY)
                return
            first = False
            self.next_start = source.offset
            element = self._element()
            yield element
            if element.error:
                return

    def _element(self) -> Element:
        start = self._source.offset
        by_boundary = self._by_boundary() if self._boundary is not None else None
        found = by_boundary if by_boundary is not None else decode_next(self._source, self._repair)
        if isinstance(found, str):
            return Element(start, error=found)
        size, value, repaired = found
        if not self._learned:
            self._learn(size)
        self._source.skip(size)
        return Element(start, value, repaired)

    def _learn(self, size: int) -> None:
        """The boundary pattern from the first element: its first key, or `],[` for arrays."""
        self._learned = True
        buffer, position = self._source.window()
        opening = buffer[position : position + 1]
        if opening == b"[":
            self._boundary = re.compile(rb"\][ \t\r\n]*,[ \t\r\n]*\[")
            return
        key = _FIRST_KEY.match(buffer, position, position + min(size, 512))
        if opening == b"{" and key is not None:
            self._boundary = re.compile(
                rb'\}[ \t\r\n]*,[ \t\r\n]*\{[ \t\r\n]*"' + re.escape(key.group(1)) + rb'"[ \t\r\n]*:'
            )

    def _by_boundary(self) -> tuple[int, object, tuple[str, ...]] | None:
        """The element found by the shared-first-key boundary, or None to find it exactly."""
        assert self._boundary is not None
        source = self._source
        failures = 0
        searched = 0  # relative to the element's start
        while True:
            buffer, position = source.window()
            match = self._boundary.search(buffer, position + max(searched, 1))
            if match is not None:
                size = match.start() + 1 - position
                decoded = _decoded(buffer[position : position + size], source.errors, self._repair)
                if decoded is not None:
                    return size, *decoded
                failures += 1
                if failures > _MAX_FALSE_CANDIDATES:
                    return None
                searched = size
                continue
            searched = max(len(buffer) - position - 64, searched)
            if len(buffer) - position > source.limit:
                return None
            if not source.more():
                return self._last(buffer, position)

    def _last(self, buffer: bytearray, position: int) -> tuple[int, object, tuple[str, ...]] | None:
        """At the end of the stream: the last element, before the closing `]` (or a piece's comma)."""
        tail = bytes(buffer[position:]).rstrip(_WHITESPACE)
        if tail.endswith(b"]") or (self._resumed and tail.endswith(b",")):
            body = tail[:-1].rstrip(_WHITESPACE)
            decoded = _decoded(body, self._source.errors, self._repair)
            if decoded is not None:
                return len(body), *decoded
        return None


def _decoded(data: bytes | bytearray, errors: str, repair: bool) -> tuple[object, tuple[str, ...]] | None:
    try:
        return loads(data, errors, repair)
    except (ValueError, RecursionError):
        return None


def decode_next(source: ByteSource, repair: bool = True) -> tuple[int, object, tuple[str, ...]] | str:
    """The JSON value at the source's position (not consumed): its size in bytes, value and repaired
    paths, or why it cannot be read. The standard library's scanner, on a window doubled until the
    value fits (at most the source's limit)."""
    window = _FIRST_WINDOW
    while True:
        buffer, position = source.window()
        while len(buffer) - position < window and source.more():
            buffer, position = source.window()
        whole = len(buffer) - position <= window  # the rest of the stream is in the window
        try:
            text = source.text(buffer[position : position + window])
            value, end = _DECODER.raw_decode(text)
            if end == len(text) and not whole:
                raise ValueError("the value may go on past the window")  # a number cut short
        except RecursionError:
            return "invalid JSON from here on: nested too deeply"
        except ValueError as problem:  # JSONDecodeError, or a window ending inside a character
            if whole or _damaged(problem, text):
                return f"invalid JSON from here on: {str(problem)[:200]}"
            if window >= source.limit:
                return f"a record larger than {source.limit} bytes: not read"
            window *= 2
            continue
        size = len(text[:end].encode("utf-8", errors=source.errors))
        if not repair:
            return size, value, ()
        repaired: list[str] = []
        return size, repair_value(value, repaired), tuple(repaired)


def _damaged(problem: ValueError, text: str) -> bool:
    """An error a larger window cannot mend: cutting JSON short makes the scanner fail at the cut,
    except inside a string, which it reports at the string's start."""
    return (
        isinstance(problem, json.JSONDecodeError)
        and not problem.msg.startswith("Unterminated string")
        and problem.pos < len(text) - 16
    )
