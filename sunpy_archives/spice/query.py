"""
A safe query language for filtering the SPICE catalog.

The official ``sospice`` client filters its catalog with
``find_files(query=...)``, which hands the string to `pandas.DataFrame.query`,
so the string is evaluated as Python code. This module accepts the same kind
of expression but never evaluates it: the text is tokenised and parsed into a
small immutable syntax tree, the tree is checked against the catalog's columns
and their dtypes, and only then is it evaluated with vectorised pandas/numpy
operations. Anything outside the grammar below is a
`~sunpy_archives.core.errors.QuerySyntaxError` that points at the offending
character.

Examples
--------
>>> import pandas as pd
>>> from sunpy_archives.spice.query import filter_frame, parse
>>> frame = pd.DataFrame({"LEVEL": ["L1", "L2", "L2"], "NAXIS1": [50, 80, 400]})
>>> filter_frame(frame, "LEVEL == 'L2' & NAXIS1 < 100")
  LEVEL  NAXIS1
1    L2      80
>>> str(parse("600 < CRVAL1 < 700 | ~(`DATE-BEG` >= '2022-04-01')"))
"600 < CRVAL1 < 700 or not `DATE-BEG` >= '2022-04-01'"

Grammar
-------
In EBNF, with ``{ x }`` meaning zero or more ``x`` and ``[ x ]`` meaning an
optional ``x``::

    query       = or_expr EOF ;
    or_expr     = and_expr { ( "or" | "|" ) and_expr } ;
    and_expr    = not_expr { ( "and" | "&" ) not_expr } ;
    not_expr    = ( "not" | "~" ) not_expr | comparison ;
    comparison  = "(" or_expr ")"
                | operand compare_op operand { compare_op operand }
                | column [ "not" ] "in" list ;
    compare_op  = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
    operand     = column | literal ;
    list        = "[" [ literal { "," literal } [ "," ] ] "]"
                | "(" [ literal { "," literal } [ "," ] ] ")" ;
    column      = IDENTIFIER | "`" { any character except "`" } "`" ;
    literal     = STRING | [ "-" | "+" ] NUMBER | "True" | "False" ;
    STRING      = "'" { character | escape } "'" | '"' { character | escape } '"' ;
    escape      = "\\" ( "\\" | "'" | '"' | "n" | "r" | "t" | "a" | "b" | "f" | "v"
                | "x" 2 * HEX | "u" 4 * HEX | "U" 8 * HEX ) ;
    NUMBER      = ( DIGITS [ "." [ DIGITS ] ] | "." DIGITS )
                  [ ( "e" | "E" ) [ "+" | "-" ] DIGITS ] ;

``IDENTIFIER`` is a Python identifier that is not one of the reserved words
``and``, ``or``, ``not``, ``in``, ``True``, ``False`` and ``None``; any other
column name (``DATE-BEG``, a reserved word...) is written between backticks.
Reserved words are lower case (``True``/``False``/``None`` capitalised), so
upper-case FITS keywords never clash with them. Whitespace between tokens is
ignored. A number with a ``.`` or an exponent is a float, otherwise an int.

Rules that go beyond the grammar:

* **Precedence.** Comparisons bind tightest, then ``not``/``~``, then
  ``and``/``&``, then ``or``/``|``. So ``LEVEL == 'L2' & NAXIS1 < 100`` means
  ``(LEVEL == 'L2') & (NAXIS1 < 100)`` and ``~XPOSURE > 30`` means
  ``~(XPOSURE > 30)``. (``&``, ``|`` and ``~`` are plain synonyms of ``and``,
  ``or`` and ``not``; this differs from Python, where ``&`` binds tighter than
  ``<``.) With the keyword spellings this is exactly Python's precedence.
* **Chained comparisons** ``a < b < c`` mean ``a < b and b < c``, as in
  Python. Each comparison must involve at least one column: comparing two
  literals is an error. Membership tests (``in``/``not in``) cannot be
  chained.
* **Types** are checked before any data is touched: numeric columns compare
  with numbers, boolean columns with ``True``/``False``, string columns with
  strings, and datetime columns with strings that parse as dates (a naive
  literal is taken in the column's time zone; a literal with an offset is
  converted to it, or to naive UTC for a naive column). Two columns can be
  compared when their kinds agree. ``object`` columns are compared as strings;
  categorical columns like their categories. String comparisons are exact and
  case sensitive.
* **Missing values** (NaN, NaT, None, NA) never satisfy ``==``, ``<``, ``<=``,
  ``>``, ``>=`` or ``in``; they always satisfy ``!=`` and ``not in``, which
  are the negations of ``==`` and ``in`` (as in pandas).
* ``None`` is reserved and rejected: missing values are never matched by a
  comparison, so comparing with ``None`` is always a mistake.

`str` of a parsed tree gives a canonical expression (keywords ``and``, ``or``,
``not``; single-quoted strings; backticks only where needed) that parses back
to an equal tree.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_complex_dtype,
    is_datetime64_any_dtype,
    is_numeric_dtype,
    is_object_dtype,
    is_string_dtype,
    pandas_dtype,
)

from sunpy_archives.core.errors import QuerySyntaxError

__all__ = [
    "Node",
    "Column",
    "Literal",
    "Comparison",
    "Membership",
    "Not",
    "And",
    "Or",
    "parse",
    "check",
    "evaluate",
    "filter_frame",
]

_ARCHIVE = "SPICE"

#: Reserved words; a column with one of these names must be written in backticks.
KEYWORDS = frozenset({"and", "or", "not", "in", "True", "False", "None"})

#: Comparison operators, in their canonical spelling.
COMPARISON_OPERATORS = ("==", "!=", "<", "<=", ">", ">=")

# Nesting (parentheses and not/~) deeper than this is refused, so that the
# recursive parser, checker and evaluator never run out of stack.
_MAX_DEPTH = 100

LiteralValue: TypeAlias = str | bool | int | float


def _error(message: str, expression: str | None, position: int | None) -> QuerySyntaxError:
    """Build the `QuerySyntaxError` used for every problem with an expression."""
    return QuerySyntaxError(message, expression=expression, position=position, archive=_ARCHIVE)


# ---------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base class of the nodes of a parsed query.

    Nodes are immutable and compare equal when they have the same structure;
    ``position`` (the 0-based offset of the node's first token in the parsed
    expression, or None for nodes built by hand) takes no part in equality.
    """

    position: int | None = field(default=None, compare=False, repr=False, kw_only=True)

    def columns(self) -> set[str]:
        """Return the names of the columns the node refers to.

        Returns
        -------
        set of str
            Column names, possibly empty.
        """
        return {column.name for column in self._iter_columns()}

    def _iter_columns(self) -> Iterator[Column]:
        """Yield the `Column` nodes in the order they appear in the expression."""
        return iter(())

    def __str__(self) -> str:  # pragma: no cover - every concrete node overrides it
        raise NotImplementedError


