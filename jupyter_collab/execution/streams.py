"""One stream output's text, built as JupyterLab builds it (`Private.processText` in
@jupyterlab/outputarea `model.ts`), but linear in the size of each chunk.

JupyterLab re-slices the whole text for every chunk, which is quadratic over a long run. Its
rules make everything before the last `\\n` immutable (`\\r` returns to the start of the
current line, `\\b` never deletes a newline, and `\\n` is always appended at the end), so
a stream here is its committed lines, the current line and a cursor in it. Results are
identical to JupyterLab's for text without astral characters (see `outputs.py`).
"""

from __future__ import annotations

import re

_CONTROL = re.compile("([\\n\\b\\r])")


def utf8(text: str) -> int:
    """Bytes of `text` in UTF-8, the unit of pycrdt offsets and of the size bound."""
    return len(text.encode("utf-8"))


class StreamText:
    """One stream output's text: committed lines, the current line and a cursor in it."""

    def __init__(self) -> None:
        self._committed: list[str] = []  # whole lines, each ending in "\n"
        self.committed_bytes = 0
        self._line: list[str] = []  # pieces of the current line (appends are the usual case)
        self._line_len = 0
        self._line_bytes = 0
        self._cursor = 0

    @property
    def size(self) -> int:
        return self.committed_bytes + self._line_bytes

    @property
    def committed_parts(self) -> int:
        return len(self._committed)

    @property
    def line(self) -> str:
        if len(self._line) > 1:
            self._line = ["".join(self._line)]
        return self._line[0] if self._line else ""

    def text(self) -> str:
        return "".join(self._committed) + self.line

    def since(self, parts: int) -> str:
        """The text after the first `parts` committed lines."""
        return "".join(self._committed[parts:]) + self.line

    def feed(self, chunk: str) -> None:
        """Apply one chunk as `Private.processText(index, chunk, text)` would."""
        for token in _CONTROL.split(chunk):
            if token == "\n":  # appended at the end of the text, wherever the cursor is
                line = self.line
                self._committed.append(line + "\n")
                self.committed_bytes += self._line_bytes + 1
                self._line, self._line_len, self._line_bytes, self._cursor = [], 0, 0, 0
            elif token == "\r":
                self._cursor = 0
            elif token == "\b":  # drops the character before the cursor and the one under it
                if self._cursor > 0:
                    line = self.line
                    self._set_line(line[: self._cursor - 1] + line[self._cursor + 1 :])
                    self._cursor -= 1
            elif token and self._cursor == self._line_len:
                self._line.append(token)
                self._line_len += len(token)
                self._line_bytes += utf8(token)
                self._cursor = self._line_len
            elif token:  # overwrite from the cursor, as after "\r"
                line = self.line
                end = self._cursor + len(token)
                self._set_line(line[: self._cursor] + token + line[end:])
                self._cursor = end

    def _set_line(self, line: str) -> None:
        self._line = [line] if line else []
        self._line_len = len(line)
        self._line_bytes = utf8(line)

    def truncate(self, keep: int) -> str:
        """Keep at most `keep` bytes of text (whole characters); return the text cut off.
        Whole lines that fit stay as they were, so an earlier tail edit stays valid."""
        kept: list[str] = []
        total = 0
        pieces = [*self._committed, self.line]
        for index, piece in enumerate(pieces):
            size = utf8(piece)
            if total + size > keep:
                head = piece.encode("utf-8")[: keep - total].decode("utf-8", "ignore")
                kept.append(head)
                total += utf8(head)
                dropped = piece[len(head) :] + "".join(pieces[index + 1 :])
                break
            kept.append(piece)
            total += size
        else:
            return ""
        self._committed = [piece for piece in kept if piece]
        self.committed_bytes = total
        self._set_line("")
        self._cursor = 0
        return dropped
