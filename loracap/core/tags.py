r"""Tags inside plain-text captions: splitting, span-preserving edits, frequencies, find/replace.

A caption *body* (the caption without the trigger prefix) is read as a list of tags separated by
the separator's non-space part: for the default ``", "`` that is ``","``. Each tag is the text
between two separators with the whitespace around it stripped; empty pieces are not tags. Nothing
else is interpreted: case is kept, duplicates are kept, and weight syntax such as ``(red:1.2)``
is an ordinary tag.

The editing functions (:func:`add_tag`, :func:`remove_tag`, :func:`rename_tag`,
:func:`prepend_text`, :func:`append_text`) locate tags by their character spans in the original
string and change only those spans and the separators next to them, so every other character of
the caption keeps its exact bytes. A caption written as a sentence stays a sentence when tags it
does not contain are removed or renamed.

All functions are pure and Qt-free; :func:`apply_batch` and :func:`find_replace_preview` compute
the changes over many images without writing anything.

Find and replace runs on the ``regex`` package (mrab-regex), not on :mod:`re`, for its
``timeout=``: a backtracking expression such as ``(a|aa)+$`` can take hours on a 60-character
caption, and :mod:`re` can neither be stopped nor, since it holds the GIL while it matches, be
moved to a worker thread without freezing the window anyway. ``regex``'s timeout covers the
whole matching call (the search, every match and the replacement), so one time budget
(:data:`FIND_TIME_BUDGET_S`) bounds a whole preview, and an expression that runs out of it
raises :class:`ExpressionTooSlowError` and changes nothing. ``regex`` is also fast by itself on
many patterns that are catastrophic for :mod:`re` (``(\w+\s?)+\.$``). It was preferred over
``google-re2`` (linear time) because RE2 has no lookarounds or backreferences, reports no error
positions and logs parse errors to stderr; and over running :mod:`re` in a worker process
because a process per keystroke costs more than the whole preview. The expression is first
checked by :mod:`re` itself, so the language, the error messages and their positions are those
of Python's ``re``; and an expression whose fixed repeats multiply up (``(a{1000}){1000}``) is
refused before ``regex`` compiles it, because compiling costs time proportional to that size
and the timeout does not cover compiling.
"""

from __future__ import annotations

import csv
import importlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a find/replace first runs: it adds ~14 ms to the start-up
    import regex as regex_engine

from loracap.core.errors import InputError
from loracap.core.records import ImageRecord

#: The separator written between tags (kohya sd-scripts and most trainers use comma + space).
DEFAULT_SEPARATOR = ", "

#: A caption whose last character is one of these ends a sentence: appended text is joined with
#: a single space instead of the separator.
_SENTENCE_END = ".!?"

#: First-column names of a header row in a tags file (e.g. ``tag,category,count`` or ``name,...``).
_HEADER_NAMES = frozenset({"tag", "name"})


def _core(separator: str) -> str:
    """The separator's non-space part (``","`` for ``", "``); a blank separator is used as is."""
    if not separator:
        raise InputError("The tag separator is empty; use a character such as a comma.")
    return separator.strip() or separator


@dataclass(frozen=True)
class _Piece:
    """One piece of a body between separators.

    ``start``/``end`` bound the stripped tag text (equal when the piece is blank);
    ``sep_start``/``sep_end`` bound the separator that precedes the piece (both -1 for the first).
    """

    start: int
    end: int
    sep_start: int
    sep_end: int

    @property
    def empty(self) -> bool:
        return self.start == self.end


def _pieces(body: str, separator: str) -> list[_Piece]:
    """Every piece of ``body`` between separators, blank ones included, in order."""
    core = _core(separator)
    pieces: list[_Piece] = []
    pos = 0
    sep_start = sep_end = -1
    while True:
        found = body.find(core, pos)
        raw_end = len(body) if found < 0 else found
        start, end = pos, raw_end
        while start < end and body[start].isspace():
            start += 1
        while end > start and body[end - 1].isspace():
            end -= 1
        pieces.append(_Piece(start, end, sep_start, sep_end))
        if found < 0:
            return pieces
        sep_start, sep_end = found, found + len(core)
        pos = sep_end


