"""Caption profiles: the instructions sent to a captioning model and the cleaning of its answer.

A caption file holds ``<prefix><body>``, where the prefix (e.g. ``"photo of ide_main_hall "``) is
added by LoRACap itself. This module produces and cleans the BODY only.

The Space and Person profiles ask for structured output (a JSON object following a JSON schema,
Gemini's ``response_json_schema``) and :func:`assemble_structured` joins its fields in a fixed
order, so every caption of a dataset has the same structure. The wording of the prompts comes from
the workshop brief "Analyze this interior space/person image and provide a structured
description ...", adapted to one profile at a time and to a JSON answer.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loracap.core.errors import ImageRejectedError, InputError

logger = logging.getLogger(__name__)


class Profile(StrEnum):
    """What the photos show; decides the prompt and the caption structure."""

    SPACE = "space"
    PERSON = "person"
    CUSTOM = "custom"

    @property
    def label(self) -> str:
        """The name shown to the user, e.g. ``"Interior space"``."""
        return _PROFILE_LABELS[self]


_PROFILE_LABELS: dict[Profile, str] = {
    Profile.SPACE: "Interior space",
    Profile.PERSON: "Person",
    Profile.CUSTOM: "Custom prompt",
}


def profile_label(profile: Profile) -> str:
    """The user-facing label of ``profile`` (same as ``profile.label``)."""
    return profile.label


#: Words (the start of a word) in a folder name or trigger word that say the photos show a
#: person: ``portrait``, ``portraits_anna``, ``selfies``, ``headshot``, ``faces``.
_PERSON_WORDS = ("person", "people", "portrait", "selfie", "headshot", "face")


def suggest_profile(*names: str) -> Profile | None:
    """The profile that ``names`` (a folder name, a trigger word) suggest, or None.

    :attr:`Profile.PERSON` when a word of a name starts with one of :data:`_PERSON_WORDS`
    (``"Portraits Anna"``, ``anna_headshots``); words are split at anything but letters, so
    ``surface`` is not ``face``. None when nothing says so (keep the user's or the default
    choice).
    """
    for name in names:
        for word in re.split(r"[^a-z]+", name.lower()):
            if word and any(word.startswith(person) for person in _PERSON_WORDS):
                return Profile.PERSON
    return None


@dataclass(frozen=True)
class AnswerLimits:
    """How much of a model's answer is kept, in characters (Unicode code points).

    ``body`` -- the longest caption body stored; a longer one is cut at the last ``", "`` or
    space before the limit. ``field`` and ``items`` -- the longest text kept of one field of a
    structured answer, and the most list items kept of one field (a list's first items: the
    prompts ask for the most prominent first), so one runaway field cannot push the others out
    of the body. ``answer`` -- the longest answer read at all: one longer is not a caption (a
    model repeating itself up to its output limit) and fails its image, unread.
    """

    body: int
    field: int
    items: int
    answer: int


#: The limits per profile. Why these numbers: trainers read much less than they allow -- CLIP
#: text encoders (SD 1.5, SDXL) take 77 tokens (about 300 characters of English) and FLUX's T5
#: 512 tokens (about 2,000 characters). The structured profiles ask for short phrases (their
#: example answers assemble to about 130 characters), so 1,500 characters is ten times a
#: usual caption; a field of 300 characters is a long phrase; 20 items are more objects than a
#: caption names. A custom prompt may ask for long descriptions (vision-language datasets), so
#: it keeps 4,000 characters, twice what T5 reads. An answer over ten times the body limit is
#: refused. So a caption costs the project at most a few kilobytes per version (a 10 MB answer
#: used to be stored whole).
ANSWER_LIMITS: dict[Profile, AnswerLimits] = {
    Profile.SPACE: AnswerLimits(body=1_500, field=300, items=20, answer=15_000),
    Profile.PERSON: AnswerLimits(body=1_500, field=300, items=20, answer=15_000),
    Profile.CUSTOM: AnswerLimits(body=4_000, field=300, items=20, answer=40_000),
}


@dataclass(frozen=True)
class Instructions:
    """What to send for one profile.

    ``prompt`` is the text sent with each image. ``json_schema`` is a JSON Schema object for
    structured output (Gemini ``response_json_schema``) or None for a plain-text answer.
    ``field_order`` lists the schema's properties in caption order (empty for plain text).
    """

    profile: Profile
    prompt: str
    json_schema: dict[str, Any] | None
    field_order: tuple[str, ...]

    @property
    def structured(self) -> bool:
        """True when the answer is a JSON object to assemble with :func:`assemble_structured`."""
        return self.json_schema is not None

    @property
    def limits(self) -> AnswerLimits:
        """How much of an answer is kept for this profile (:data:`ANSWER_LIMITS`)."""
        return ANSWER_LIMITS[self.profile]


_NO_PREFIX_RULE = (
    'Do NOT include the "photo of [trigger_word]" prefix or any trigger word - '
    "that will be added automatically."
)

#: The example answers the structured prompts show the model; also what
#: :func:`example_caption_body` assembles for people choosing a profile.
_SPACE_EXAMPLE: dict[str, Any] = {
    "room_type": "lecture hall",
    "key_objects": ["tiered seating", "projection screen"],
    "lighting": "overhead fluorescent lighting",
    "contextual_details": "teaching space with rows of desks",
}
_PERSON_EXAMPLE: dict[str, Any] = {
    "pose_action": "standing",
    "clothing": "casual jeans and sweater",
    "expression": "relaxed expression",
    "lighting": "soft window light from left",
    "background": "neutral grey background",
}

_SPACE_PROMPT = f"""\
Analyze this image of an interior space and provide a structured description of it.
Answer with a JSON object with these fields, in this order:
- room_type: the kind of space (e.g. "lecture hall", "open-plan office").
- key_objects: the key objects visible: furniture, visible objects and architectural/spatial \
elements, most prominent first, with materials and textures where relevant; short phrases.
- lighting: the lighting conditions: natural vs artificial, quality, direction.
- contextual_details: the atmosphere and context of the space.
Be specific and objective. Use short lowercase phrases, not sentences.
Example: {json.dumps(_SPACE_EXAMPLE)}
{_NO_PREFIX_RULE}"""

_PERSON_PROMPT = f"""\
Analyze this image of a person and provide a structured description of it.
Answer with a JSON object with these fields, in this order:
- pose_action: the pose or action, with the physical appearance relevant to it.
- clothing: the clothing, with materials and textures where relevant.
- expression: the facial expression.
- lighting: the lighting conditions: natural vs artificial, quality, direction.
- background: the background, its atmosphere and context.
Be specific and objective. Use short lowercase phrases, not sentences.
Example: {json.dumps(_PERSON_EXAMPLE)}
{_NO_PREFIX_RULE}"""

_CUSTOM_SUFFIX = (
    "\n\nAnswer with the caption only, on one line, with no introduction, no quotes and no "
    '"photo of ..." prefix or trigger word (the prefix is added automatically).'
)


def _string_field(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


_SPACE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "room_type": _string_field("The kind of space, e.g. lecture hall."),
        "key_objects": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "Visible objects, furniture and architectural elements.",
        },
        "lighting": _string_field("Natural vs artificial, quality, direction."),
        "contextual_details": _string_field("Atmosphere and context of the space."),
    },
    "required": ["room_type", "key_objects", "lighting", "contextual_details"],
    "additionalProperties": False,
}

_PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pose_action": _string_field("Pose or action."),
        "clothing": _string_field("Clothing."),
        "expression": _string_field("Facial expression."),
        "lighting": _string_field("Natural vs artificial, quality, direction."),
        "background": _string_field("Background."),
    },
    "required": ["pose_action", "clothing", "expression", "lighting", "background"],
    "additionalProperties": False,
}


def build_instructions(profile: Profile, custom_prompt: str = "") -> Instructions:
    """The prompt, JSON schema and field order for ``profile``.

    ``custom_prompt`` is used only by ``Profile.CUSTOM``; a one-line-answer rule is appended to it.
    Raises :class:`InputError` when the custom prompt is empty or blank.
    """
    profile = Profile(profile)
    if profile is Profile.SPACE:
        return Instructions(profile, _SPACE_PROMPT, _copy_schema(_SPACE_SCHEMA),
                            tuple(_SPACE_SCHEMA["required"]))
    if profile is Profile.PERSON:
        return Instructions(profile, _PERSON_PROMPT, _copy_schema(_PERSON_SCHEMA),
                            tuple(_PERSON_SCHEMA["required"]))
    text = custom_prompt.strip()
    if not text:
        raise InputError("The custom prompt is empty. Write the instructions for the model.")
    return Instructions(profile, text + _CUSTOM_SUFFIX, None, ())


def example_caption_body(profile: Profile) -> str:
    """What a caption body of ``profile`` looks like: the example answer its prompt shows the
    model, assembled as a real answer is (:func:`assemble_structured`). ``""`` for the custom
    profile, whose captions follow the user's own prompt."""
    profile = Profile(profile)
    examples = {Profile.SPACE: _SPACE_EXAMPLE, Profile.PERSON: _PERSON_EXAMPLE}
    if profile not in examples:
        return ""
    return assemble_structured(examples[profile], build_instructions(profile))