def _is_plain_name(name: str) -> bool:
    """Whether ``name`` can be written without backticks."""
    return name.isidentifier() and name not in KEYWORDS


@dataclass(frozen=True)
class Column(Node):
    """A reference to a catalog column.

    Parameters
    ----------
    name : str
        The column name. It may contain any character except a backtick.
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"column name must be a str, not {type(self.name).__name__}")
        if not self.name or "`" in self.name:
            raise ValueError(f"invalid column name {self.name!r}: "
                             "it must be non-empty and contain no backtick")

    def _iter_columns(self) -> Iterator[Column]:
        yield self

    def __str__(self) -> str:
        return self.name if _is_plain_name(self.name) else f"`{self.name}`"


def _quote(text: str) -> str:
    """Write ``text`` as a single-quoted string literal of the query language."""
    parts = ["'"]
    for char in text:
        if char == "\\":
            parts.append("\\\\")
        elif char == "'":
            parts.append("\\'")
        elif char == "\n":
            parts.append("\\n")
        elif char == "\r":
            parts.append("\\r")
        elif char == "\t":
            parts.append("\\t")
        elif char.isprintable():
            parts.append(char)
        else:
            code = ord(char)
            if code < 0x100:
                parts.append(f"\\x{code:02x}")
            elif code < 0x10000:
                parts.append(f"\\u{code:04x}")
            else:
                parts.append(f"\\U{code:08x}")
    parts.append("'")
    return "".join(parts)


@dataclass(frozen=True)
class Literal(Node):
    """A literal value: a string, a number or a boolean.

    Parameters
    ----------
    value : str, bool, int or float
        The value. NaN is refused (it would never match anything); numpy
        scalars are converted to their Python equivalents.
    """

    value: LiteralValue

    def __post_init__(self) -> None:
        value = self.value
        if isinstance(value, np.generic):
            value = value.item()
            object.__setattr__(self, "value", value)
        if not isinstance(value, (str, bool, int, float)):
            raise TypeError("literal must be a str, bool, int or float, "
                            f"not {type(value).__name__}")
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("NaN is not a valid literal: missing values never match a comparison")

    def __eq__(self, other: object) -> bool:
        # Unlike Python, 1 == 1.0 == True must not make two literals equal:
        # they are checked differently against column types.
        if not isinstance(other, Literal):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((Literal, type(self.value), self.value))

    def describe(self) -> str:
        """Describe the literal for error messages, e.g. ``string 'L2'``.

        Returns
        -------
        str
            The literal's kind followed by its canonical spelling.
        """
        if isinstance(self.value, bool):
            return f"boolean {self}"
        if isinstance(self.value, str):
            return f"string {self}"
        return f"number {self}"

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, str):
            return _quote(value)
        if isinstance(value, bool) or isinstance(value, int):
            return str(value)
        if math.isinf(value):
            return "1e999" if value > 0 else "-1e999"
        return repr(value)


Operand: TypeAlias = Column | Literal


@dataclass(frozen=True)
class Comparison(Node):
    """One comparison or a chain of comparisons, like ``600 < CRVAL1 < 700``.

    A chain ``a op1 b op2 c`` means ``a op1 b and b op2 c``.

    Parameters
    ----------
    operands : tuple of Column or Literal
        At least two operands. Two neighbouring operands cannot both be literals.
    operators : tuple of str
        One fewer than ``operands``, each one of ``==``, ``!=``, ``<``, ``<=``,
        ``>``, ``>=``.
    """

    operands: tuple[Operand, ...]
    operators: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "operands", tuple(self.operands))
        object.__setattr__(self, "operators", tuple(self.operators))
        if len(self.operands) < 2 or len(self.operators) != len(self.operands) - 1:
            raise ValueError("a comparison needs n >= 2 operands and n - 1 operators")
        for item in self.operands:
            if not isinstance(item, (Column, Literal)):
                raise TypeError("comparison operands must be Column or Literal nodes, "
                                f"not {type(item).__name__}")
        for op in self.operators:
            if op not in COMPARISON_OPERATORS:
                raise ValueError(f"unknown comparison operator {op!r}")
        for left, right in self.pairs():
            if isinstance(left, Literal) and isinstance(right, Literal):
                raise ValueError(f"comparison of two literals {left} and {right}; "
                                 "one side must be a column")

    def pairs(self) -> Iterator[tuple[Operand, Operand]]:
        """Yield each ``(left, right)`` pair of neighbouring operands."""
        return zip(self.operands[:-1], self.operands[1:])

    def _iter_columns(self) -> Iterator[Column]:
        for item in self.operands:
            if isinstance(item, Column):
                yield item

    def __str__(self) -> str:
        parts = [str(self.operands[0])]
        for op, item in zip(self.operators, self.operands[1:]):
            parts.append(op)
            parts.append(str(item))
        return " ".join(parts)


@dataclass(frozen=True)
class Membership(Node):
    """A membership test, ``column in [values]`` or ``column not in [values]``.

    Parameters
    ----------
    column : Column
        The column tested.
    values : tuple of Literal
        The allowed (or, negated, the refused) values; may be empty.
    negated : bool
        True for ``not in``.
    """

    column: Column
    values: tuple[Literal, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not isinstance(self.column, Column):
            raise TypeError("the left side of 'in' must be a Column node")
        for item in self.values:
            if not isinstance(item, Literal):
                raise TypeError("membership values must be Literal nodes, "
                                f"not {type(item).__name__}")

    def _iter_columns(self) -> Iterator[Column]:
        yield self.column

    def __str__(self) -> str:
        keyword = "not in" if self.negated else "in"
        return f"{self.column} {keyword} [{', '.join(str(value) for value in self.values)}]"


def _check_child(child: object) -> None:
    """Refuse children of logical nodes that are not boolean expressions."""
    if not isinstance(child, (Comparison, Membership, Not, And, Or)):
        raise TypeError(f"logical operators combine comparisons, not {type(child).__name__}")


@dataclass(frozen=True)
class Not(Node):
    """Logical negation, ``not x`` or ``~x``.

    Parameters
    ----------
    operand : Node
        The negated boolean expression.
    """

    operand: Node

    def __post_init__(self) -> None:
        _check_child(self.operand)

    def _iter_columns(self) -> Iterator[Column]:
        yield from self.operand._iter_columns()

    def __str__(self) -> str:
        inner = str(self.operand)
        if isinstance(self.operand, (And, Or)):
            inner = f"({inner})"
        return f"not {inner}"


@dataclass(frozen=True)
class _Junction(Node):
    """Shared implementation of `And` and `Or`."""

    operands: tuple[Node, ...]
    keyword: ClassVar[str] = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "operands", tuple(self.operands))
        if len(self.operands) < 2:
            raise ValueError(f"'{self.keyword}' needs at least two operands")
        for child in self.operands:
            _check_child(child)

    def _iter_columns(self) -> Iterator[Column]:
        for child in self.operands:
            yield from child._iter_columns()


@dataclass(frozen=True)
class And(_Junction):
    """Logical conjunction of two or more boolean expressions (``and``/``&``).

    Parameters
    ----------
    operands : tuple of Node
        The combined expressions.
    """

    keyword: ClassVar[str] = "and"

    def __str__(self) -> str:
        return " and ".join(f"({child})" if isinstance(child, Or) else str(child)
                            for child in self.operands)


@dataclass(frozen=True)
class Or(_Junction):
    """Logical disjunction of two or more boolean expressions (``or``/``|``).

    Parameters
    ----------
    operands : tuple of Node
        The combined expressions.
    """

    keyword: ClassVar[str] = "or"

    def __str__(self) -> str:
        return " or ".join(str(child) for child in self.operands)


# ---------------------------------------------------------------------------
# Tokeniser
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """One token: its kind, its source text, its value and where it starts."""

    kind: str  # "name", "string", "number", "op", "keyword" or "eof"
    text: str
    position: int
    value: Any = None

    def describe(self) -> str:
        """Name the token in an error message."""
        return "end of expression" if self.kind == "eof" else repr(self.text)


_TWO_CHAR_OPS = ("==", "!=", "<=", ">=")
_ONE_CHAR_OPS = frozenset("<>&|~()[],-+")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _is_name_start(char: str) -> bool:
    return char == "_" or char.isidentifier()


def _is_name_char(char: str) -> bool:
    return ("a" + char).isidentifier()


def _read_string(expression: str, start: int) -> tuple[str, int]:
    """Read the string literal starting at ``start``; return its value and end."""
    quote = expression[start]
    parts: list[str] = []
    index = start + 1
    length = len(expression)
    while index < length:
        char = expression[index]
        if char == quote:
            return "".join(parts), index + 1
        if char != "\\":
            parts.append(char)
            index += 1
            continue
        if index + 1 >= length:
            break
        code = expression[index + 1]
        if code in _SIMPLE_ESCAPES:
            parts.append(_SIMPLE_ESCAPES[code])
            index += 2
        elif code in _HEX_ESCAPES:
            width = _HEX_ESCAPES[code]
            digits = expression[index + 2:index + 2 + width]
            if len(digits) != width or not set(digits) <= _HEX:
                raise _error(f"invalid escape '\\{code}' in string: "
                             f"expected {width} hexadecimal digits", expression, index)
            value = int(digits, 16)
            if value > 0x10FFFF:
                raise _error(f"invalid escape '\\{code}{digits}' in string: "
                             "not a Unicode code point", expression, index)
            parts.append(chr(value))
            index += 2 + width
        else:
            raise _error(f"unsupported escape '\\{code}' in string; write '\\\\' for a backslash",
                         expression, index)
    raise _error(f"unterminated string: the {quote} at position {start} is never closed",
                 expression, start)


def _read_number(expression: str, start: int) -> tuple[int | float, int]:
    """Read the number starting at ``start``; return its value and end."""
    length = len(expression)
    index = start
    is_float = False
    while index < length and expression[index] in _DIGITS:
        index += 1
    if index < length and expression[index] == ".":
        is_float = True
        index += 1
        while index < length and expression[index] in _DIGITS:
            index += 1
    if index < length and expression[index] in "eE":
        exponent = index + 1
        if exponent < length and expression[exponent] in "+-":
            exponent += 1
        if exponent < length and expression[exponent] in _DIGITS:
            is_float = True
            index = exponent
            while index < length and expression[index] in _DIGITS:
                index += 1
    end = index
    if end < length and (_is_name_char(expression[end]) or expression[end] == "."):
        while end < length and (_is_name_char(expression[end]) or expression[end] == "."):
            end += 1
        raise _error(f"invalid number {expression[start:end]!r}", expression, start)
    text = expression[start:index]
    return (float(text) if is_float else int(text)), index


def _tokenize(expression: str) -> list[_Token]:
    """Split ``expression`` into tokens, ending with an ``eof`` token."""
    tokens: list[_Token] = []
    index = 0
    length = len(expression)
    while index < length:
        char = expression[index]
        start = index
        if char.isspace():
            index += 1
        elif char in "'\"":
            value, index = _read_string(expression, index)
            tokens.append(_Token("string", expression[start:index], start, value))
        elif char == "`":
            end = expression.find("`", index + 1)
            if end < 0:
                raise _error(f"unterminated column name: the ` at position {start} is never closed",
                             expression, start)
            name = expression[index + 1:end]
            if not name:
                raise _error("empty column name between backticks", expression, start)
            index = end + 1
            tokens.append(_Token("name", expression[start:index], start, name))
        elif char in _DIGITS or (char == "." and expression[index + 1:index + 2] in _DIGITS):
            value, index = _read_number(expression, index)
            tokens.append(_Token("number", expression[start:index], start, value))
        elif _is_name_start(char):
            index += 1
            while index < length and _is_name_char(expression[index]):
                index += 1
            word = expression[start:index]
            if word == "None":
                raise _error("None is not a value in queries: missing values (NaN, NaT, None) "
                             "never match a comparison other than != and not in; write `None` "
                             "for a column named None", expression, start)
            kind = "keyword" if word in KEYWORDS else "name"
            value = {"True": True, "False": False}.get(word, word)
            tokens.append(_Token(kind, word, start, value))
        elif expression.startswith(_TWO_CHAR_OPS, index):
            index += 2
            tokens.append(_Token("op", expression[start:index], start))
        elif char in _ONE_CHAR_OPS:
            index += 1
            tokens.append(_Token("op", char, start))
        elif char == "=":
            raise _error("'=' is not an operator; use '==' to compare", expression, start)
        elif char == "!":
            raise _error("'!' is not an operator; use '!=' or 'not'", expression, start)
        else:
            raise _error(f"unexpected character {char!r}", expression, start)
    tokens.append(_Token("eof", "", length))
    return tokens


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


class _Parser:
    """Recursive-descent parser for the grammar in the module docstring."""

    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.index = 0
        self.depth = 0

    # -- token helpers --------------------------------------------------
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            self.index += 1
        return token

    def previous(self) -> _Token | None:
        return self.tokens[self.index - 1] if self.index > 0 else None

    def error(self, message: str, position: int) -> QuerySyntaxError:
        return _error(message, self.expression, position)

    @staticmethod
    def is_op(token: _Token, *texts: str) -> bool:
        return token.kind == "op" and token.text in texts

    @staticmethod
    def is_keyword(token: _Token, *words: str) -> bool:
        return token.kind == "keyword" and token.text in words

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {_MAX_DEPTH} levels)",
                             token.position)

    def missing(self, what: str) -> QuerySyntaxError:
        """Error for a missing ``what`` at the current token."""
        token = self.peek()
        previous = self.previous()
        if token.kind == "eof" and previous is not None:
            return self.error(f"dangling {previous.text!r}: expected {what} after it",
                              previous.position)
        if self.is_op(token, ")") and self.depth == 0:
            return self.error("unbalanced parenthesis: ')' has no matching '('", token.position)
        return self.error(f"expected {what}, found {token.describe()}", token.position)

    # -- grammar ----------------------------------------------------------
    def parse(self) -> Node:
        if self.peek().kind == "eof":
            raise self.error("empty query expression", 0)
        node = self.or_expr()
        token = self.peek()
        if token.kind != "eof":
            if self.is_op(token, ")"):
                raise self.error("unbalanced parenthesis: ')' has no matching '('", token.position)
            raise self.error(f"expected 'and', 'or', '&', '|' or the end of the expression, "
                             f"found {token.describe()}", token.position)
        return node

    def or_expr(self) -> Node:
        first = self.peek().position
        items = [self.and_expr()]
        while self.is_keyword(self.peek(), "or") or self.is_op(self.peek(), "|"):
            self.advance()
            items.append(self.and_expr())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for item in items:
            flat.extend(item.operands if isinstance(item, Or) else (item,))
        return Or(tuple(flat), position=first)

    def and_expr(self) -> Node:
        first = self.peek().position
        items = [self.not_expr()]
        while self.is_keyword(self.peek(), "and") or self.is_op(self.peek(), "&"):
            self.advance()
            items.append(self.not_expr())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for item in items:
            flat.extend(item.operands if isinstance(item, And) else (item,))
        return And(tuple(flat), position=first)

    def not_expr(self) -> Node:
        token = self.peek()
        if self.is_keyword(token, "not") or self.is_op(token, "~"):
            self.advance()
            self.nest(token)
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand, position=token.position)
        return self.comparison()

    def comparison(self) -> Node:
        token = self.peek()
        if self.is_op(token, "("):
            self.advance()
            self.nest(token)
            inner = self.or_expr()
            closing = self.peek()
            if closing.kind == "eof":
                raise self.error(f"unbalanced parenthesis: the '(' at position {token.position} "
                                 "is never closed", token.position)
            if not self.is_op(closing, ")"):
                raise self.error(f"expected ')' to close the '(' at position {token.position}, "
                                 f"found {closing.describe()}", closing.position)
            self.advance()
            self.depth -= 1
            return inner
        if not self.starts_operand(token):
            raise self.missing("a comparison")
        left = self.operand()
        following = self.peek()
        if self.is_op(following, *COMPARISON_OPERATORS):
            return self.chain(left)
        if self.is_keyword(following, "in") or (
                self.is_keyword(following, "not") and self.is_keyword(self.peek(1), "in")):
            return self.membership(left)
        if self.is_keyword(following, "not"):
            raise self.error("expected 'in' after 'not'", following.position)
        if isinstance(left, Column):
            raise self.error(f"column {left.name!r} is not compared with anything; write a "
                             f"comparison such as {left} == ... or {left} in [...]", left.position)
        raise self.error(f"{left.describe()} is not compared with anything; "
                         "compare it with a column", left.position)

    def starts_operand(self, token: _Token) -> bool:
        return (token.kind in ("name", "string", "number")
                or self.is_keyword(token, "True", "False")
                or self.is_op(token, "-", "+"))

    def operand(self) -> Operand:
        token = self.peek()
        if token.kind == "name":
            self.advance()
            return Column(token.value, position=token.position)
        return self.literal("a column or a value")

    def literal(self, what: str) -> Literal:
        token = self.peek()
        if token.kind in ("string", "number") or self.is_keyword(token, "True", "False"):
            self.advance()
            return Literal(token.value, position=token.position)
        if self.is_op(token, "-", "+"):
            self.advance()
            number = self.peek()
            if number.kind != "number":
                raise self.missing(f"a number after {token.text!r}")
            self.advance()
            value = -number.value if token.text == "-" else number.value
            return Literal(value, position=token.position)
        raise self.missing(what)

    def chain(self, first: Operand) -> Comparison:
        operands: list[Operand] = [first]
        operators: list[str] = []
        while self.is_op(self.peek(), *COMPARISON_OPERATORS):
            op = self.advance()
            right = self.operand()
            left = operands[-1]
            if isinstance(left, Literal) and isinstance(right, Literal):
                raise self.error(f"comparing two literals ({left} {op.text} {right}); "
                                 "one side of each comparison must be a column", left.position)
            operands.append(right)
            operators.append(op.text)
        return Comparison(tuple(operands), tuple(operators), position=first.position)

    def membership(self, column: Operand) -> Membership:
        negated = self.is_keyword(self.peek(), "not")
        if negated:
            self.advance()
        in_token = self.advance()
        if not isinstance(column, Column):
            keyword = "not in" if negated else "in"
            raise self.error(f"the left side of '{keyword}' must be a column, "
                             f"not {column.describe()}", column.position)
        opening = self.peek()
        if not self.is_op(opening, "[", "("):
            if opening.kind == "eof":
                raise self.error(f"dangling {in_token.text!r}: expected a list such as "
                                 "['A', 'B'] after it", in_token.position)
            raise self.error(f"expected a list such as ['A', 'B'] after {in_token.text!r}, "
                             f"found {opening.describe()}", opening.position)
        self.advance()
        closing = "]" if opening.text == "[" else ")"

        def unclosed() -> QuerySyntaxError:
            return self.error(f"unbalanced bracket: the {opening.text!r} at position "
                              f"{opening.position} is never closed", opening.position)

        values: list[Literal] = []
        while True:
            token = self.peek()
            if token.kind == "eof":
                raise unclosed()
            if self.is_op(token, closing):
                self.advance()
                break
            if token.kind == "name":
                raise self.error(f"list items must be values, not the column {token.value!r}",
                                 token.position)
            values.append(self.literal("a value"))
            token = self.peek()
            if self.is_op(token, ","):
                self.advance()
            elif not self.is_op(token, closing):
                if token.kind == "eof":
                    raise unclosed()
                raise self.error(f"expected ',' or {closing!r} in the list, "
                                 f"found {token.describe()}", token.position)
        return Membership(column, tuple(values), negated, position=column.position)


def parse(expression: str) -> Node:
    """Parse a query expression into an immutable syntax tree.

    Parameters
    ----------
    expression : str
        The query, e.g. ``"LEVEL == 'L2' & 600 < CRVAL1 < 700"``. See the
        module docstring for the grammar.

    Returns
    -------
    Node
        The root of the tree: a `Comparison`, `Membership`, `Not`, `And` or `Or`.

    Raises
    ------
    QuerySyntaxError
        If the expression is empty, contains an unknown character, an
        unterminated string, unbalanced parentheses, a dangling operator, a
        column or value that is not compared with anything, or a comparison of
        two literals. ``position`` is the 0-based offset of the offending token.
    TypeError
        If ``expression`` is not a str.
    """
    if not isinstance(expression, str):
        raise TypeError(f"a query expression must be a str, not {type(expression).__name__}")
    return _Parser(expression).parse()


# ---------------------------------------------------------------------------
# Type checking
# ---------------------------------------------------------------------------

_KIND_NAMES = {"numeric": "numeric", "bool": "boolean", "string": "string", "datetime": "datetime"}


def _kind(dtype: Any) -> str | None:
    """Classify a dtype as ``numeric``, ``bool``, ``string``, ``datetime`` or None (unsupported)."""
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        return _kind(categories.dtype) if categories is not None else None
    if is_bool_dtype(dtype):
        return "bool"
    if is_datetime64_any_dtype(dtype):
        return "datetime"
    if is_complex_dtype(dtype):
        return None
    if is_numeric_dtype(dtype):
        return "numeric"
    if is_object_dtype(dtype) or is_string_dtype(dtype):
        return "string"
    return None


def _timezone(dtype: Any) -> Any:
    """The time zone of a datetime dtype (None if naive)."""
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return getattr(dtype, "tz", None)


def _as_timestamp(literal: Literal, column: Column, dtype: Any,
                  expression: str | None) -> pd.Timestamp:
    """Turn a string literal into a Timestamp comparable with a datetime column."""
    text = literal.value
    assert isinstance(text, str)
    try:
        stamp = pd.Timestamp(text)
    except Exception:  # pandas raises several types for unparsable dates
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise _error(f"{text!r} is not a valid date to compare with datetime column "
                     f"{column.name!r} (write e.g. '2022-04-01' or '2022-04-01T12:30:00')",
                     expression, literal.position)
    tz = _timezone(dtype)
    if tz is not None:
        stamp = stamp.tz_localize(tz) if stamp.tzinfo is None else stamp.tz_convert(tz)
    elif stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def _coerce(literal: Literal, column: Column, dtype: Any, kind: str, expression: str | None) -> Any:
    """Check ``literal`` against a column of ``kind`` and return the value to compare with."""
    value = literal.value
    if kind == "numeric" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "datetime" and isinstance(value, str):
        return _as_timestamp(literal, column, dtype, expression)
    hint = ""
    if kind == "string" and not isinstance(value, str):
        hint = f"; quote the value, e.g. '{value}'"
    elif kind == "datetime":
        hint = "; write the date as a quoted string, e.g. '2022-04-01'"
    elif kind == "bool":
        hint = "; compare with True or False"
    elif kind == "numeric" and isinstance(value, str) and _looks_numeric(value):
        hint = f"; write the number without quotes: {value.strip()}"
    raise _error(f"cannot compare {_KIND_NAMES[kind]} column {column.name!r} (dtype {dtype}) with "
                 f"{literal.describe()}{hint}", expression, literal.position)


def _looks_numeric(text: str) -> bool:
    """Whether ``text`` spells a number (for a hint in error messages)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _close_matches(name: str, names: list[str]) -> list[str]:
    """Up to five column names close to ``name``, best first (case-insensitive)."""
    target = name.casefold()
    scored = []
    for candidate in names:
        ratio = difflib.SequenceMatcher(None, target, candidate.casefold()).ratio()
        if ratio >= 0.6:
            scored.append((-ratio, candidate))
    scored.sort()
    return [candidate for _, candidate in scored[:5]]