def tag_spans(body: str, separator: str = DEFAULT_SEPARATOR) -> list[tuple[int, int]]:
    """The ``(start, end)`` character spans of the tags of ``body``, in order.

    ``body[start:end]`` is the tag with its surrounding whitespace stripped; blank pieces between
    two separators have no span.
    """
    return [(p.start, p.end) for p in _pieces(body, separator) if not p.empty]


def split_tags(body: str, separator: str = DEFAULT_SEPARATOR) -> list[str]:
    """The tags of ``body``: split on the separator's non-space part, stripped, blanks dropped.

    ``split_tags("a, (red:1.2) ,, B")`` is ``["a", "(red:1.2)", "B"]``. No case folding, no
    de-duplication, no weight parsing. Raises :class:`InputError` for an empty separator.
    """
    return [body[start:end] for start, end in tag_spans(body, separator)]


def join_tags(tags: Sequence[str], separator: str = DEFAULT_SEPARATOR) -> str:
    """``tags`` joined with ``separator``: the inverse of :func:`split_tags` for stripped tags."""
    return separator.join(tags)


def has_tag(body: str, tag: str, separator: str = DEFAULT_SEPARATOR) -> bool:
    """True when ``body`` contains ``tag`` (exact, case-sensitive match after stripping)."""
    return tag.strip() in split_tags(body, separator)


def _content_bounds(text: str) -> tuple[int, int]:
    """Start and end of ``text`` without its leading and trailing whitespace."""
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    return start, max(start, end)


def _after_core(separator: str, core: str) -> str:
    """The spacing that follows the separator's non-space part (``" "`` for ``", "``)."""
    return separator[separator.find(core) + len(core):]


def _append(body: str, text: str, separator: str, *, sentences: bool) -> str:
    text = text.strip()
    if not text:
        return body
    start, end = _content_bounds(body)
    if start == end:
        return text
    core = _core(separator)
    before = body[:end]
    if before.endswith(core):
        joiner = _after_core(separator, core)
    elif sentences and before[-1] in _SENTENCE_END:
        joiner = " "
    else:
        joiner = separator
    return before + joiner + text + body[end:]


def _prepend(body: str, text: str, separator: str, *, sentences: bool) -> str:
    text = text.strip()
    if not text:
        return body
    start, end = _content_bounds(body)
    if start == end:
        return text
    core = _core(separator)
    if text.endswith(core):
        joiner = _after_core(separator, core)
    elif sentences and text[-1] in _SENTENCE_END:
        joiner = " "
    else:
        joiner = separator
    return body[:start] + text + joiner + body[start:]


def append_text(body: str, text: str, separator: str = DEFAULT_SEPARATOR) -> str:
    """``body`` with ``text`` (stripped) added at its end; whitespace around the body is kept.

    The joiner between them is, in order: nothing but the separator's trailing spacing when the
    body already ends with the separator's non-space part (``"a, b,"`` + ``"c"`` ->
    ``"a, b, c"``); a single space when the body ends a sentence with ``.``, ``!`` or ``?``
    (``"A room."`` + ``"Warm light."`` -> ``"A room. Warm light."``); else the separator
    (``"a, b"`` + ``"c"`` -> ``"a, b, c"``). An empty body becomes ``text``; an empty ``text``
    leaves the body unchanged.
    """
    return _append(body, text, separator, sentences=True)


def prepend_text(body: str, text: str, separator: str = DEFAULT_SEPARATOR) -> str:
    """``body`` with ``text`` (stripped) added at its start, the mirror of :func:`append_text`.

    ``"c"`` + ``"a, b"`` -> ``"c, a, b"``; a text ending a sentence (``"A room."``) or ending with
    the separator's non-space part is joined with a single space / the separator's spacing.
    """
    return _prepend(body, text, separator, sentences=True)


