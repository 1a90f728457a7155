"""The per-person and scene requests of a multi-person caption, and the cleaning of answers.

Rules (issue 13): a person's description is one sentence of 15-35 words (appearance, clothing,
accessories, pose, expression); the scene 5-15 words (location, lighting, key background
elements, no people); longer answers are cut at a sentence or clause boundary, never
mid-word; prompt echoes and lead-ins are removed; the text starts with a capital and ends
with exactly one period.

Words: a run of characters between spaces that holds a letter or digit is a word; Chinese
and Japanese put no spaces between words, so each of their characters (kana, CJK ideographs)
counts as half a word -- a Chinese word is about two characters, so 35 words are about 70
characters. Korean writes spaces and counts like English.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

from loracap.core.prompts import DEFAULT_LANGUAGE, check_language, clean_caption, language_label

#: Word limits of a person's description and of the scene (issue 13).
PERSON_MIN_WORDS = 15
PERSON_MAX_WORDS = 35
SCENE_MIN_WORDS = 5
SCENE_MAX_WORDS = 15

#: Kana, CJK ideographs and compatibility ideographs: each is half a word.
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_TOKEN = re.compile(f"[{_CJK_CHARS}]|[^\\s{_CJK_CHARS}]+")

#: Where a long text may be cut (the text before the match is kept): after a sentence or
#: clause end followed by a space (``.`` ``;`` ``,`` ``!`` ``?``, so ``3.5`` is not one),
#: after a CJK one (``。`` ``；`` ``，`` ``、`` ``！`` ``？``), and before `` and ``.
_BOUNDARY = re.compile(r"[.;,!?](?=\s)|[\u3002\uff1b\uff0c\u3001\uff01\uff1f]|(?=\s+and\s)",
                       re.I)
#: Removed from the end before the final period: spaces, ASCII and CJK punctuation.
_TRAILING = " .,;:!?\u2026\u3000\u3002\uff0c\u3001\uff1b\uff1a\uff01\uff1f\uff0e-\u2013\u2014"

_IMAGE = r"(?:image|photo|photograph|picture|crop|frame)"
_SHOWS = r"(?:shows|depicts|features|contains|displays|captures)"
#: English lead-ins a model puts before a description (case-insensitive, at the start).
_COMMON_LEAD_INS = [
    rf"(?:this|the)\s+{_IMAGE}\s+{_SHOWS}\s+",
    rf"in\s+(?:this|the)\s+(?:highlighted\s+)?{_IMAGE}\s*,?\s*",
    rf"this\s+is\s+(?:an?\s+)?{_IMAGE}\s+of\s+",
    r"(?:person|scene|subject|setting|background|description|caption)(?:\s*\d+)?"
    r"(?:\s*[:\uff1a]|\s+[-\u2013\u2014]\s)\s*,?\s*",
]
_PERSON_WORDS = r"(?:person|individual|subject|figure)"
_PERSON_LEAD_INS = [re.compile("^" + lead, re.I) for lead in [
    rf"(?:the|this)\s+(?:(?:highlighted|undimmed|bright|selected|main|visible)\s+)?"
    rf"{_PERSON_WORDS}(?:\s+(?:in|within|at\s+the\s+centre\s+of)\s+(?:the|this)\s+"
    rf"(?:(?:highlighted|undimmed|bright)\s+)?(?:{_IMAGE}|area|region|box))?\s+"
    r"(?:is|appears\s+to\s+be|seems\s+to\s+be)\s+",
    *_COMMON_LEAD_INS]]
_SCENE_LEAD_INS = [re.compile("^" + lead, re.I) for lead in [
    r"(?:the|this)\s+(?:scene|setting|background|location)\s+(?:is|shows|depicts)\s+",
    *_COMMON_LEAD_INS]]

PERSON_PROMPT = """\
This image shows one person at full brightness; everything around them is dimmed and is \
only context.
Describe only that person, not the dimmed area, the background or anyone else: their \
appearance (apparent age, build, hair), clothing, accessories, pose and facial expression.
Answer with one sentence of 15 to 35 words, on one line, with no introduction, no list and \
no quotes.
Do not name the person or guess who they are, and do not begin with "The person is" or \
"This image shows"; begin with the person themselves.
Do not write any trigger word or "photo of" prefix."""

SCENE_PROMPT = """\
Describe the setting of this image in one sentence of 5 to 15 words: the location, the \
lighting and the key background elements.
The people in it are dimmed: do not mention them or anything they wear or hold.
Answer on one line with no introduction and no quotes, and do not begin with "The scene is" \
or "This image shows".
Do not write any trigger word or "photo of" prefix."""


def _with_language(prompt: str, language: str) -> str:
    code = check_language(language)
    if code == DEFAULT_LANGUAGE:
        return prompt
    return f"{prompt}\nWrite the sentence in {language_label(code)}."


def person_prompt(language: str = DEFAULT_LANGUAGE) -> str:
    """The text sent with one person's crop (:func:`loracap.core.people.crops.person_crop`):
    describe only the undimmed person in one sentence of 15-35 words, no name, no lead-in.
    ``language`` is a code of :data:`loracap.core.prompts.LANGUAGES`; for any but English a
    last line asks for that language (``Write the sentence in German (Deutsch).``). Raises
    :class:`~loracap.core.errors.InputError` for an unknown language."""
    return _with_language(PERSON_PROMPT, language)


def scene_prompt(language: str = DEFAULT_LANGUAGE) -> str:
    """The text sent with the scene image (:func:`loracap.core.people.crops.scene_image`):
    location, lighting and key background elements in 5-15 words, no people. ``language`` as
    for :func:`person_prompt`."""
    return _with_language(SCENE_PROMPT, language)


def _sentences(prompt: str) -> tuple[str, ...]:
    pieces = re.split(r"(?<=[.;:])\s+|\n", prompt)
    return tuple(" ".join(piece.split()).rstrip(".;:").casefold() for piece in pieces if piece)


#: The prompts' own sentences: an answer starting with one of them echoes the prompt.
_ECHOES = _sentences(PERSON_PROMPT) + _sentences(SCENE_PROMPT)


@dataclass(frozen=True)
class CleanedText:
    """A cleaned description. ``text`` is one line, starting with a capital (where the script
    has capitals) and ending with exactly one period (``。`` after Chinese or Japanese), or
    ``""`` when nothing was left. ``words`` is its length in words (see the module's notes),
    ``cut`` says it was shortened to the word limit, and ``too_short`` that it has fewer words
    than the minimum (15 for a person, 5 for a scene): the caller may ask again."""

    text: str
    words: int
    cut: bool
    too_short: bool


def _units(text: str) -> list[tuple[int, int]]:
    """Each word piece of ``text``: (its end index, half-words it counts: 2, 1 for CJK, 0 for
    punctuation alone)."""
    pieces: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        weight = 1 if _CJK.fullmatch(token) else (2 if any(c.isalnum() for c in token) else 0)
        pieces.append((match.end(), weight))
    return pieces


def count_words(text: str) -> int:
    """The number of words of ``text``: pieces between spaces holding a letter or digit; each
    Chinese or Japanese character is half a word (rounded up overall)."""
    return math.ceil(sum(weight for _, weight in _units(text)) / 2)


def cut_to_words(text: str, max_words: int, min_words: int = 0) -> tuple[str, bool]:
    """``text`` cut to at most ``max_words`` words, and whether it was cut.

    The cut is at the last sentence or clause boundary (:data:`_BOUNDARY`: ``.`` ``;`` ``,``
    ``!`` ``?`` before a space, CJK ``。；，、！？``, or before `` and ``) that keeps at most
    ``max_words`` and at least ``min_words`` words; with none, after the last whole word that
    fits (for Chinese or Japanese, after a character). Trailing spaces and punctuation of the
    cut are removed. ``text`` itself when it is short enough."""
    units = _units(text)
    ends = [end for end, _ in units]
    totals: list[int] = []
    for _, weight in units:
        totals.append((totals[-1] if totals else 0) + weight)
    if not totals or totals[-1] <= 2 * max_words:
        return text, False

    def words_before(position: int) -> int:
        index = bisect.bisect_right(ends, position)
        return totals[index - 1] if index else 0

    best = None
    for match in _BOUNDARY.finditer(text):
        position = match.end()
        if words_before(position) > 2 * max_words:
            break
        if words_before(position) >= 2 * min_words:
            best = position
    if best is None:
        fits = [end for end, total in zip(ends, totals, strict=True) if total <= 2 * max_words]
        best = fits[-1] if fits else 0
    return text[:best].rstrip(_TRAILING), True


def _finish(text: str) -> str:
    text = text.rstrip(_TRAILING)
    if not text:
        return ""
    first = text[0].upper()
    if len(first) == 1:
        text = first + text[1:]
    return text + ("\u3002" if _CJK.match(text[-1]) else ".")


def _strip_echo(text: str) -> str:
    folded = text.casefold()
    for sentence in _ECHOES:
        if sentence and folded.startswith(sentence) and len(folded) > len(sentence):
            return text[len(sentence):].lstrip(" .;:,-\u2013\u2014")
    return text


def _clean(text: str, lead_ins: list[re.Pattern[str]], min_words: int,
           max_words: int) -> CleanedText:
    # clean_caption: sanitised, Markdown removed, one line, Caption:/Description: lead-ins
    # (also in the other caption languages), surrounding quotes, trailing punctuation.
    text = clean_caption(text, "", "")
    previous = None
    while text != previous:
        previous = text
        text = _strip_echo(text)
        for pattern in lead_ins:
            text = pattern.sub("", text, count=1)
        text = clean_caption(text, "", "")
    text, cut = cut_to_words(text, max_words, min_words)
    text = _finish(text)
    words = count_words(text)
    return CleanedText(text, words, cut, words < min_words)


def clean_person_text(text: str) -> CleanedText:
    """A model's description of one person, cleaned: sanitised (control characters removed,
    :func:`loracap.core.prompts.sanitize_text`), Markdown and quotes removed, one line;
    prompt echoes (a sentence of :data:`PERSON_PROMPT` or :data:`SCENE_PROMPT` at the start)
    and lead-ins (``The person is``, ``This person is``, ``This image shows``, ``In this
    image,``, ``Description:``, ``Person:``, ``Scene:`` ...) removed; cut to
    :data:`PERSON_MAX_WORDS` words (:func:`cut_to_words`, keeping at least
    :data:`PERSON_MIN_WORDS` where a boundary allows); capital first letter, one final period.
    ``too_short`` when it has fewer than 15 words."""
    return _clean(text, _PERSON_LEAD_INS, PERSON_MIN_WORDS, PERSON_MAX_WORDS)


def clean_scene_text(text: str) -> CleanedText:
    """A model's scene description, cleaned as :func:`clean_person_text` (lead-ins also ``The
    scene is``, ``The setting is``), cut to :data:`SCENE_MAX_WORDS` words; ``too_short`` under
    :data:`SCENE_MIN_WORDS` words."""
    return _clean(text, _SCENE_LEAD_INS, SCENE_MIN_WORDS, SCENE_MAX_WORDS)
