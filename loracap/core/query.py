"""The image filter's query language.

Type words to find images whose caption or file name contains them; add fields to narrow the
search.

Terms
  ``lamp``                 the caption or the file name contains "lamp" (any case, anywhere,
                           also inside words)
  ``"two words"``          the caption contains the exact phrase (any case)
  ``tag:lamp``             the caption has the tag "lamp" (exact, case-sensitive tag match)
  ``tag:"wooden tables"``  a tag with spaces goes in quotes
  ``state:edited``         the image's state: generated, edited, manual, imported, failed,
                           uncaptioned, invalid or missing
  ``state:edited|manual``  ``|`` means any of them (also for review:)
  ``review:approved``      the review mark: approved, rejected or unreviewed
  ``name:IMG_*``           the file name matches the pattern (any case; ``*`` is any run of
                           characters, ``?`` one character, ``[abc]`` one of them)
  ``words>40``             the full caption has more than 40 words; also ``words<10``,
                           ``words>=40``, ``words<=10``, ``words=0``
  ``qa:confirmed``         the image's question-answer pairs: ``confirmed`` (it has pairs and
                           every one is confirmed), ``unconfirmed`` (at least one is not) or
                           ``none`` (no pair); ``qa:none|unconfirmed`` for either
  ``qa_score>=4``          the image's best-scored pair has a score of 4 or more (images with
                           no scored pair never match); also ``>``, ``<``, ``<=``, ``=``
  ``qa_tag:"hard case"``   a pair of the image has this tag (exact, case-sensitive)

Combining
  ``a b``                  both (the same as ``a AND b``)
  ``a OR b``               either
  ``NOT a``, ``-a``        not; ``-tag:lamp`` excludes images with the tag "lamp"
  ``( ... )``              grouping: ``(state:edited OR state:manual) -tag:draft``

``NOT`` binds tightest, then ``AND``, then ``OR``; ``AND``, ``OR`` and ``NOT`` may be written in
any case. To search for the words "and", "or" or "not", or for text with a colon in it, put them
in quotes: ``"or"``, ``"3:4"``; inside quotes write a quote twice: ``tag:"12"" vinyl"``.
An empty query shows every image. A mistake is reported with its position, counted from 0:
``Expected ")" at position 14``. Parentheses and ``NOT``/``-`` nest at most
:data:`MAX_NESTING` (50) levels deep; a deeper query is a mistake at the first ``(`` or ``NOT``
past the limit.

Clicking a tag in the Tags panel writes ``tag:...`` here; Ctrl-click writes ``-tag:...``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from loracap.core.errors import InputError
from loracap.core.tags import DEFAULT_SEPARATOR, split_tags

#: Every image state a ``state:`` term accepts (the values of the UI's ``image_state``).
STATES: tuple[str, ...] = (
    "generated", "edited", "manual", "imported", "failed", "uncaptioned", "invalid", "missing",
)

#: Every review mark a ``review:`` term accepts.
REVIEWS: tuple[str, ...] = ("approved", "rejected", "unreviewed")

#: What a ``qa:`` term accepts: the review state of an image's question-answer pairs.
QA_STATES: tuple[str, ...] = ("confirmed", "unconfirmed", "none")

#: The fields of the language, in the order error messages list them.
FIELDS: tuple[str, ...] = ("tag", "state", "review", "name", "words", "qa", "qa_score",
                           "qa_tag")

#: The fields compared with a number (``words>40``, ``qa_score>=4``).
_NUMBER_FIELDS = ("words", "qa_score")

#: How many levels of ``(`` and ``NOT``/``-`` may nest inside each other. The parser and the
#: evaluation recurse once per level; Python's recursion limit (1,000) would otherwise end a
#: query of about 400 ``(`` with a RecursionError instead of a message with a position.
MAX_NESTING = 50

_KEYWORDS = frozenset({"and", "or", "not"})
_FIELD_RE = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)
_COMPARE_RE = re.compile(r"([A-Za-z_]+)(>=|<=|>|<|=)(.*)", re.DOTALL)
_STOP = frozenset('()"')


class QuerySyntaxError(InputError):
    """A query cannot be parsed; ``position`` is the 0-based offset of the problem in the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class QueryItem:
    """What a query is evaluated against: one image.

    ``caption`` is the full caption text (prefix included; ``""`` without a caption), ``state``
    one of :data:`STATES`, ``review`` one of :data:`REVIEWS`. ``body``, when given, is the
    caption without the trigger prefix and is what ``tag:`` terms split into tags; otherwise
    ``caption`` is split. The ``qa_*`` fields serve the ``qa:``, ``qa_score`` and ``qa_tag:``
    terms.
    """

    file_name: str
    caption: str
    state: str
    review: str
    body: str | None = None
    #: The image's question-answer pairs: how many, how many are confirmed, the best score
    #: (None: none scored) and the tags of all of them.
    qa_total: int = 0
    qa_confirmed: int = 0
    qa_best_score: int | None = None
    qa_tags: frozenset[str] = frozenset()


