"""The one exception a bad input file raises, with a message safe to show and to log.

File names come from uploads and ZIP archives: they may hold newlines (which would forge log lines),
terminal escapes, bytes that are not UTF-8, or thousands of characters. The message is always one
printable line: `NAME: reason`.
"""
from __future__ import annotations

MAX_NAME_CHARS = 120
MAX_REASON_CHARS = 300


def sanitise_name(name: str | bytes | None) -> str:
    """Return `name` as one printable line: control characters escaped, non-UTF-8 bytes replaced by
    U+FFFD, and a name longer than MAX_NAME_CHARS shortened in the middle (keeping the extension)."""
    if name is None:
        return "<unnamed>"
    if isinstance(name, bytes):
        text = name.decode("utf-8", errors="replace")
    else:
        # os.fsdecode turns undecodable bytes into lone surrogates; make them visible as U+FFFD.
        text = str(name).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return _shorten(_escape_controls(text), MAX_NAME_CHARS) or "<unnamed>"


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Collapse `text` to a single printable line of at most `limit` characters."""
    flat = " ".join(_escape_controls(str(text).replace("\n", " ").replace("\r", " ")).split())
    return _shorten(flat, limit)


def _escape_controls(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
            out.append(repr(char)[1:-1] if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = limit - 1
    head, tail = keep - keep // 3, keep // 3
    return f"{text[:head]}…{text[len(text) - tail:]}"


class RejectedFile(ValueError):
    """A file that cannot be used as a scan. `str(e)` is `NAME: reason` on one line; `name` is the
    sanitised file name and `reason` the part after it."""

    def __init__(self, name: str | bytes | None, reason: str) -> None:
        self.name = sanitise_name(name)
        self.reason = one_line(reason)
        super().__init__(f"{self.name}: {self.reason}")

    def __reduce__(self) -> tuple[type[RejectedFile], tuple[str, str]]:
        # Exceptions cross process boundaries (multiprocessing, Celery): rebuild from both parts.
        return (type(self), (self.name, self.reason))