def unknown_column_message(name: str, names, *, where: str = "") -> str:
    """"unknown column 'X'; did you mean ...?" with up to five close matches."""
    names = [n for n in names if isinstance(n, str)]
    message = f"unknown column {name!r}{where}"
    matches = _close_matches(name, names)
    if matches:
        message += f"; did you mean {', '.join(matches)}?"
    if any(name.casefold() == other.casefold() for other in matches):
        message += " (column names are case sensitive)"
    return message


def _dtype_map(columns: Mapping[str, Any] | pd.Series | pd.DataFrame) -> dict[str, Any]:
    """Normalise the ``columns`` argument of `check` to ``{name: dtype}``."""
    if isinstance(columns, pd.DataFrame):
        columns = columns.dtypes
    if isinstance(columns, pd.Series):
        items = columns.items()
    elif isinstance(columns, Mapping):
        items = columns.items()
    else:
        raise TypeError("columns must be a mapping of column names to dtypes or a Series of dtypes")
    result: dict[str, Any] = {}
    for name, dtype in items:
        if isinstance(name, str):
            is_dtype = isinstance(dtype, (np.dtype, pd.api.extensions.ExtensionDtype))
            result[name] = dtype if is_dtype else pandas_dtype(dtype)
    return result


def _resolve(column: Column, dtypes: dict[str, Any], expression: str | None) -> tuple[Any, str]:
    """Return the dtype and kind of a known, comparable column."""
    dtype = dtypes[column.name]
    kind = _kind(dtype)
    if kind is None:
        raise _error(f"column {column.name!r} has dtype {dtype}, which queries cannot compare",
                     expression, column.position)
    return dtype, kind