class _Context:
    """Per-item values computed at most once while one query is evaluated."""

    def __init__(self, item: QueryItem, separator: str) -> None:
        self.item = item
        self._separator = separator
        self._folded: str | None = None
        self._tags: frozenset[str] | None = None
        self._words: int | None = None

    @property
    def folded(self) -> str:
        if self._folded is None:
            # The file name too, on its own line, so a phrase never spans both.
            self._folded = f"{self.item.caption}\n{self.item.file_name}".casefold()
        return self._folded

    @property
    def tags(self) -> frozenset[str]:
        if self._tags is None:
            text = self.item.caption if self.item.body is None else self.item.body
            self._tags = frozenset(split_tags(text, self._separator))
        return self._tags

    @property
    def words(self) -> int:
        if self._words is None:
            self._words = len(self.item.caption.split())
        return self._words


class _Node:
    def test(self, ctx: _Context) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class _All(_Node):
    def test(self, ctx: _Context) -> bool:
        return True


@dataclass(frozen=True)
class _Text(_Node):
    text: str

    def test(self, ctx: _Context) -> bool:
        return self.text.casefold() in ctx.folded


@dataclass(frozen=True)
class _Tag(_Node):
    tag: str

    def test(self, ctx: _Context) -> bool:
        return self.tag in ctx.tags


@dataclass(frozen=True)
class _State(_Node):
    states: frozenset[str]

    def test(self, ctx: _Context) -> bool:
        return ctx.item.state in self.states


@dataclass(frozen=True)
class _Review(_Node):
    reviews: frozenset[str]

    def test(self, ctx: _Context) -> bool:
        return ctx.item.review in self.reviews


@dataclass(frozen=True)
class _Name(_Node):
    pattern: str

    def test(self, ctx: _Context) -> bool:
        return fnmatch.fnmatchcase(ctx.item.file_name.casefold(), self.pattern.casefold())


_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
}


@dataclass(frozen=True)
class _Words(_Node):
    op: str
    number: int

    def test(self, ctx: _Context) -> bool:
        return _COMPARISONS[self.op](ctx.words, self.number)


@dataclass(frozen=True)
class _QAState(_Node):
    states: frozenset[str]

    def test(self, ctx: _Context) -> bool:
        item = ctx.item
        if not item.qa_total:
            state = "none"
        elif item.qa_confirmed >= item.qa_total:
            state = "confirmed"
        else:
            state = "unconfirmed"
        return state in self.states


@dataclass(frozen=True)
class _QAScore(_Node):
    op: str
    number: int

    def test(self, ctx: _Context) -> bool:
        best = ctx.item.qa_best_score
        return best is not None and _COMPARISONS[self.op](best, self.number)


@dataclass(frozen=True)
class _QATag(_Node):
    tag: str

    def test(self, ctx: _Context) -> bool:
        return self.tag in ctx.item.qa_tags


@dataclass(frozen=True)
class _Not(_Node):
    child: _Node

    def test(self, ctx: _Context) -> bool:
        return not self.child.test(ctx)


@dataclass(frozen=True)
class _And(_Node):
    children: tuple[_Node, ...]

    def test(self, ctx: _Context) -> bool:
        return all(child.test(ctx) for child in self.children)