def add_tag(
    body: str, tag: str, *, at_start: bool = False, separator: str = DEFAULT_SEPARATOR
) -> str:
    """``body`` with ``tag`` added at its end (or start), unless it already has the tag.

    The tag is stripped; a blank tag or one already present (:func:`has_tag`) leaves the body
    unchanged; an empty body becomes just the tag. The tag is always joined with the separator
    (never with a sentence space) so that :func:`has_tag` finds it afterwards.
    """
    tag = tag.strip()
    if not tag or has_tag(body, tag, separator):
        return body
    if at_start:
        return _prepend(body, tag, separator, sentences=False)
    return _append(body, tag, separator, sentences=False)


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _splice(body: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """``body`` with each non-overlapping ``(start, end, replacement)`` applied."""
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits):
        out.append(body[pos:start])
        out.append(replacement)
        pos = end
    out.append(body[pos:])
    return "".join(out)


def remove_tag(body: str, tag: str, separator: str = DEFAULT_SEPARATOR) -> str:
    """``body`` without any occurrence of ``tag`` (exact match after stripping).

    Each occurrence is removed with the separator before it (and the whitespace before that
    separator), or, for the first piece, with the separator after it and the whitespace after
    that. The text between the remaining tags keeps its original spacing:
    ``"a , b , c"`` minus ``"b"`` is ``"a , c"``. A body without the tag is returned unchanged.
    """
    tag = tag.strip()
    pieces = _pieces(body, separator)
    cuts: list[tuple[int, int]] = []
    for index, piece in enumerate(pieces):
        if piece.empty or body[piece.start:piece.end] != tag:
            continue
        if piece.sep_start >= 0:
            start = piece.sep_start
            while start > 0 and body[start - 1].isspace():
                start -= 1
            cuts.append((start, piece.end))
        elif index + 1 < len(pieces):
            end = pieces[index + 1].sep_end
            while end < len(body) and body[end].isspace():
                end += 1
            cuts.append((piece.start, end))
        else:
            cuts.append((piece.start, piece.end))
    if not cuts:
        return body
    return _splice(body, ((start, end, "") for start, end in _merge(cuts)))


def rename_tag(body: str, old: str, new: str, separator: str = DEFAULT_SEPARATOR) -> str:
    """``body`` with every occurrence of the tag ``old`` replaced by ``new`` (both stripped).

    Only the spans of ``old`` change. When ``body`` already has ``new``, the occurrences of
    ``old`` are removed instead (the tags merge rather than duplicate); a blank ``new`` removes
    ``old``. A body without ``old`` is returned unchanged.
    """
    old, new = old.strip(), new.strip()
    if old == new:
        return body
    if not new or has_tag(body, new, separator):
        return remove_tag(body, old, separator)
    edits = [(start, end, new) for start, end in tag_spans(body, separator)
             if body[start:end] == old]
    return _splice(body, edits) if edits else body