def _check_node(node: Node, dtypes: dict[str, Any], expression: str | None) -> None:
    """Type-check ``node`` (all its columns are known to exist)."""
    if isinstance(node, Comparison):
        for left, right in node.pairs():
            if isinstance(left, Column) and isinstance(right, Column):
                left_dtype, left_kind = _resolve(left, dtypes, expression)
                right_dtype, right_kind = _resolve(right, dtypes, expression)
                naive_mix = (_timezone(left_dtype) is None) != (_timezone(right_dtype) is None)
                if left_kind != right_kind or (left_kind == "datetime" and naive_mix):
                    raise _error(f"cannot compare column {left.name!r} (dtype {left_dtype}) with "
                                 f"column {right.name!r} (dtype {right_dtype})", expression,
                                 right.position)
            else:
                column, literal = (left, right) if isinstance(left, Column) else (right, left)
                assert isinstance(column, Column) and isinstance(literal, Literal)
                dtype, kind = _resolve(column, dtypes, expression)
                _coerce(literal, column, dtype, kind, expression)
    elif isinstance(node, Membership):
        dtype, kind = _resolve(node.column, dtypes, expression)
        for value in node.values:
            _coerce(value, node.column, dtype, kind, expression)
    elif isinstance(node, Not):
        _check_node(node.operand, dtypes, expression)
    elif isinstance(node, (And, Or)):
        for child in node.operands:
            _check_node(child, dtypes, expression)
    else:
        raise _error(f"{node} is not a condition: compare it with something", expression,
                     node.position)


