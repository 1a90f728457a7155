"""Trigger words and the caption prefix that carries them.

A trigger word is the rare token a LoRA learns to associate with the subject
(``ide_main_hall``). LoRACap accepts lowercase ASCII letters, digits and underscores, starting
with a letter, at most 64 characters: a form every trainer and tokenizer handles the same way
(kohya sd-scripts also uses it in folder names such as ``10_ide_main_hall``).

The caption prefix template (default ``"photo of {trigger} "``) is put in front of every
caption body on export. Only the literal placeholder ``{trigger}`` is substituted; any other
brace is kept as written, so ``"{style} [{trigger}]"`` renders as ``"{style} [ide_main_hall]"``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from loracap.core.errors import InputError, TriggerWordError

TRIGGER_RE = re.compile(r"[a-z][a-z0-9_]*")
"""A valid trigger word (use ``fullmatch``): lowercase ASCII, digits, ``_``; a letter first."""

MAX_TRIGGER_LENGTH = 64
"""The longest trigger word accepted, in characters."""

DEFAULT_PREFIX_TEMPLATE = "photo of {trigger} "
"""The caption prefix used when the user has not chosen one."""

TRIGGER_PLACEHOLDER = "{trigger}"
"""The only placeholder a prefix template may contain."""

_RULE = "use lowercase letters, digits and underscores, starting with a letter"
_ALLOWED_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_MAX_LISTED_CHARS = 6
# Characters str.splitlines() treats as line boundaries.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


LEADING_DIGIT_PREFIX = "x"
"""Put in front of a suggestion that would start with a digit (``123abc`` -> ``x123abc``)."""


def suggest_trigger(text: str) -> str:
    """Return the valid trigger word closest to ``text``, or ``""`` if nothing usable is left.

    A valid trigger word is its own suggestion (``a_``, ``a__b`` stay as they are). Otherwise,
    steps: NFKD-normalise and drop the accents (``é`` -> ``e``), lowercase, turn every run of
    characters outside ``[a-z0-9]`` into one ``_``, strip leading and trailing ``_``; when the
    word then starts with a digit, put :data:`LEADING_DIGIT_PREFIX` (``x``) in front
    (``"123abc"`` -> ``"x123abc"``, ``"3D room"`` -> ``"x3d_room"``); cut it to
    ``MAX_TRIGGER_LENGTH`` characters. The result always matches ``TRIGGER_RE`` or is ``""``.

    Why a letter in front: the digits are often what tells two subjects apart (``2023_trip``,
    ``2024_trip``), so dropping them (``abc``) loses what the user typed, and moving them to the
    end would break up words such as ``3d``. One letter in front keeps every typed character in
    its order and is the smallest change the rule needs; ``x`` is the letter R's
    ``make.names`` puts before names that start with a digit, a well-known precedent for the
    same fix.

    >>> suggest_trigger("IDE Main-Hall")
    'ide_main_hall'
    """
    if TRIGGER_RE.fullmatch(text) and len(text) <= MAX_TRIGGER_LENGTH:
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    word = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if word[:1].isdigit():
        word = LEADING_DIGIT_PREFIX + word
    word = word[:MAX_TRIGGER_LENGTH]
    return word.rstrip("_")


def validate_trigger(text: str) -> str:
    """Return ``text`` unchanged if it is a valid trigger word.

    Nothing is stripped or fixed silently: surrounding spaces are an error like any other.

    Raises:
        TriggerWordError: the message names every broken rule (empty, starts with a digit or an
            underscore, uppercase letters, spaces, other characters, too long) and ends with the
            fixed form from ``suggest_trigger``, which is also in ``.suggestion`` (``""`` if
            nothing usable is left).
    """
    if TRIGGER_RE.fullmatch(text) and len(text) <= MAX_TRIGGER_LENGTH:
        return text
    suggestion = suggest_trigger(text)
    if not text:
        problems = "is empty"
        shown = "Trigger word"
    else:
        problems = _join_and(_problems(text))
        shown = f'Trigger word "{text}"'
    message = f"{shown} {problems}; {_RULE}."
    if suggestion:
        message += f' Try "{suggestion}".'
    raise TriggerWordError(message, suggestion)


def _problems(text: str) -> list[str]:
    """Return one clause per broken rule, e.g. ``["starts with a digit", "has spaces"]``."""
    clauses: list[str] = []
    if text[0].isdigit() and text[0].isascii():
        clauses.append("starts with a digit")
    elif text[0] == "_":
        clauses.append("starts with an underscore")
    has = _bad_characters(text)
    if has:
        clauses.append("has " + _join_and(has))
    if len(text) > MAX_TRIGGER_LENGTH:
        clauses.append(f"is {len(text)} characters long (at most {MAX_TRIGGER_LENGTH})")
    return clauses


def _bad_characters(text: str) -> list[str]:
    """Return what ``text`` has that a trigger word may not: uppercase letters, spaces, others."""
    items: list[str] = []
    if any("A" <= ch <= "Z" for ch in text):
        items.append("uppercase letters")
    if " " in text:
        items.append("spaces")
    others: list[str] = []
    for ch in text:
        if ch in _ALLOWED_CHARS or ch == " " or "A" <= ch <= "Z":
            continue
        shown = _show_char(ch)
        if shown not in others:
            others.append(shown)
    if len(others) > _MAX_LISTED_CHARS:
        extra = len(others) - _MAX_LISTED_CHARS
        others = [*others[:_MAX_LISTED_CHARS], f"{extra} more characters"]
    return items + others


def _show_char(ch: str) -> str:
    """Quote a character for a message: ``"-"``, or ``U+0009`` for an invisible one."""
    if ch.isprintable() and not ch.isspace():
        return f'"{ch}"'
    return f"U+{ord(ch):04X}"


def _join_and(items: list[str]) -> str:
    """Join ``["a", "b", "c"]`` as ``"a, b and c"``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def render_prefix(template: str, trigger: str) -> str:
    """Return ``template`` with every ``{trigger}`` replaced by ``trigger``.

    No ``str.format``: other braces (``{style}``, ``{{``) are kept literally.
    """
    return template.replace(TRIGGER_PLACEHOLDER, trigger)