class TagCounter:
    """Incremental tag frequencies over a set of caption bodies.

    A tag's count is the number of added captions that contain it (a tag twice in one caption
    counts once). :meth:`replace_caption` costs O(tags of the two captions), never a recount.
    """

    def __init__(self, separator: str = DEFAULT_SEPARATOR) -> None:
        _core(separator)
        self.separator = separator
        self._counts: Counter[str] = Counter()

    def _tags(self, body: str) -> set[str]:
        return set(split_tags(body, self.separator))

    def add_caption(self, body: str) -> dict[str, int]:
        """Count the tags of one more caption.

        Returns the changed tags with their new counts (what a view needs to update).
        """
        tags = self._tags(body)
        self._counts.update(tags)
        return {tag: self._counts[tag] for tag in tags}

    def remove_caption(self, body: str) -> dict[str, int]:
        """Stop counting the tags of a caption added before; returns the changed tags' new
        counts (0 for a tag no caption has any more).

        Raises :class:`ValueError` (and changes nothing) when a tag of ``body`` has no count,
        i.e. the caption was never added.
        """
        return self._decrement(self._tags(body))

    def replace_caption(self, old_body: str, new_body: str) -> dict[str, int]:
        """Count ``new_body`` instead of ``old_body`` (one caption edited).

        Returns the changed tags with their new counts (0 = gone); tags in both captions are
        unchanged and not listed. Raises :class:`ValueError` (and changes nothing) as
        :meth:`remove_caption` does.
        """
        old, new = self._tags(old_body), self._tags(new_body)
        changed = self._decrement(old - new)
        self._counts.update(new - old)
        changed.update({tag: self._counts[tag] for tag in new - old})
        return changed

    def _decrement(self, tags: set[str]) -> dict[str, int]:
        missing = sorted(tag for tag in tags if self._counts.get(tag, 0) <= 0)
        if missing:
            raise ValueError(f"Tags not counted, caption never added: {missing!r}")
        changed: dict[str, int] = {}
        for tag in tags:
            self._counts[tag] -= 1
            changed[tag] = self._counts[tag]
            if self._counts[tag] == 0:
                del self._counts[tag]
        return changed

    def counts(self) -> dict[str, int]:
        """A copy of the counts: tag -> number of captions with it (only counts above zero)."""
        return {tag: count for tag, count in self._counts.items() if count > 0}

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        """``(tag, count)`` pairs by count, highest first, then by tag; the first ``n`` if given."""
        ranked = sorted(self.counts().items(), key=lambda item: (-item[1], item[0]))
        return ranked if n is None else ranked[:n]

    def vocabulary(self) -> list[str]:
        """Every counted tag, by frequency (as :meth:`most_common`)."""
        return [tag for tag, _count in self.most_common()]

    def export_tags_txt(self) -> str:
        """The vocabulary as a tags file: one tag per line by frequency, LF line ends.

        Each tag is written as an export writes it (:func:`tags_txt_line`), so a tag holding a
        line break stays on one line; tags that become the same line are written once. Ends
        with a trailing LF; an empty counter gives ``""``. :func:`parse_tags_txt` reads the
        lines back.
        """
        lines = dict.fromkeys(tags_txt_line(tag) for tag in self.vocabulary())
        return "".join(f"{line}\n" for line in lines)


def tags_txt_line(tag: str) -> str:
    """``tag`` as one line of a tags file (no line end).

    Runs of whitespace, line breaks included (anything ``str.split`` splits on), become one
    space, as in an exported caption (exports write each caption on one line: kohya sd-scripts
    reads only the first). A tag that then holds a comma is quoted as a CSV field (``"a, b"``),
    because :func:`parse_tags_txt` and tag-list readers such as a1111-sd-webui-tagcomplete read
    a line with a comma as CSV.
    """
    line = " ".join(tag.split())
    if "," in line:
        line = '"' + line.replace('"', '""') + '"'
    return line


def counted_body(record: ImageRecord) -> str:
    """The caption body whose tags a project's tag counts include: ``""`` for an invalid or
    uncaptioned image."""
    return record.caption.body if record.valid and record.caption is not None else ""


def count_tags(records: Iterable[ImageRecord], separator: str = DEFAULT_SEPARATOR) -> TagCounter:
    """The tag frequencies of a project's images (see :func:`counted_body`)."""
    counter = TagCounter(separator)
    for record in records:
        counter.add_caption(counted_body(record))
    return counter


def parse_tags_txt(text: str) -> list[str]:
    """The tags of a tags file, in file order, each once.

    Accepts one tag per line, or a CSV whose first column is the tag (e.g. a Danbooru tag list as
    used by a1111-sd-webui-tagcomplete: ``tag,category,count,"aliases"``). Blank lines are
    skipped, as is a first row whose first column is ``tag`` or ``name`` (a header). Tags are
    stripped and otherwise kept as written (Danbooru underscores are not turned into spaces).
    A leading byte-order mark is ignored.
    """
    tags: list[str] = []
    seen: set[str] = set()
    first = True
    for line in text.lstrip("\ufeff").splitlines():
        if not line.strip():
            continue
        if "," in line:
            row = next(csv.reader([line]), [""])
            tag = (row[0] if row else "").strip()
        else:
            tag = line.strip()
        if first:
            first = False
            if tag.lower() in _HEADER_NAMES:
                continue
        if tag and tag not in seen:
            seen.add(tag)
            tags.append(tag)
    return tags


