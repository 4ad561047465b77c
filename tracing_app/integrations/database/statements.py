"""What a statement looks like on its span: ``db.query.text`` made safe, readable and small.

``shape(sql)`` turns the SQL the ORM sends into the text we record:

1. Values never appear: inline literals (``'abc'``, ``42``, ``$$...$$``) and the
   driver's placeholders (``%s``, ``%(name)s``) all become ``?``. One style for
   every backend (Django hands execute wrappers ``%s`` on PostgreSQL, SQLite, MySQL
   and Oracle alike; raw SQL may carry literals): ``?`` is the marker the
   OpenTelemetry database conventions use for a redacted value, it reads the same
   whether the ORM bound a parameter or the code inlined a literal, and so one
   statement shape has one text (which the repeated-query count relies on). Mixed
   output such as ``WHERE id = %s LIMIT ?`` was the two rules applied one after
   the other.
2. Lists collapse: ``IN (?, ?, ?)`` becomes ``IN (? /*, ... */)`` (and PostgreSQL's
   ``ARRAY[?, ?, ?]`` becomes ``ARRAY[? /*, ... */]``) with the number of
   values in ``tracing_app.db.query.in_list.size``, and the identical rows of a
   multi-row ``VALUES (?, ?), (?, ?)`` (``bulk_create``) become ``VALUES (?, ?) /*, ... */``
   with the number of rows in ``db.operation.batch.size`` (also for the
   ``INSERT ... SELECT * FROM UNNEST(...)`` Django 5.2 writes on PostgreSQL, whose
   rows are in its array parameters). The written form is
   PostgreSQL 18's own for squashed constant lists in ``pg_stat_statements``, and
   stays valid SQL.
3. The result is cut to ``max_length`` characters (``TRACING["QUERY_TEXT_MAX_LENGTH"]``).

``StatementCache`` keeps shaped statements by the SQL text, bounded by the bytes it
holds (``STATEMENT_CACHE_MAX_BYTES``), not by a count: a count of 1024 let the
cache hold 1024 statements of 120 kB each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

# Inline literals in SQL text become "?" so that values typed into raw SQL (or
# built into it) never reach the spans; quoted identifiers stay. Backslash escapes
# inside '...' exist only in MySQL's default mode: elsewhere '\' is an ordinary
# character, and treating it as an escape would let the rest of a statement pass
# as non-literal text. An unterminated string is redacted to the end.
_LITERAL = r"""
    (?P<ident>"(?:[^"]|"")*"|`[^`]*`)
  | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|$))
  | [EeBbXxNn]?'{body}(?:'|$)
  | %(?:\([^)]*\))?s
  | (?<![\w$.:])(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?!\w)
