"""Where each key of a campaign file is: `file:line:column` for error messages.

Only used when there is an error to report, on a file that `tomllib` has already parsed
(so the fast path of loading is untouched and the text here is known to be valid TOML).
A small scanner rather than a dependency: tomlkit, the usual round-trip parser, keeps the
formatting but not the positions of keys, so it would not give line numbers either.

Paths are tuples of keys and array indices, as in the parsed data: `("assets", 0, "copy",
"headline")`. Tables and arrays of tables map to their header, keys to the key, and array
elements to the element.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import Any

Path_ = tuple[Any, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\",
            "e": "\x1b"}


class _Stop(Exception):
    """The scanner met something it does not understand: keep what was found."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.found: dict[Path_, int] = {}
        self.aot: dict[Path_, int] = {}  # array of tables -> index of its last table

    # -- characters -------------------------------------------------------------------------

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < self.n else ""

    def skip_ws(self) -> None:
        while self.i < self.n and self.s[self.i] in " \t":
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.s.find("\n", self.i)
            self.i = self.n if end < 0 else end

    def skip_blank(self) -> None:
        """Whitespace, newlines and comments (inside arrays, and between statements)."""
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                self.skip_comment()
            else:
                return

    def note(self, path: Path_, at: int) -> None:
        self.found.setdefault(path, at)

    # -- keys -------------------------------------------------------------------------------

    def key(self) -> list[tuple[str, int]]:
        """A dotted key: [(part, position)]."""
        parts = []
        while True:
            self.skip_ws()
            at = self.i
            c = self.peek()
            if c == '"':
                parts.append((self.basic_string(), at))
            elif c == "'":
                parts.append((self.literal_string(), at))
            else:
                start = self.i
                while self.i < self.n and self.s[self.i] in _BARE:
                    self.i += 1
                if self.i == start:
                    raise _Stop
                parts.append((self.s[start:self.i], at))
            self.skip_ws()
            if self.peek() != ".":
                return parts
            self.i += 1

    # -- strings ----------------------------------------------------------------------------

    def basic_string(self) -> str:
        if self.s.startswith('"""', self.i):
            return self.multiline('"""', escapes=True)
        self.i += 1
        out: list[str] = []
        while self.i < self.n:
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                out.append(self.escape())
                continue
            if c == "\n":
                raise _Stop
            out.append(c)
            self.i += 1
        raise _Stop

    def escape(self) -> str:
        c = self.peek(1)
        if c in _ESCAPES:
            self.i += 2
            return _ESCAPES[c]
        if c in ("u", "U"):
            width = 4 if c == "u" else 8
            digits = self.s[self.i + 2:self.i + 2 + width]
            self.i += 2 + width
            try:
                return chr(int(digits, 16))
            except ValueError:
                raise _Stop from None
        raise _Stop

    def literal_string(self) -> str:
        if self.s.startswith("'''", self.i):
            return self.multiline("'''", escapes=False)
        end = self.s.find("'", self.i + 1)
        if end < 0:
            raise _Stop
        text = self.s[self.i + 1:end]
        self.i = end + 1
        return text

    def multiline(self, quote: str, escapes: bool) -> str:
        self.i += 3
        start = self.i
        while self.i < self.n:
            c = self.s[self.i]
            if escapes and c == "\\":
                self.i += 2
                continue
            if self.s.startswith(quote, self.i):
                run = 3
                while run < 5 and self.peek(run) == quote[0]:
                    run += 1
                self.i += run
                return self.s[start:self.i - 3]
            self.i += 1
        raise _Stop

    # -- values -----------------------------------------------------------------------------

    def value(self, path: Path_) -> None:
        c = self.peek()
        if c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            start = self.i
            while self.i < self.n and self.s[self.i] not in ",]}\n\r#":
                self.i += 1
            if self.i == start:
                raise _Stop

    def array(self, path: Path_) -> None:
        self.i += 1
        index = 0
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.i += 1
                return
            self.note(path + (index,), self.i)
            self.value(path + (index,))
            self.skip_blank()
            if self.peek() == ",":
                self.i += 1
                index += 1
            elif self.peek() == "]":
                self.i += 1
                return
            else:
                raise _Stop

    def inline_table(self, path: Path_) -> None:
        self.i += 1
        while True:
            self.skip_blank()
            if self.peek() == "}":
                self.i += 1
                return
            target = self.key_value(path)
            del target
            self.skip_blank()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() == "}":
                self.i += 1
                return
            else:
                raise _Stop

    def key_value(self, table: Path_) -> Path_:
        parts = self.key()
        path = table
        for name, at in parts:
            path = path + (name,)
            self.note(path, at)
        if self.peek() != "=":
            raise _Stop
        self.i += 1
        self.skip_ws()
        self.value(path)
        return path

    # -- the document -----------------------------------------------------------------------

    def header(self) -> Path_:
        at = self.i
        double = self.s.startswith("[[", self.i)
        self.i += 2 if double else 1
        parts = self.key()
        close = "]]" if double else "]"
        if not self.s.startswith(close, self.i):
            raise _Stop
        self.i += len(close)
        path: Path_ = ()
        for k, (name, _) in enumerate(parts):
            path = path + (name,)
            last = k == len(parts) - 1
            if last and double:
                index = self.aot.get(path, -1) + 1
                self.aot[path] = index
                self.note(path, at)
                path = path + (index,)
            elif path in self.aot:
                path = path + (self.aot[path],)
            self.note(path, at)
        return path

    def document(self, wanted: frozenset[Path_] = frozenset()) -> None:
        """Scan statement by statement; stop early once every path in `wanted` is found."""
        table: Path_ = ()
        missing = set(wanted)
        while True:
            if missing:
                missing.difference_update([p for p in missing if p in self.found])
                if not missing:
                    return
            self.skip_blank()
            if self.i >= self.n:
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)
            self.skip_ws()
            self.skip_comment()
            if self.i < self.n and self.s[self.i] not in "\r\n":
                raise _Stop