def _copy_schema(schema: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(schema))
    return copied


# --- sanitising -------------------------------------------------------------------------------

#: Terminal escape sequences (ECMA-48): CSI (colours, cursor moves, ``ESC [ 31 m``), OSC
#: (window titles, hyperlinks; ended by BEL or ``ESC \``), DCS/SOS/PM/APC strings, the other
#: two- and three-character escapes (``ESC c`` resets the terminal), and the 8-bit CSI.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
#: Line breaks other than ``\n``: CR, CR LF, vertical tab, form feed, NEL, U+2028, U+2029.
_LINE_BREAK = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
#: Removed outright: the C0 controls but tab and line feed, DEL, the C1 controls; zero-width
#: space, the bidirectional embeddings, overrides and isolates (text that displays in another
#: order than it reads), the byte-order mark, and the noncharacters U+FFFE/U+FFFF.
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]"
)
#: A UTF-16 surrogate code point on its own (``"\\ud800"`` in a JSON answer decodes to one):
#: not a character, and no UTF-8 encoder (SQLite's, the terminal's, an export's) accepts it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def sanitize_text(text: str) -> str:
    """``text`` made safe to store, print and export; line breaks kept as ``"\\n"``.

    Lone surrogates become U+FFFD (the replacement character, as a decoder writes for invalid
    input); terminal escape sequences are removed whole (so ``ESC [31m`` leaves no ``[31m``);
    every other line break becomes ``"\\n"`` and a tab a space; the remaining control
    characters (NUL, C0 but tab and line feed, DEL, C1) and the invisible format characters of
    :data:`_INVISIBLE` are removed. Ordinary spaces and every printable character are kept.
    Linear in the length of ``text``.
    """
    text = _SURROGATE.sub("\ufffd", text)
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _LINE_BREAK.sub("\n", text).replace("\t", " ")
    return _INVISIBLE.sub("", text)