@dataclass(frozen=True)
class _Or(_Node):
    children: tuple[_Node, ...]

    def test(self, ctx: _Context) -> bool:
        return any(child.test(ctx) for child in self.children)


@dataclass(frozen=True)
class Query:
    """A parsed query; :meth:`matches` tells whether an image passes the filter."""

    text: str
    separator: str = DEFAULT_SEPARATOR
    _root: _Node = field(default_factory=_All, repr=False)

    @property
    def matches_everything(self) -> bool:
        """True for the empty query (no filtering)."""
        return isinstance(self._root, _All)

    def matches(self, item: QueryItem) -> bool:
        """True when ``item`` passes the filter."""
        return self._root.test(_Context(item, self.separator))


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "and", "or", "not", "-", "term", "end"
    pos: int
    text: str = ""
    node: _Node | None = None


def _error(message: str, position: int, suffix: str = "") -> QuerySyntaxError:
    return QuerySyntaxError(f"{message} at position {position}{suffix}", position)


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The phrase of the quote opening at ``start`` and the offset just after its closing quote.

    Inside quotes, a doubled quote ``""`` stands for one ``"`` (as in CSV).
    """
    parts: list[str] = []
    pos = start + 1
    while True:
        close = text.find('"', pos)
        if close < 0:
            raise _error("Unclosed quote", start, ": add the closing \"")
        parts.append(text[pos:close])
        if text.startswith('""', close):
            parts.append('"')
            pos = close + 2
            continue
        return "".join(parts), close + 1


def tag_term(tag: str, *, exclude: bool = False) -> str:
    """The query term that finds images with (or, with ``exclude``, without) ``tag``.

    ``tag_term("wooden tables")`` is ``'tag:"wooden tables"'``; a quote inside a tag is doubled.
    """
    sign = "-" if exclude else ""
    if tag and all(ch.isalnum() or ch in "_-." for ch in tag):
        return f"{sign}tag:{tag}"
    escaped = tag.replace('"', '""')
    return f'{sign}tag:"{escaped}"'


def _values(value: str, start: int, known: tuple[str, ...], noun: str) -> frozenset[str]:
    """The ``|``-separated values of a ``state:``/``review:`` term, each checked."""
    found: set[str] = set()
    offset = start
    for part in value.split("|"):
        name = part.strip().lower()
        at = offset + len(part) - len(part.lstrip())
        if not name:
            raise _error(f'Expected a {noun} after "|" or ":"', at, f" (known: {', '.join(known)})")
        if name not in known:
            raise _error(f'Unknown {noun} "{part.strip()}"', at, f" (known: {', '.join(known)})")
        found.add(name)
        offset += len(part) + 1
    return frozenset(found)


def _field_term(name: str, value: str, name_pos: int, value_pos: int) -> _Node:
    key = name.lower()
    if key not in FIELDS:
        raise _error(f'Unknown field "{name}"', name_pos, f" (known: {', '.join(FIELDS)})")
    if key in _NUMBER_FIELDS:
        raise _error(f'Expected a comparison (>, <, >=, <=, =) after "{name}"',
                     name_pos + len(name), f", e.g. {key}>{'40' if key == 'words' else '3'}")
    if not value.strip():
        raise _error(f'Expected a value after "{name}:"', value_pos)
    if key == "tag":
        return _Tag(value.strip())
    if key == "state":
        return _State(_values(value, value_pos, STATES, "state"))
    if key == "review":
        return _Review(_values(value, value_pos, REVIEWS, "review"))
    if key == "qa":
        return _QAState(_values(value, value_pos, QA_STATES, "qa state"))
    if key == "qa_tag":
        return _QATag(value.strip())
    return _Name(value.strip())


def _compare_term(name: str, op: str, value: str, name_pos: int, value_pos: int) -> _Node:
    if name.lower() not in _NUMBER_FIELDS:
        raise _error(f'Field "{name}" takes ":" followed by a value, not "{op}"',
                     name_pos + len(name))
    if not value.isascii() or not value.isdigit():
        raise _error(f'Expected a whole number after "{name}{op}"', value_pos)
    if name.lower() == "qa_score":
        return _QAScore(op, int(value))
    return _Words(op, int(value))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, i))
            i += 1
        elif char == '"':
            phrase, i_next = _read_quoted(text, i)
            tokens.append(_Token("term", i, text[i:i_next], _Text(phrase)))
            i = i_next
        elif char == "-" and i + 1 < n and not text[i + 1].isspace():
            tokens.append(_Token("-", i, "-"))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _STOP:
                i += 1
            word = text[start:i]
            if word.lower() in _KEYWORDS:
                tokens.append(_Token(word.lower(), start, word))
                continue
            field_match = _FIELD_RE.fullmatch(word)
            compare_match = _COMPARE_RE.fullmatch(word)
            if field_match:
                name, value = field_match.group(1), field_match.group(2)
                value_pos = start + field_match.start(2)
                if not value and i < n and text[i] == '"':
                    value_pos = i + 1
                    value, i = _read_quoted(text, i)
                node = _field_term(name, value, start, value_pos)
            elif compare_match and compare_match.group(1).lower() in FIELDS:
                node = _compare_term(compare_match.group(1), compare_match.group(2),
                                     compare_match.group(3), start,
                                     start + compare_match.start(3))
            else:
                node = _Text(word)
            tokens.append(_Token("term", start, text[start:i], node))
    tokens.append(_Token("end", n))
    return tokens


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the query"
    return f'"{token.text or token.kind}"'


class _Parser:
    """Recursive descent: ``or := and (OR and)*``, ``and := not ((AND)? not)*``,
    ``not := (NOT | -) not | term | "(" or ")"``."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0  # "(" and NOT levels open around the current token

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> _Node:
        node = self.parse_or(None)
        if self.current.kind != "end":
            raise _error(f"Unexpected {_describe(self.current)}", self.current.pos)
        return node

    def parse_or(self, after: _Token | None) -> _Node:
        children = [self.parse_and(after)]
        while self.current.kind == "or":
            children.append(self.parse_and(self.advance()))
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def parse_and(self, after: _Token | None) -> _Node:
        children = [self.parse_not(after)]
        while True:
            if self.current.kind == "and":
                children.append(self.parse_not(self.advance()))
            elif self.current.kind in ("term", "(", "not", "-"):
                children.append(self.parse_not(None))
            else:
                break
        return children[0] if len(children) == 1 else _And(tuple(children))

    def enter(self, token: _Token) -> None:
        """Open one nesting level at ``token`` (a ``(`` or a ``NOT``/``-``)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _error('Too many levels of "(" and NOT', token.pos,
                         f" (at most {MAX_NESTING} inside each other)")

    def parse_not(self, after: _Token | None) -> _Node:
        token = self.current
        if token.kind in ("not", "-"):
            self.advance()
            self.enter(token)
            child = self.parse_not(token)
            self.depth -= 1
            return _Not(child)
        if token.kind == "term":
            self.advance()
            assert token.node is not None
            return token.node
        if token.kind == "(":
            self.advance()
            self.enter(token)
            node = self.parse_or(token)
            if self.current.kind != ")":
                raise _error('Expected ")"', self.current.pos,
                             f' to close the "(" at position {token.pos}')
            self.advance()
            self.depth -= 1
            return node
        where = f' after "{after.text or after.kind}"' if after is not None else ""
        found = "" if token.kind == "end" else f", found {_describe(token)}"
        raise _error(f"Expected a search term{where}", token.pos, found)


def parse_query(text: str, separator: str = DEFAULT_SEPARATOR) -> Query:
    """Parse ``text`` in the query language described in this module's docstring.

    ``separator`` is the tag separator ``tag:`` terms split captions with. A blank ``text`` gives
    a query that matches everything. Raises :class:`QuerySyntaxError` (an :class:`InputError`)
    with the 0-based ``position`` of the first problem.
    """
    tokens = _tokenize(text)
    if tokens[0].kind == "end":
        return Query(text, separator)
    return Query(text, separator, _Parser(tokens).parse())


__all__ = [
    "FIELDS", "MAX_NESTING", "REVIEWS", "STATES", "Query", "QueryItem", "QuerySyntaxError",
    "parse_query", "tag_term",
]