class Positions:
    """Line and column (1-based) of each key path of a TOML text."""

    def __init__(self, text: str, wanted: Iterable[Path_] = ()) -> None:
        scanner = _Scanner(text)
        try:
            scanner.document(frozenset(tuple(p) for p in wanted))
        except (_Stop, RecursionError, IndexError, ValueError):
            pass  # what was found so far still locates those keys
        self._found = scanner.found
        self._lines = [0] + [k + 1 for k, c in enumerate(text) if c == "\n"]

    def line_col(self, offset: int) -> tuple[int, int]:
        row = bisect.bisect_right(self._lines, offset) - 1
        return row + 1, offset - self._lines[row] + 1

    def find(self, path: Path_) -> tuple[int, int] | None:
        """Where `path` is, or its nearest enclosing key that is in the file."""
        path = tuple(path)
        while path:
            offset = self._found.get(path)
            if offset is not None:
                return self.line_col(offset)
            path = path[:-1]
        return None


_PIECE = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\n\\]|\\.)*"|'[^'\n]*')"""


def dotted_key_error(text: str, limit: int) -> tuple[int, int] | None:
    """(line, column) of a dotted key of more than `limit` parts (`a.a.a...`), else None.

    Checked before parsing: tomllib takes time quadratic in the parts of a dotted key (a
    minute for 50,000 of them). A regular expression finds the candidates quickly; a
    candidate inside a string or a comment is not a key and is passed over.
    """
    if text.count(".") < limit or not any(line.count(".") >= limit
                                          for line in text.splitlines()):
        return None  # a dotted key is on one line
    pattern = re.compile(rf"{_PIECE}(?:[ \t]*\.[ \t]*{_PIECE}){{{limit},}}")
    for match in pattern.finditer(text):
        if not _in_string_or_comment(text, match.start()):
            line = text.count("\n", 0, match.start()) + 1
            return line, match.start() - text.rfind("\n", 0, match.start())
    return None


def _in_string_or_comment(text: str, pos: int) -> bool:
    """Whether offset `pos` is inside a string or a comment (scanning from the start)."""
    i = 0
    while i < pos:
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            if end < 0 or end > pos:
                return True
            i = end
            continue
        if c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < len(text):
                if c == '"' and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j) or (len(quote) == 1 and text[j] == "\n"):
                    break
                j += 1
            if j >= pos:
                return True
            i = j + len(quote)
            continue
        i += 1
    return False


def nesting_error(text: str, limit: int) -> tuple[int, int, int] | None:
    """(line, column, depth) where arrays and inline tables nest deeper than `limit`, found
    without recursion (for a file too deep for the parser), else None."""
    depth = 0
    i, n = 0, len(text)
    line, line_start = 1, 0
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            line_start = i + 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < n:
                if c == '"' and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j):
                    break
                if len(quote) == 1 and text[j] == "\n":
                    break
                j += 1
            line += text.count("\n", i, j)
            if "\n" in text[i:j]:
                line_start = text.rindex("\n", i, j) + 1
            i = j + len(quote)
            continue
        elif c in "[{":
            depth += 1
            if depth > limit:
                return line, i - line_start + 1, depth
        elif c in "]}":
            depth -= 1
        i += 1
    return None