def limit_length(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at the last ``", "`` or else the last
    space in its second half (whole phrases or words), else exactly at ``limit``; trailing
    spaces and punctuation of the cut are removed. ``text`` itself when it is short enough."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    for separator in (", ", " ", "\n"):
        at = head.rfind(separator)
        if at >= limit // 2:
            return head[:at].rstrip(" \n,;:.-")
    return text[:limit].rstrip()


# --- cleaning ---------------------------------------------------------------------------------

_QUOTE_PAIRS: dict[str, str] = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019",
                                "\u201e": "\u201c", "\u00ab": "\u00bb"}
_CLOSING_QUOTES = frozenset(_QUOTE_PAIRS.values()) | {"\u201d", "\u2019"}
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING_OR_BULLET = re.compile(r"^\s*(?:#{1,6}\s*|[-*+\u2022]\s+|>\s*)")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![\w])_{1,2}(?=\S)(.+?)(?<=\S)_{1,2}(?![\w])")
_LEAD_IN_CORE = r"""
    (?:(?:sure|okay|ok|certainly|of\s+course)[!,.]*\s+)?
    (?:
        here(?:'s|\u2019s|\s+is|\s+are)\s+
            (?:(?:a|an|the|your|my)\s+)?
            (?:(?:short|concise|brief|structured|detailed|possible|suggested|generated)\s+)*
            (?:caption|description)s?
            (?:\s+(?:for|of)\s+(?:the|this|your)\s+(?:image|photo|picture))?
      | (?:(?:image|photo)\s+)?(?:caption|description)
    )
"""
_LEAD_IN_INLINE = re.compile(r"^" + _LEAD_IN_CORE + r"\s*[:\-\u2013\u2014]\s*", re.I | re.X)
_LEAD_IN_LINE = re.compile(r"^" + _LEAD_IN_CORE + r"\s*[:\-\u2013\u2014]?\s*$", re.I | re.X)
_PLACEHOLDERS = r"\[trigger(?:[_ ]word)?\]|<trigger(?:[_ ]word)?>"