def validate_prefix_template(template: str) -> str:
    """Return ``template`` unchanged if it can be used as a caption prefix.

    A template may omit ``{trigger}`` (the user may put the trigger word in the captions).

    Raises:
        InputError: the template contains a line break (``\\n``, ``\\r`` or any other character
            ``str.splitlines`` splits on); kohya sd-scripts reads only the first line of a
            caption file, so a multi-line prefix would cut every caption.
    """
    if any(ch in _LINE_BREAKS for ch in template):
        raise InputError(
            "The caption prefix contains a line break; trainers such as kohya sd-scripts read "
            "only the first line of a caption, so the prefix must be a single line."
        )
    return template


def full_caption(template: str, trigger: str, body: str) -> str:
    """Return the exported caption: rendered prefix, then the stripped ``body``.

    Exactly one space is put between them when the prefix is non-empty and does not already
    end with whitespace. A blank ``body`` gives ``""``: an uncaptioned image has no caption,
    not a lone prefix.
    """
    text = body.strip()
    if not text:
        return ""
    prefix = render_prefix(template, trigger)
    if prefix and not prefix[-1].isspace():
        prefix += " "
    return prefix + text


def strip_prefix(text: str, template: str, trigger: str) -> str:
    """Return ``text`` without the rendered prefix it starts with, stripped; else ``text``.

    Used when importing sidecar caption files that already contain the prefix
    (``"Photo of  ide_main_hall, a hall"`` -> ``"a hall"`` for the default template). The match
    ignores letter case and treats any run of whitespace as one space; a prefix ending in a
    letter or digit must end at a word boundary (``"photo of ide_main_hall2 ..."`` is kept).
    Commas, semicolons and colons left at the start of the rest are dropped too. ``text`` is
    returned unchanged when it does not start with the prefix or the prefix is blank.
    """
    words = render_prefix(template, trigger).split()
    if not words:
        return text
    pattern = r"\s*" + r"\s+".join(re.escape(word) for word in words)
    if words[-1][-1].isalnum() or words[-1][-1] == "_":
        pattern += r"(?!\w)"
    match = re.match(pattern + r"[\s,;:]*", text, flags=re.IGNORECASE)
    if match is None:
        return text
    return text[match.end() :].strip()