"""
_LITERALS = re.compile(_LITERAL.format(body=r"(?:[^']|'')*"), re.VERBOSE | re.DOTALL)
_LITERALS_BACKSLASH = re.compile(_LITERAL.format(body=r"(?:[^'\\]|''|\\.)*"), re.VERBOSE | re.DOTALL)

# A list item: a placeholder, a number, or a row of them ("(a, b) IN ((%s, %s), ...)").
# Possessive quantifiers (Python 3.11+): an item or separator once matched is never given
# back, which cannot change what matches (an item is always followed by "," or the list's
# end) but saves the regex engine a backtracking point per item: 30,000 inline numbers
# shaped in 17 ms instead of 67.
_ITEM = r"(?:%s|%\(\w++\)s|\?|-?\d++(?:\.\d++)?+)"
_ITEMS = rf"{_ITEM}(?:\s*+,\s*+{_ITEM})*+"
# "IN (...)" of two or more items; rows must repeat exactly.
_IN_LIST = re.compile(rf"\bIN\s*\(\s*({_ITEM}|\({_ITEMS}\))((?:\s*+,\s*+(?:{_ITEM}|\({_ITEMS}\)))++)\s*\)",
                      re.IGNORECASE)
# PostgreSQL's array constructor of two or more items: "= ANY(ARRAY[1, 2, ...])" is raw SQL's other long list.
_ARRAY_LIST = re.compile(rf"\bARRAY\s*\[\s*{_ITEM}((?:\s*+,\s*+{_ITEM})++)\s*\]", re.IGNORECASE)
# Two or more identical rows after VALUES (bulk_create writes each row the same).
_VALUES_ROWS = re.compile(r"\bVALUES\s*(\((?:[^()']|\([^()']*\))*\))((?:\s*,\s*\1)+)", re.IGNORECASE)

_UNNEST = re.compile(r"\bSELECT \* FROM UNNEST\(", re.IGNORECASE)
MORE = " /*, ... */"
DEFAULT_MAX_LENGTH = 2048
HOUSEKEEPING = re.compile(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|BEGIN)\b", re.IGNORECASE)
_OPERATION = re.compile(r"\s*(\w+)")
_COLLECTION = re.compile(r"""\b(?:FROM|INTO|UPDATE|TABLE)\s+["`]?([\w.]+)["`]?""", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Shape:
    """One statement as recorded: its text and what collapsing counted (0: nothing collapsed)."""

    text: str
    operation: str
    collection: str
    in_list_size: int = 0
    rows: int = 0
    # INSERT ... SELECT * FROM UNNEST(%s::type[], ...): Django 5.2's bulk_create on
    # PostgreSQL sends one array per column; the row count is in the parameters.
    unnest: bool = False

    @property
    def span_name(self) -> str:
        return f"{self.operation} {self.collection}".strip()


def _keep_identifiers(match: re.Match[str]) -> str:
    return match.group("ident") or "?"


def redact(sql: str, backslash_escapes: bool = False) -> str:
    """``sql`` with every inline literal and driver placeholder replaced by ``?``."""
    return (_LITERALS_BACKSLASH if backslash_escapes else _LITERALS).sub(_keep_identifiers, sql)


def collapse(sql: str) -> tuple[str, int, int]:
    """(sql, values in IN lists, VALUES rows) with repeated lists written once.

    Runs on the SQL as sent, before ``redact``: a list of 30,000 ``%s`` is then one
    match instead of 30,000 replacements (120 kB: 3 ms instead of 100 ms).
    """
    in_values = rows = 0

    def in_list(match: re.Match[str]) -> str:
        nonlocal in_values
        first, rest = match.group(1), match.group(2)
        if first.startswith("("):  # rows: count them, keep the first
            in_values += 1 + rest.count("(")
        else:
            in_values += 1 + rest.count(",")
            first = "?"
        return f"IN ({first}{MORE})"

    def array_list(match: re.Match[str]) -> str:
        nonlocal in_values
        in_values += 1 + match.group(1).count(",")
        return f"{match.group(0)[:5]}[?{MORE}]"  # the keyword as written

    def values_rows(match: re.Match[str]) -> str:
        nonlocal rows
        rows += 1 + match.group(2).count(match.group(1))
        return f"VALUES {match.group(1)}{MORE}"

    sql = _IN_LIST.sub(in_list, sql)
    if "[" in sql:
        sql = _ARRAY_LIST.sub(array_list, sql)
    if "VALUES" in sql or "values" in sql:  # a substring test is far cheaper than the regex's scan
        sql = _VALUES_ROWS.sub(values_rows, sql)
    return sql, in_values, rows


def describe(sql: str) -> tuple[str, str]:
    """(operation, collection) of a statement, e.g. ``("SELECT", "orders_order")``."""
    match = _OPERATION.match(sql)
    operation = match.group(1).upper() if match else ""
    found = _COLLECTION.search(sql, 0, 2000)
    return operation, (found.group(1) if found else "")


def shape(sql: str, backslash_escapes: bool = False, max_length: int = DEFAULT_MAX_LENGTH) -> Shape:
    """The recorded form of ``sql`` (see the module docstring)."""
    collapsed, in_values, rows = collapse(sql)
    # Again after redaction: lists of string literals are lists of "?" only now.
    text, more_values, more_rows = collapse(redact(collapsed, backslash_escapes))
    in_values, rows = in_values + more_values, rows + more_rows
    operation, collection = describe(text)
    unnest = operation == "INSERT" and _UNNEST.search(text) is not None
    return Shape(text[:max_length], operation, collection, in_values, rows, unnest)


# Bytes a cached entry costs besides its texts: the entry in the ordered dict, the Shape
# and its fields' objects (measured with sys.getsizeof on CPython 3.12, rounded up).
ENTRY_OVERHEAD = 400
STATEMENT_CACHE_MAX_BYTES = 2 * 1024 * 1024
# SQL longer than this is cached by a 16-byte digest of its text, never by the text.
LONG_SQL = 512


class StatementCache:
    """Shaped statements by SQL text, least recently used first out, holding at most
    ``max_bytes`` (texts counted at one byte per character plus ``ENTRY_OVERHEAD``).

    Keys are the SQL itself up to ``LONG_SQL`` characters, a BLAKE2b digest beyond:
    a 120 kB ``IN`` list costs 16 bytes of key, not 120 kB, and its shaped text is
    at most ``max_length`` characters.
    """

    def __init__(self, max_bytes: int = STATEMENT_CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_length = DEFAULT_MAX_LENGTH
        self.bytes = 0
        self._entries: OrderedDict[Any, tuple[Shape | None, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, sql: str, backslash_escapes: bool, max_length: int) -> Shape | None:
        """The shape of ``sql``; None for housekeeping that is not traced."""
        if max_length != self.max_length:  # set once per install: shapes cut to another length are stale
            self.clear()
            self.max_length = max_length
        key: Any = sql if len(sql) <= LONG_SQL else hashlib.blake2b(
            sql.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if backslash_escapes:  # MySQL reads the same text differently: its own keys
            key = ("mysql", key)
        # The hit path takes no lock (one per query would cost more than the lookup):
        # dict reads and move_to_end are atomic under the GIL, and an entry evicted
        # meanwhile only costs that move.
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            try:
                entries.move_to_end(key)
            except KeyError:
                pass
            return entry[0]
        found = None if HOUSEKEEPING.match(sql) else shape(sql, backslash_escapes, max_length)
        cost = ENTRY_OVERHEAD + min(len(sql), LONG_SQL + 16) + (len(found.text) if found else 0)
        with self._lock:
            if key not in entries:
                entries[key] = (found, cost)
                self.bytes += cost
                while self.bytes > self.max_bytes and entries:
                    _, (_, dropped) = entries.popitem(last=False)
                    self.bytes -= dropped
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0