def check(node: Node, columns: Mapping[str, Any] | pd.Series, *,
          expression: str | None = None) -> None:
    """Check a parsed query against the columns of a table, before touching any data.

    Parameters
    ----------
    node : Node
        A tree from `parse`.
    columns : mapping of str to dtype, or pandas.Series of dtypes
        The table's columns and their dtypes, e.g. ``frame.dtypes``. dtype
        names such as ``"int64"`` are accepted too.
    expression : str, optional
        The text ``node`` was parsed from; when given, errors quote it and
        draw a caret under the offending token.

    Raises
    ------
    QuerySyntaxError
        For an unknown column (the message lists up to five close matches), a
        column whose dtype cannot be compared, a comparison between
        incompatible types (e.g. a numeric column with a string), or a date
        literal that does not parse.
    """
    dtypes = _dtype_map(columns)
    names = list(dtypes)
    for column in node._iter_columns():
        if column.name not in dtypes:
            raise _error(unknown_column_message(column.name, names, where=" in query"), expression,
                         column.position)
    _check_node(node, dtypes, expression)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# The operator to use when the operands are swapped: a < b  <=>  b > a.
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Evaluator:
    """Evaluate a checked tree on a DataFrame, caching the prepared columns."""

    def __init__(self, frame: pd.DataFrame, expression: str | None):
        self.frame = frame
        self.expression = expression
        self.cache: dict[str, tuple[pd.Series, np.ndarray]] = {}

    def column(self, column: Column) -> tuple[pd.Series, np.ndarray]:
        """The column's values ready for comparison, and its missing-value mask."""
        if column.name in self.cache:
            return self.cache[column.name]
        series = self.frame[column.name]
        if isinstance(series, pd.DataFrame):
            raise _error(f"column name {column.name!r} is not unique in the table", self.expression,
                         column.position)
        missing = np.array(series.isna().to_numpy(), dtype=bool)
        kind = _kind(series.dtype)
        if isinstance(series.dtype, pd.CategoricalDtype):
            target = series.dtype.categories.dtype
            series = series.astype(object if missing.any() else target)
        if kind == "string" and is_object_dtype(series.dtype):
            series = series.astype(pd.StringDtype())
        self.cache[column.name] = (series, missing)
        return series, missing

    def literal(self, literal: Literal, column: Column) -> Any:
        dtype = self.frame[column.name].dtype
        return _coerce(literal, column, dtype, _kind(dtype) or "", self.expression)

    def run(self, node: Node) -> np.ndarray:
        if isinstance(node, Comparison):
            result = np.ones(len(self.frame), dtype=bool)
            for (left, right), op in zip(node.pairs(), node.operators):
                result &= self.compare(left, op, right)
            return result
        if isinstance(node, Membership):
            series, missing = self.column(node.column)
            values = [self.literal(value, node.column) for value in node.values]
            found = _to_bool(series.isin(values)) if values else np.zeros(len(series), dtype=bool)
            found[missing] = False
            return ~found if node.negated else found
        if isinstance(node, Not):
            return ~self.run(node.operand)
        if isinstance(node, And):
            result = self.run(node.operands[0])
            for child in node.operands[1:]:
                result &= self.run(child)
            return result
        if isinstance(node, Or):
            result = self.run(node.operands[0])
            for child in node.operands[1:]:
                result |= self.run(child)
            return result
        raise _error(f"{node} is not a condition", self.expression, node.position)

    def compare(self, left: Operand, op: str, right: Operand) -> np.ndarray:
        if not isinstance(left, Column):
            left, right, op = right, left, _MIRRORED[op]
        assert isinstance(left, Column)
        series, missing = self.column(left)
        if isinstance(right, Column):
            other, other_missing = self.column(right)
            missing = missing | other_missing
            raw = _OPERATORS[op](series.reset_index(drop=True), other.reset_index(drop=True))
        else:
            raw = _OPERATORS[op](series, self.literal(right, left))
        result = _to_bool(raw)
        result[missing] = op == "!="
        return result