# ---------------------------------------------------------------------- foreign prefixes

KNOWN_TRIGGER_TOKENS = frozenset({"tok", "sks", "ohwx", "zwx"})
"""Trigger words so common in tutorials and trainer defaults that they count as trigger words
in :func:`find_foreign_prefix` although they hold no underscore or digit: ``TOK`` (the default
``trigger_word`` of Replicate's FLUX LoRA trainer), ``sks`` (the DreamBooth paper's rare token),
``ohwx`` and ``zwx`` (kohya sd-scripts tutorials). Compared ignoring letter case."""

FOREIGN_PLACEHOLDER = "[trigger]"
"""ai-toolkit's and fal's literal trigger placeholder; a prefix carrying it is foreign too."""

_ARTICLES = frozenset({"a", "an", "the"})
_TOKEN = rf"(?P<token>\[trigger\]|[A-Za-z][A-Za-z0-9_]{{0,{MAX_TRIGGER_LENGTH - 1}}})"
_SEPARATORS = re.compile(r"[\s,;:]*")
_ARTICLE_NEXT = re.compile(r"\s+(?:a|an|the)(?!\w)", re.IGNORECASE)
_SENTINEL = "\x00"  # stands for {trigger} while the template is cut into words


def _foreign_match(text: str, template: str, trigger: str) -> re.Match[str] | None:
    """The match of a foreign prefix at the start of ``text`` (see :func:`find_foreign_prefix`);
    its end is where the caption body starts (separators not yet skipped)."""
    if TRIGGER_PLACEHOLDER not in template:
        return None
    words = render_prefix(template, _SENTINEL).split()
    if not words:
        return None
    parts: list[str] = []
    seen_token = False
    for word in words:
        pieces = []
        for index, piece in enumerate(word.split(_SENTINEL)):
            if index:
                pieces.append("(?P=token)" if seen_token else _TOKEN)
                seen_token = True
            pieces.append(re.escape(piece))
        parts.append("".join(pieces))
    pattern = r"\s*" + r"\s+".join(parts)
    last = words[-1][-1]
    if last == _SENTINEL or last.isalnum() or last == "_":
        pattern += r"(?!\w)"
    match = re.match(pattern, text, flags=re.IGNORECASE)
    if match is None:
        return None
    token = match.group("token")
    folded = token.casefold()
    if folded == trigger.casefold() or folded in _ARTICLES:
        return None  # the project's own prefix (the check calls it prefix_twice), or "a"
    if ("_" in token or any(ch.isdigit() for ch in token) or folded in KNOWN_TRIGGER_TOKENS
            or folded == FOREIGN_PLACEHOLDER):
        return match
    # An ordinary word right before the caption body is a trigger word when the body starts
    # with an article: "photo of johndoe a man" (not "photo of people in a hall").
    ends_with_token = render_prefix(template, _SENTINEL).rstrip(" \t,;:").endswith(_SENTINEL)
    if ends_with_token and _ARTICLE_NEXT.match(text, match.end()):
        return match
    return None