def clean_caption(text: str, trigger: str, prefix: str) -> str:
    """The caption BODY in a model's answer ``text``, without the prefix; may be ``""``.

    ``trigger`` is the trigger word (e.g. ``"ide_main_hall"``), ``prefix`` the rendered caption
    prefix (e.g. ``"photo of ide_main_hall "``); either may be ``""``. Rules, in order:

    0. The text is sanitised (:func:`sanitize_text`): no control characters, escape
       sequences or lone surrogates.
    1. Code-fence lines (```` ``` ````, ``~~~``) are removed.
    2. Markdown: leading ``#`` headings, ``-``/``*``/``+``/``•`` bullets and ``>`` quotes are
       removed from each line; ``*``/``**`` and backticks are removed everywhere; ``_x_`` and
       ``__x__`` emphasis is unwrapped (underscores inside words, as in trigger words, stay).
    3. Lines with no letter or digit are dropped; leading lines that are only a lead-in
       (``Here is a caption:``) are dropped.
    4. Line breaks become ``", "`` (a space when the line already ends with a comma); a period
       ending a line is dropped first.
    5. Whitespace runs become one space; spaces before a comma and repeated commas are removed.
    6. Repeated until nothing changes, at the start and end of the text:
       a lead-in such as ``Caption:``, ``Description:``, ``Here is a caption:``,
       ``Here's the caption for the image:`` (case-insensitive, ``Sure!`` allowed before) is
       removed; surrounding quotes (straight, curly, guillemets) are removed, and an unmatched
       quote at one end too; trailing periods and commas are removed; a duplicated prefix at the
       start is removed: the rendered ``prefix``, ``a photo of <trigger>``, ``photo of
       [trigger]``/``[trigger_word]`` placeholders, ``<trigger>,`` or ``<trigger> `` alone
       (case-insensitive), with a following comma, colon or space.
    """
    lines = _markdown_free_lines(sanitize_text(text))
    joined = _join_lines(lines)
    joined = re.sub(r"\s+", " ", joined)
    joined = re.sub(r"\s+,", ",", joined)
    joined = re.sub(r",(?:\s*,)+", ",", joined)
    return _strip_edges(joined, trigger, prefix)


def _markdown_free_lines(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        if _FENCE.match(line):
            continue
        line = _HEADING_OR_BULLET.sub("", line)
        line = line.replace("*", "").replace("`", "")
        line = _UNDERSCORE_EMPHASIS.sub(r"\1", line).strip()
        if not any(ch.isalnum() for ch in line):
            continue
        if not lines and _LEAD_IN_LINE.match(line):
            continue
        lines.append(line)
    return lines


def _join_lines(lines: list[str]) -> str:
    joined = ""
    for line in lines:
        if not joined:
            joined = line
            continue
        joined = joined.rstrip().rstrip(".").rstrip()
        joined += " " if joined.endswith(",") else ", "
        joined += line
    return joined


def _strip_edges(text: str, trigger: str, prefix: str) -> str:
    prefix_patterns = _prefix_patterns(trigger, prefix)
    previous = None
    while text != previous:
        previous = text
        text = text.strip()
        text = _LEAD_IN_INLINE.sub("", text, count=1)
        text = _strip_quotes(text)
        text = text.rstrip(" .,;")
        for pattern in prefix_patterns:
            text = pattern.sub("", text, count=1)
    return text


def _prefix_patterns(trigger: str, prefix: str) -> list[re.Pattern[str]]:
    tail = r"(?:\s*[,:;]\s*|\s+|$)"
    names = [_PLACEHOLDERS]
    if trigger.strip():
        names.insert(0, re.escape(trigger.strip()))
    name = "(?:" + "|".join(names) + ")"
    patterns: list[re.Pattern[str]] = []
    rendered = prefix.strip().rstrip(",:;").strip()
    if rendered:
        patterns.append(re.compile("^" + re.escape(rendered) + tail, re.I))
    patterns.append(
        re.compile(
            r"^(?:(?:a|an)\s+)?(?:photo|image|picture)\s+of\s+(?:the\s+)?" + name + tail, re.I
        )
    )
    patterns.append(re.compile("^" + name + tail, re.I))
    return patterns


def _strip_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] in _QUOTE_PAIRS and text[-1] == _QUOTE_PAIRS[text[0]]:
        return text[1:-1]
    if text and text[0] in _QUOTE_PAIRS and _QUOTE_PAIRS[text[0]] not in text[1:]:
        return text[1:]
    if text and text[-1] in _CLOSING_QUOTES:
        openers = [o for o, c in _QUOTE_PAIRS.items() if c == text[-1]]
        if not any(o in text[:-1] for o in openers):
            return text[:-1]
    return text