@dataclass(frozen=True)
class Change:
    """One image whose caption body a batch operation changes.

    ``count`` is the number of replacements in that body (1 for a tag or text operation).
    """

    image_id: int
    before: str
    after: str
    count: int


#: Time one find/replace may spend matching over all the captions it looks at, in seconds. Past
#: it the preview stops with :class:`ExpressionTooSlowError`: a plain find/replace over 5,000
#: captions takes about 0.02 s, a backtracking expression can take hours.
FIND_TIME_BUDGET_S = 1.0

#: Largest size of an expression with its fixed repeats multiplied out (``a{1000}`` counts
#: 1,000, ``(a{1000}){1000}`` 1,000,000). ``regex`` compiles in time proportional to it (about
#: 0.3 s per million), outside the timeout, so larger expressions are refused before compiling.
MAX_EXPRESSION_SIZE = 100_000

#: Largest total length of the changed captions of one find/replace, in characters: a short
#: find with a long replacement (``a*`` -> 30,000 characters) would otherwise fill the memory
#: within the time budget.
MAX_RESULT_CHARS = 50_000_000

#: What the user reads when an expression runs out of :data:`FIND_TIME_BUDGET_S`.
TOO_SLOW_MESSAGE = (
    "This expression is too slow on these captions; simplify it (a repeated group that can "
    "match the same text in several ways, such as (a|aa)+, is the usual cause)."
)

#: The parser behind :func:`re.compile` (``re._parser``; ``sre_parse`` before Python 3.11),
#: used only to measure an expression's size. Imported by name: it has no type stubs.
_sre_parser: Any = importlib.import_module("re._parser")
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


class ExpressionTooSlowError(InputError):
    """A find/replace expression ran out of :data:`FIND_TIME_BUDGET_S` on the captions it looks
    at (catastrophic backtracking) or would take too long to compile. Nothing was changed."""


def _subpatterns(value: object) -> Iterator[Any]:
    """The parsed subpatterns inside one node's argument (tuples and lists searched)."""
    if isinstance(value, _sre_parser.SubPattern):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _subpatterns(item)


def _expression_size(parsed: Any) -> int:
    """The size of a parsed expression with its fixed repeats multiplied out: a node counts 1,
    a repeat ``{m,n}`` counts ``max(m, 1)`` times its body (a body repeated 0 or more times is
    compiled once)."""
    total = 0
    for op, arg in parsed:
        if str(op) in _REPEATS:
            low, _high, body = arg
            total += max(int(low), 1) * _expression_size(body)
        else:
            total += 1 + sum(_expression_size(sub) for sub in _subpatterns(arg))
        if total > MAX_EXPRESSION_SIZE:
            return total
    return total


def _compile(find: str, *, regex: bool, case_sensitive: bool) -> regex_engine.Pattern[str]:
    """``find`` compiled for the ``regex`` engine (see the module docstring).

    The expression is checked by :mod:`re` first, so its errors read as Python's: "Invalid
    regular expression: <re's message> at position <n>." Raises :class:`InputError` for an
    empty or invalid ``find`` and :class:`ExpressionTooSlowError` for one larger than
    :data:`MAX_EXPRESSION_SIZE`.
    """
    import regex as regex_engine

    if not find:
        raise InputError("The text to find is empty; type what to search for.")
    flags = 0 if case_sensitive else re.IGNORECASE
    pattern = find if regex else re.escape(find)
    try:
        re.compile(pattern, flags)
        size = _expression_size(_sre_parser.parse(pattern, flags))
        if size > MAX_EXPRESSION_SIZE:
            raise ExpressionTooSlowError(
                "This expression repeats too much to search with; use smaller counts in {…} "
                f"(at most {MAX_EXPRESSION_SIZE:,} characters when written out)." if regex else
                f"The text to find is too long (at most {MAX_EXPRESSION_SIZE:,} characters)."
            )
        return regex_engine.compile(pattern, 0 if case_sensitive else regex_engine.IGNORECASE)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise InputError(f"Invalid regular expression: {exc.msg}{where}.") from exc
    except regex_engine.error as exc:
        raise InputError(f"Invalid regular expression: {exc}.") from exc
    except RecursionError as exc:  # from either parser, at a depth that depends on the caller
        raise InputError("Invalid regular expression: its groups are nested too deeply.") from exc