def find_foreign_prefix(text: str, template: str, trigger: str) -> str | None:
    """Return the prefix of another trigger word that ``text`` starts with, or None.

    A foreign prefix is ``template`` rendered with a token other than ``trigger``:
    ``"photo of other_name a hall"`` starts with ``"photo of other_name"`` for the default
    template and the trigger word ``ide_main_hall``. It typically comes with sidecar caption
    files written for another LoRA; exported, the caption would read ``"photo of ide_main_hall
    photo of other_name a hall"``. The template is matched as :func:`strip_prefix` does: letter
    case ignored, any run of whitespace as one space, a word boundary after the token.

    The token must be a trigger word of any letter case (:data:`TRIGGER_RE`, at most
    :data:`MAX_TRIGGER_LENGTH` characters) that is not ``trigger`` (ignoring case: that is the
    project's own prefix) and that is not an ordinary word: it holds an underscore or a digit
    (``other_name``, ``hall2``), is one of :data:`KNOWN_TRIGGER_TOKENS` (``TOK``, ``sks``, …) or
    the placeholder ``[trigger]``, or -- when the template ends with ``{trigger}`` -- the text
    after it starts with ``a``, ``an`` or ``the`` (``"photo of johndoe a man"``). So
    ``"photo of a hall"`` and ``"photo of people in a hall"`` have none.

    Returns the prefix as found, whitespace runs made one space and trailing ``,;:`` dropped
    (``"Photo of  TOK,"`` -> ``"Photo of TOK"``). A template without ``{trigger}`` has no
    foreign prefix (None).
    """
    match = _foreign_match(text, template, trigger)
    if match is None:
        return None
    return " ".join(match.group(0).split()).rstrip(",;:").rstrip()


def strip_foreign_prefix(text: str, template: str, trigger: str) -> str:
    """Return ``text`` without the foreign prefix it starts with (:func:`find_foreign_prefix`),
    stripped, with commas, semicolons and colons at the start of the rest dropped (as
    :func:`strip_prefix` does); ``text`` unchanged when it has none.

    >>> strip_foreign_prefix("photo of other_name, a hall", "photo of {trigger} ", "hall")
    'a hall'
    """
    match = _foreign_match(text, template, trigger)
    if match is None:
        return text
    rest = _SEPARATORS.match(text, match.end())
    assert rest is not None  # the pattern matches the empty string
    return text[rest.end():].strip()


_MAX_PREFIXES_NAMED = 3


def foreign_prefix_note(sidecar_captions: Iterable[str], template: str, trigger: str) -> str:
    """Say how many imported sidecar captions start with a foreign prefix; ``""`` when none do.

    Each caption is taken as :meth:`~loracap.core.project.Project.add_scanned` imports it (the
    project's own prefix stripped with :func:`strip_prefix`), then looked at with
    :func:`find_foreign_prefix`. The New Project dialog and ``loracap new``/``run`` show this
    line; nothing is stripped. Example: ``"3 imported captions start with another trigger
    word's prefix (photo of other_name)"``; up to three different prefixes are named, most
    frequent first (letter case ignored), the rest counted.
    """
    counts: dict[str, int] = {}
    shown: dict[str, str] = {}
    total = 0
    for text in sidecar_captions:
        found = find_foreign_prefix(strip_prefix(text, template, trigger), template, trigger)
        if found is None:
            continue
        total += 1
        key = found.casefold()
        counts[key] = counts.get(key, 0) + 1
        shown.setdefault(key, found)
    if not total:
        return ""
    keys = sorted(counts, key=lambda key: -counts[key])  # stable: first seen first on a tie
    named = ", ".join(shown[key] for key in keys[:_MAX_PREFIXES_NAMED])
    if len(keys) > _MAX_PREFIXES_NAMED:
        named += f" and {len(keys) - _MAX_PREFIXES_NAMED} more"
    if total == 1:
        return f"1 imported caption starts with another trigger word's prefix ({named})"
    return f"{total} imported captions start with another trigger word's prefix ({named})"