# --- structured answers -----------------------------------------------------------------------


def assemble_structured(data: Mapping[str, Any], instructions: Instructions) -> str:
    """One caption body from a structured answer: the fields of ``data`` in
    ``instructions.field_order``, joined with ``", "``.

    A list value contributes its items, joined with ``", "``; numbers are written as text; each
    piece is cut to ``instructions.limits.field`` characters (a list to its first
    ``limits.items`` items) and cleaned with :func:`clean_caption` (no trigger or prefix);
    empty pieces, missing fields and values of other types are skipped. Example (space
    profile): ``{"room_type": "lecture hall", "key_objects": ["tiered seating"], ...}`` ->
    ``"lecture hall, tiered seating, ..."``.
    """
    limits = instructions.limits
    pieces: list[str] = []
    for name in instructions.field_order:
        for raw in _field_pieces(data.get(name), limits.items):
            piece = clean_caption(limit_length(raw, limits.field), "", "")
            if piece:
                pieces.append(piece)
    return ", ".join(pieces)


def _field_pieces(value: Any, items: int) -> Iterable[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [str(value)] if math.isfinite(value) else []
    if isinstance(value, (list, tuple)):
        flat = [item for item in value if isinstance(item, (str, int, float))][:items]
        return [piece for item in flat for piece in _field_pieces(item, items)]
    return []


def parse_answer(text: str, instructions: Instructions, trigger: str, prefix: str) -> str:
    """The caption body in a model's answer ``text`` (may be ``""``), sanitised and bounded.

    An answer longer than ``instructions.limits.answer`` characters raises
    :class:`ImageRejectedError` (it is not a caption; the image fails with that reason).
    Otherwise the answer is sanitised (:func:`sanitize_text`). Structured instructions: ``text``
    is parsed as a JSON object (a Markdown ```` ```json ```` fence around it is tolerated) and
    assembled with :func:`assemble_structured`; when it is not a JSON object or has none of the
    fields, the raw text is cleaned instead (a model can ignore the requested format). Plain
    instructions: :func:`clean_caption`. The duplicated-prefix rules of :func:`clean_caption`
    apply to the result in both cases, and the body is cut to ``limits.body`` characters
    (:func:`limit_length`).
    """
    limits = instructions.limits
    if len(text) > limits.answer:
        raise ImageRejectedError(
            f"The answer was too long to be a caption ({len(text):,} characters; at most "
            f"{limits.body:,} are kept), so it was not used. Caption this image again, or write "
            "its caption by hand."
        )
    text = sanitize_text(text)
    if instructions.structured:
        data = _load_json_object(text)
        if data is not None and any(name in data for name in instructions.field_order):
            missing = [name for name in instructions.field_order if name not in data]
            if missing:
                logger.warning("Structured answer lacks fields %s; using the others", missing)
            body = clean_caption(assemble_structured(data, instructions), trigger, prefix)
            return _bounded(body, limits.body)
        logger.warning("Expected a JSON caption, got other text; cleaning it as plain text")
    # Cleaning only shortens text, so twice the limit is all that can end up in the body; the
    # cut keeps the cleaning's work bounded too.
    return _bounded(clean_caption(limit_length(text, 2 * limits.body), trigger, prefix),
                    limits.body)


def _bounded(body: str, limit: int) -> str:
    if len(body) > limit:
        logger.info("Caption of %d characters cut to the limit of %d", len(body), limit)
        body = limit_length(body, limit)
    return body


def _load_json_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    fenced = re.match(r"^(?:```|~~~)[\w-]*\s*\n?(.*?)\n?\s*(?:```|~~~)\s*$", stripped, re.S)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return None
    return data if isinstance(data, dict) else None