def find_replace_preview(
    bodies: Mapping[int, str],
    find: str,
    replace: str,
    *,
    regex: bool = False,
    case_sensitive: bool = True,
    time_budget: float = FIND_TIME_BUDGET_S,
) -> list[Change]:
    """The changes a find/replace over ``bodies`` (image id -> caption body) would make.

    Only images whose body changes are listed, in ``bodies`` order. With ``regex`` the pattern
    is a Python :mod:`re` expression and ``replace`` may use groups (``\\1``, ``\\g<name>``);
    without it both are literal text. Raises :class:`InputError` for an empty ``find``, an
    invalid expression (with the position :mod:`re` reports) or a replacement naming a group
    that does not exist; :class:`ExpressionTooSlowError` (:data:`TOO_SLOW_MESSAGE`) when matching
    over all of ``bodies`` takes longer than ``time_budget`` seconds, and :class:`InputError`
    when the changed captions add up to more than :data:`MAX_RESULT_CHARS` characters.
    """
    import regex as regex_engine

    pattern = _compile(find, regex=regex, case_sensitive=case_sensitive)
    if regex:
        try:  # the replacement's groups, checked by re up front (messages with positions)
            re.compile(pattern.pattern, 0 if case_sensitive else re.IGNORECASE).subn(replace, "")
        except (re.error, IndexError) as exc:
            raise InputError(f"Invalid replacement text: {exc}.") from exc
    deadline = time.monotonic() + time_budget
    changes: list[Change] = []
    result_chars = 0
    for image_id, body in bodies.items():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExpressionTooSlowError(TOO_SLOW_MESSAGE)
        try:
            if regex:
                after, count = pattern.subn(replace, body, timeout=remaining)
            else:
                after, count = pattern.subn(lambda _match: replace, body, timeout=remaining)
        except TimeoutError as exc:
            raise ExpressionTooSlowError(TOO_SLOW_MESSAGE) from exc
        except (regex_engine.error, IndexError) as exc:
            raise InputError(f"Invalid replacement text: {exc}.") from exc
        if after != body:
            result_chars += len(after)
            if result_chars > MAX_RESULT_CHARS:
                raise InputError(
                    "The replacement makes the captions too long "
                    f"(more than {MAX_RESULT_CHARS:,} characters in all); shorten it."
                )
            changes.append(Change(image_id, body, after, count))
    return changes


def apply_batch(bodies: Mapping[int, str], operation: Callable[[str], str]) -> list[Change]:
    """The changes ``operation`` (body -> new body) makes over ``bodies`` (image id -> body).

    Used for adding, removing or renaming a tag and prepending or appending text on many images,
    e.g. ``apply_batch(bodies, lambda b: add_tag(b, "lamp"))``. Only changed images are listed,
    in ``bodies`` order, each with ``count=1``.
    """
    changes: list[Change] = []
    for image_id, body in bodies.items():
        after = operation(body)
        if after != body:
            changes.append(Change(image_id, body, after, 1))
    return changes


__all__ = [
    "DEFAULT_SEPARATOR",
    "FIND_TIME_BUDGET_S",
    "MAX_EXPRESSION_SIZE",
    "MAX_RESULT_CHARS",
    "TOO_SLOW_MESSAGE",
    "Change",
    "ExpressionTooSlowError",
    "TagCounter",
    "add_tag",
    "append_text",
    "apply_batch",
    "count_tags",
    "counted_body",
    "find_replace_preview",
    "has_tag",
    "join_tags",
    "parse_tags_txt",
    "prepend_text",
    "remove_tag",
    "rename_tag",
    "split_tags",
    "tag_spans",
]