def _to_bool(values: Any) -> np.ndarray:
    """A writable numpy bool array from a boolean Series or array (NA -> False)."""
    if isinstance(values, (pd.Series, pd.api.extensions.ExtensionArray)):
        values = values.to_numpy(dtype=bool, na_value=False)
    return np.array(values, dtype=bool, copy=True)


def evaluate(node: Node, frame: pd.DataFrame, *, expression: str | None = None) -> np.ndarray:
    """Evaluate a parsed query on a DataFrame, without any ``eval``.

    The tree is first checked with `check` against ``frame.dtypes``, so every
    problem is a `QuerySyntaxError`; then each comparison is computed with one
    vectorised pandas operation per column.

    Parameters
    ----------
    node : Node
        A tree from `parse`.
    frame : pandas.DataFrame
        The table to filter.
    expression : str, optional
        The text ``node`` was parsed from, for error messages.

    Returns
    -------
    numpy.ndarray
        A bool array with one element per row of ``frame``; True where the
        row matches.

    Raises
    ------
    QuerySyntaxError
        If the query does not fit the frame's columns (see `check`).
    """
    check(node, frame.dtypes, expression=expression)
    result = _Evaluator(frame, expression).run(node)
    return np.asarray(result, dtype=bool)


def filter_frame(frame: pd.DataFrame, expression: str) -> pd.DataFrame:
    """Return the rows of ``frame`` that match a query expression.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table to filter, e.g. the SPICE catalog.
    expression : str
        The query, e.g. ``"LEVEL == 'L2' & STUDY in ['SCI_DYN']"``.

    Returns
    -------
    pandas.DataFrame
        The matching rows, in their original order and with their original index.

    Raises
    ------
    QuerySyntaxError
        If the expression is malformed or does not fit the frame's columns.
    """
    node = parse(expression)
    return frame.loc[evaluate(node, frame, expression=expression)]
