"""Caption profiles: the instructions sent to a captioning model and the cleaning of its answer.

A caption file holds ``<prefix><body>``, where the prefix (e.g. ``"photo of ide_main_hall "``) is
added by LoRACap itself. This module produces and cleans the BODY only.

The Space, Person and Booru-tags profiles ask for structured output (a JSON object following a
JSON schema, Gemini's ``response_json_schema``) and :func:`assemble_structured` joins its fields
in a fixed order, so every caption of a dataset has the same structure. The wording of the Space
and Person prompts comes from the workshop brief "Analyze this interior space/person image and
provide a structured description ...", adapted to one profile at a time and to a JSON answer.
The Paragraph and Short profiles, and the user's own prompt, ask for plain text.

A caption can be asked for in any language of :data:`LANGUAGES`; the cleaning makes no
assumption of ASCII (CJK punctuation counts as a phrase or sentence end, lead-ins such as
``Beschreibung:`` or ``描述：`` are removed).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from loracap.core.errors import ImageRejectedError, InputError

# Re-exported: the profiles and the caption languages live in a module that imports nothing
# heavy (the checks of a project file need them; the prompts are only needed to caption).
from loracap.core.profiles import DEFAULT_LANGUAGE as DEFAULT_LANGUAGE
from loracap.core.profiles import LANGUAGES as LANGUAGES
from loracap.core.profiles import Profile as Profile
from loracap.core.profiles import check_language as check_language
from loracap.core.profiles import language_label as language_label
from loracap.core.profiles import language_name as language_name
from loracap.core.profiles import profile_label as profile_label

logger = logging.getLogger(__name__)


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


# --- limits and instructions ------------------------------------------------------------------


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
#: caption names. Booru tags: the prompt asks for 15-40 tags of one to four words, so 60 tags
#: of at most 60 characters are kept (WD14 taggers' own outputs rarely pass 50 tags). A
#: paragraph of 3-5 sentences is 300-800 characters; 2,000 is what T5 reads. A short caption
#: is one sentence of about 20 words (about 130 characters); 300 is one CLIP window. A custom
#: prompt may ask for long descriptions (vision-language datasets), so it keeps 4,000
#: characters, twice what T5 reads. An answer over ten times the body limit is refused. So a
#: caption costs the project at most a few kilobytes per version (a 10 MB answer used to be
#: stored whole).
ANSWER_LIMITS: dict[Profile, AnswerLimits] = {
    Profile.SPACE: AnswerLimits(body=1_500, field=300, items=20, answer=15_000),
    Profile.PERSON: AnswerLimits(body=1_500, field=300, items=20, answer=15_000),
    Profile.TAGS: AnswerLimits(body=1_500, field=60, items=60, answer=15_000),
    Profile.PARAGRAPH: AnswerLimits(body=2_000, field=300, items=20, answer=20_000),
    Profile.SHORT: AnswerLimits(body=300, field=150, items=20, answer=3_000),
    # Each line of a multi-person caption (a person's 35 words, the scene) and the short
    # caption of an image without people.
    Profile.MULTI_PERSON: AnswerLimits(body=300, field=150, items=20, answer=3_000),
    # One line of tags for every person and the scene.
    Profile.MULTI_PERSON_TAGS: AnswerLimits(body=1_500, field=60, items=60, answer=15_000),
    Profile.CUSTOM: AnswerLimits(body=4_000, field=300, items=20, answer=40_000),
}

#: Tag hints (:meth:`Instructions.with_tag_hints`): the most tags given, the longest tag kept,
#: and the longest hint line, in characters. A WD14 tagger's answer above its thresholds is
#: usually 10-40 tags; 60 bounds a low threshold's list, and the line stays a small part of
#: the prompt.
MAX_TAG_HINTS = 60
MAX_TAG_HINT_LENGTH = 50
MAX_TAG_HINT_LINE = 1_200

_TAG_HINT_LEAD = "Tags an image tagger saw (may be wrong; describe only what you can see): "


@dataclass(frozen=True)
class Instructions:
    """What to send for one profile.

    ``prompt`` is the text sent with each image. ``json_schema`` is a JSON Schema object for
    structured output (Gemini ``response_json_schema``) or None for a plain-text answer.
    ``field_order`` lists the schema's properties in caption order (empty for plain text).
    ``language`` is the code (:data:`LANGUAGES`) of the language the prompt asks for.
    """

    profile: Profile
    prompt: str
    json_schema: dict[str, Any] | None
    field_order: tuple[str, ...]
    language: str = DEFAULT_LANGUAGE

    @property
    def structured(self) -> bool:
        """True when the answer is a JSON object to assemble with :func:`assemble_structured`."""
        return self.json_schema is not None

    @property
    def limits(self) -> AnswerLimits:
        """How much of an answer is kept for this profile (:data:`ANSWER_LIMITS`)."""
        return ANSWER_LIMITS[self.profile]

    def with_tag_hints(self, tags: Sequence[str]) -> Instructions:
        """A copy whose prompt ends with one more line giving ``tags`` (what a tagger such as
        WD14 found in the image) as hints for a combined caption::

            Tags an image tagger saw (may be wrong; describe only what you can see): a, b, c

        Each tag is sanitised (:func:`sanitize_text`; line breaks, tabs and commas become
        spaces, whitespace runs one space, an underscore between letters or digits a space as
        in ``long_hair``, so ``^_^`` stays), cut to :data:`MAX_TAG_HINT_LENGTH` characters;
        empty tags and repeats (ignoring case) are dropped; the first
        :data:`MAX_TAG_HINTS` tags are given, fewer when the line would pass
        :data:`MAX_TAG_HINT_LINE` characters. ``self`` itself when no tag is left. The JSON
        schema, field order and language are unchanged.
        """
        hints = _tag_hints(tags)
        if not hints:
            return self
        line = _TAG_HINT_LEAD
        for count, tag in enumerate(hints):
            piece = tag if count == 0 else ", " + tag
            if len(line) + len(piece) > MAX_TAG_HINT_LINE:
                break
            line += piece
        return replace(self, prompt=self.prompt + "\n" + line,
                       json_schema=None if self.json_schema is None
                       else _copy_schema(self.json_schema))


def _tag_hints(tags: Sequence[str]) -> list[str]:
    hints: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        if not isinstance(raw, str):
            continue
        tag = sanitize_text(raw).replace("\n", " ").replace(",", " ")
        tag = re.sub(r"(?<=[^\W_])_(?=[^\W_])", " ", tag)
        tag = limit_length(" ".join(tag.split()), MAX_TAG_HINT_LENGTH)
        key = tag.casefold()
        if tag and key not in seen:
            seen.add(key)
            hints.append(tag)
            if len(hints) == MAX_TAG_HINTS:
                break
    return hints


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
#: Danbooru tags of a lecture-hall photo: ``no humans`` and ``scenery`` are Danbooru's tags for
#: a picture of a place without people.
_TAGS_EXAMPLE: dict[str, Any] = {
    "tags": ["no humans", "scenery", "indoors", "lecture hall", "tiered seating",
             "projection screen", "desk", "chair", "ceiling light", "fluorescent light"],
}
#: What a caption of the plain-text built-in profiles looks like (not shown to the model, so
#: that it does not copy the content).
_PARAGRAPH_EXAMPLE = (
    "A large lecture hall with tiered rows of wooden seats rising toward the back of the room. "
    "A wide projection screen hangs above a long desk at the front, facing the empty seats. "
    "Overhead fluorescent panels light the room evenly, and no daylight is visible. "
    "The walls are pale and bare, and the hall looks ready for a class."
)
_SHORT_EXAMPLE = (
    "a lecture hall with tiered wooden seating and a projection screen under fluorescent light"
)

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

_TAGS_PROMPT = f"""\
Tag this image with booru-style tags (as on Danbooru) for training an image model.
Answer with a JSON object with one field:
- tags: the tags, most important first: the main subject and how many there are, then \
appearance, clothing, pose and expression, then objects, setting, lighting, colours and \
composition.
Each tag is one short lowercase phrase of one to four words, written with spaces, not \
underscores (e.g. "long hair", "wooden floor", "from above"). No sentences, no duplicates, \
no rating or quality tags. Give 15 to 40 tags, only for what is visible.
Example: {json.dumps(_TAGS_EXAMPLE)}
{_NO_PREFIX_RULE}"""

_PARAGRAPH_PROMPT = f"""\
Describe this image in one paragraph of 3 to 5 complete sentences, as a detailed caption for \
training an image model on natural language (FLUX, SDXL).
Start with the main subject and the setting; then describe the important objects, any \
people with their clothing, pose and expression, the materials, colours and textures, the \
lighting (natural vs artificial, quality, direction), the composition and camera angle, and \
the atmosphere.
Be specific and objective: describe only what is visible, with no opinions or guesses, and \
do not begin with "This image shows" or "In this image".
Answer with the paragraph only, on one line, with no introduction, heading, list or quotes.
{_NO_PREFIX_RULE}"""

_SHORT_PROMPT = f"""\
Write a short caption of this image: one sentence of at most 20 words naming the main \
subject, the setting and the most notable detail.
Be specific and objective; describe only what is visible.
Answer with the sentence only, on one line, with no introduction and no quotes.
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

_TAGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "Booru-style tags, most important first.",
        },
    },
    "required": ["tags"],
    "additionalProperties": False,
}

#: The structured profiles: prompt, schema (its ``required`` list is the caption order).
_STRUCTURED: dict[Profile, tuple[str, dict[str, Any]]] = {
    Profile.SPACE: (_SPACE_PROMPT, _SPACE_SCHEMA),
    Profile.PERSON: (_PERSON_PROMPT, _PERSON_SCHEMA),
    Profile.TAGS: (_TAGS_PROMPT, _TAGS_SCHEMA),
}
#: The plain-text built-in profiles.
_PLAIN: dict[Profile, str] = {
    Profile.PARAGRAPH: _PARAGRAPH_PROMPT,
    Profile.SHORT: _SHORT_PROMPT,
    Profile.MULTI_PERSON: _SHORT_PROMPT,  # an image in which no person is found
    # Not sent: the WD14 tagger tags an image without people (captioning_people).
    Profile.MULTI_PERSON_TAGS: _SHORT_PROMPT,
}


def _language_rule(code: str, profile: Profile) -> str:
    english, native = LANGUAGES[code]
    name = f"{english} ({native})" if english != native else english
    if profile is Profile.TAGS:
        return (f"Write every tag in {name}, even though the example is in English; keep the "
                'JSON key "tags" as it is.')
    if profile in _STRUCTURED:
        return (f"Write the text of every field in {name}, even though the example is in "
                "English; keep the JSON keys exactly as given, in English.")
    return f"Write the caption in {name}."


def build_instructions(profile: Profile, custom_prompt: str = "", *,
                       language: str = DEFAULT_LANGUAGE) -> Instructions:
    """The prompt, JSON schema and field order for ``profile``, in ``language``.

    Structured output (a JSON schema): ``space``, ``person`` and ``tags`` (one field, a list of
    tags: the schema makes the model answer a list, not sentences or a numbered list, so each
    tag is cut and counted on its own by :data:`ANSWER_LIMITS` and repeats are dropped).
    Plain text: ``paragraph``, ``short`` and ``custom``. ``custom_prompt`` is used only by
    ``Profile.CUSTOM``; a one-line-answer rule is appended to it. ``language`` is a code of
    :data:`LANGUAGES` (see :func:`check_language`); for any language but English the prompt
    ends with a line asking for the caption in that language (structured profiles: the text
    of every field, the keys unchanged). Every prompt says not to write the trigger word or
    the ``photo of`` prefix. Raises :class:`InputError` when the custom prompt is empty or
    blank, or the language is unknown.
    """
    profile = Profile(profile)
    code = check_language(language)
    if profile in _STRUCTURED:
        prompt, schema = _STRUCTURED[profile]
        instructions = Instructions(profile, prompt, _copy_schema(schema),
                                    tuple(schema["required"]), code)
    elif profile in _PLAIN:
        instructions = Instructions(profile, _PLAIN[profile], None, (), code)
    else:
        text = custom_prompt.strip()
        if not text:
            raise InputError("The custom prompt is empty. Write the instructions for the model.")
        instructions = Instructions(profile, text + _CUSTOM_SUFFIX, None, (), code)
    if code != DEFAULT_LANGUAGE:
        instructions = replace(instructions, prompt=instructions.prompt + "\n"
                               + _language_rule(code, profile))
    return instructions


def example_caption_body(profile: Profile) -> str:
    """What a caption body of ``profile`` looks like: for the structured profiles, the example
    answer its prompt shows the model, assembled as a real answer is
    (:func:`assemble_structured`); for ``paragraph`` and ``short``, an example answer cleaned
    as a real one is. ``""`` for the custom profile, whose captions follow the user's own
    prompt."""
    profile = Profile(profile)
    examples = {Profile.SPACE: _SPACE_EXAMPLE, Profile.PERSON: _PERSON_EXAMPLE,
                Profile.TAGS: _TAGS_EXAMPLE}
    if profile in examples:
        return assemble_structured(examples[profile], build_instructions(profile))
    if profile is Profile.PARAGRAPH:
        return clean_caption(_PARAGRAPH_EXAMPLE, "", "", prose=True)
    if profile is Profile.SHORT:
        return clean_caption(_SHORT_EXAMPLE, "", "")
    if profile is Profile.MULTI_PERSON:
        return _MULTI_PERSON_EXAMPLE
    return ""


#: What a multi-person caption looks like (issue 13's example).
_MULTI_PERSON_EXAMPLE = (
    "sksA: A young woman with long brown hair in a blue dress and pearl necklace, smiling "
    "warmly at the camera.\n"
    "sksB: A middle-aged man with short grey hair in a black suit and red tie, arms crossed, "
    "serious.\n"
    "Scene: Modern office with floor-to-ceiling windows and minimalist white furniture.")


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


#: Where :func:`limit_length` may cut, best first: after a sentence (``prose`` only), before a
#: phrase separator (``", "`` or the CJK comma, enumeration comma, semicolon or full stop --
#: Chinese and Japanese put no spaces between words), before a space, before a line break.
_SENTENCE_CUT = re.compile(r"[.!?](?=\s)|[\u3002\uff01\uff1f]")
_CUT_GROUPS: tuple[tuple[str, ...], ...] = (
    (", ", "\uff0c", "\u3001", "\uff1b", "\u3002"), (" ",), ("\n",),
)
#: Removed from the end of a cut: spaces and ASCII and CJK punctuation.
_CUT_TRAILING = " \n,;:.-\u3000\uff0c\u3001\uff1b\uff1a\u3002"


def limit_length(text: str, limit: int, *, prose: bool = False) -> str:
    """``text`` cut to at most ``limit`` characters (code points), at the last ``", "`` (or CJK
    ``，`` ``、`` ``；`` ``。``) or else the last space in its second half (whole phrases or
    words), else exactly at ``limit`` (a CJK text without punctuation); trailing spaces and
    punctuation of the cut are removed. ``prose``: a cut after the last sentence end in the
    second half (``. `` ``! `` ``? `` ``。`` ``！`` ``？``, kept) is tried first. ``text`` itself
    when it is short enough."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    if prose:
        ends = [m.end() for m in _SENTENCE_CUT.finditer(head) if m.end() <= limit]
        if ends and ends[-1] >= limit // 2:
            return head[: ends[-1]].rstrip()
    for group in _CUT_GROUPS:
        at = max(head.rfind(separator) for separator in group)
        if at >= limit // 2:
            return head[:at].rstrip(_CUT_TRAILING)
    return text[:limit].rstrip()


# --- cleaning ---------------------------------------------------------------------------------

_QUOTE_PAIRS: dict[str, str] = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019",
                                "\u201e": "\u201c", "\u00ab": "\u00bb",
                                "\u300c": "\u300d", "\u300e": "\u300f"}  # 「」『』 (CJK)
_CLOSING_QUOTES = frozenset(_QUOTE_PAIRS.values()) | {"\u201d", "\u2019"}
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING_OR_BULLET = re.compile(r"^\s*(?:#{1,6}\s*|[-*+\u2022]\s+|>\s*)")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![\w])_{1,2}(?=\S)(.+?)(?<=\S)_{1,2}(?![\w])")
#: "Caption" and "description" (and "image description") in the languages of :data:`LANGUAGES`,
#: as a model writing in them starts an answer: removed like ``Caption:`` when a colon or dash
#: follows (or alone on the first line).
_LOCAL_LEAD_INS = "|".join([
    "bild(?:unterschrift|beschreibung)", "beschreibung",  # de
    "beschrijving", "bijschrift",  # nl
    "l\u00e9gende", "description\\s+de\\s+l['\u2019]image",  # fr
    "descripci\u00f3n", "leyenda", "descrizione", "didascalia", "descri\u00e7\u00e3o",
    "legenda",  # es, it, pt, pl
    "a\u00e7\u0131klama", "g\u00f6rsel\\s+a\u00e7\u0131klamas\u0131",  # tr
    "opis", "podpis",  # pl
    "\u043e\u043f\u0438\u0441\u0430\u043d\u0438\u0435",
    "\u043f\u043e\u0434\u043f\u0438\u0441\u044c",  # ru
    "\uc124\uba85", "\ucea1\uc158",  # ko
    "(?:\u56fe\u7247|\u56fe\u50cf)?(?:\u63cf\u8ff0|\u8bf4\u660e)",
    "\u6807\u9898",  # zh
    "(?:\u753b\u50cf\u306e)?\u8aac\u660e", "\u30ad\u30e3\u30d7\u30b7\u30e7\u30f3",  # ja
])
_LEAD_IN_CORE = r"""
    (?:(?:sure|okay|ok|certainly|of\s+course)[!,.]*\s+)?
    (?:
        here(?:'s|\u2019s|\s+is|\s+are)\s+
            (?:(?:a|an|the|your|my)\s+)?
            (?:(?:short|concise|brief|structured|detailed|possible|suggested|generated)\s+)*
            (?:caption|description)s?
            (?:\s+(?:for|of)\s+(?:the|this|your)\s+(?:image|photo|picture))?
      | (?:(?:image|photo)\s+)?(?:caption|description)
      | """ + _LOCAL_LEAD_INS + r"""
    )
"""
#: A colon (ASCII or fullwidth, as Chinese and Japanese write it) or a dash after a lead-in.
_LEAD_IN_MARK = r"[:\uff1a\-\u2013\u2014]"
_LEAD_IN_INLINE = re.compile(r"^" + _LEAD_IN_CORE + r"\s*" + _LEAD_IN_MARK + r"\s*",
                             re.I | re.X)
_LEAD_IN_LINE = re.compile(r"^" + _LEAD_IN_CORE + r"\s*" + _LEAD_IN_MARK + r"?\s*$",
                           re.I | re.X)
_PLACEHOLDERS = r"\[trigger(?:[_ ]word)?\]|<trigger(?:[_ ]word)?>"


def clean_caption(text: str, trigger: str, prefix: str, *, prose: bool = False) -> str:
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
       ending a line is dropped first. ``prose`` (paragraphs): line breaks become a space
       instead, none after a CJK full stop, and a line not ending a sentence gets a period
       (``。`` after Chinese or Japanese text).
    5. Whitespace runs become one space; spaces before a comma and repeated commas are removed.
    6. Repeated until nothing changes, at the start and end of the text:
       a lead-in such as ``Caption:``, ``Description:``, ``Here is a caption:``,
       ``Here's the caption for the image:`` (case-insensitive, ``Sure!`` allowed before) is
       removed (also ``Beschreibung:``, ``Açıklama:``, ``描述：`` and the like in the languages of
       :data:`LANGUAGES`); surrounding quotes (straight, curly, guillemets, ``「」``) are
       removed, and an unmatched quote at one end too; trailing periods, commas and semicolons
       are removed (ASCII and CJK; with ``prose`` the final period stays, as a paragraph's
       last sentence ends with one); a duplicated prefix at the
       start is removed: the rendered ``prefix``, ``a photo of <trigger>``, ``photo of
       [trigger]``/``[trigger_word]`` placeholders, ``<trigger>,`` or ``<trigger> `` alone
       (case-insensitive), with a following comma, colon or space.
    """
    lines = _markdown_free_lines(sanitize_text(text))
    joined = _join_prose(lines) if prose else _join_lines(lines)
    joined = re.sub(r"\s+", " ", joined)
    joined = re.sub(r"\s+,", ",", joined)
    joined = re.sub(r",(?:\s*,)+", ",", joined)
    return _strip_edges(joined, trigger, prefix, prose=prose)


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


#: Sentence ends after which a paragraph's next line follows directly (ASCII, CJK, ellipsis).
_SENTENCE_ENDS = ".!?\u2026\u3002\uff01\uff1f"
#: Chinese and Japanese script (kana, CJK ideographs): a line of it ends with "。", not ".".
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _join_prose(lines: list[str]) -> str:
    joined = ""
    for line in lines:
        if joined:
            if joined[-1] not in _SENTENCE_ENDS + ",;:\uff0c\uff1b\uff1a":
                joined += "\u3002" if _CJK.match(joined[-1]) else "."
            if joined[-1] not in "\u3002\uff01\uff1f":
                joined += " "
        joined += line
    return joined


#: Removed from the end of a caption (``prose``: the sentence ends stay).
_TRAILING = " .,;\u3000\uff0c\u3001\uff1b\u3002\uff0e"
_TRAILING_PROSE = " ,;\u3000\uff0c\u3001\uff1b"


def _strip_edges(text: str, trigger: str, prefix: str, *, prose: bool = False) -> str:
    prefix_patterns = _prefix_patterns(trigger, prefix)
    trailing = _TRAILING_PROSE if prose else _TRAILING
    previous = None
    while text != previous:
        previous = text
        text = text.strip()
        text = _LEAD_IN_INLINE.sub("", text, count=1)
        text = _strip_quotes(text)
        text = text.rstrip(trailing)
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
    empty pieces, missing fields and values of other types are skipped; for the tags profile
    a tag repeated (ignoring case) is kept once, where it first appears. Example (space
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
    if instructions.profile is Profile.TAGS:
        pieces = _unique(pieces)
    return ", ".join(pieces)


def _unique(pieces: list[str]) -> list[str]:
    """``pieces`` without repeats (ignoring case), first occurrences kept in order."""
    seen: set[str] = set()
    kept: list[str] = []
    for piece in pieces:
        if piece.casefold() not in seen:
            seen.add(piece.casefold())
            kept.append(piece)
    return kept


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
    fields, the raw text is cleaned instead (a model can ignore the requested format; for the
    tags profile, repeated ``", "``-separated tags are then dropped too). Plain instructions:
    :func:`clean_caption`, as prose (lines joined into sentences, the final period kept) for
    the paragraph profile. The duplicated-prefix rules of :func:`clean_caption` apply to the
    result in both cases, and the body is cut to ``limits.body`` characters
    (:func:`limit_length`; a paragraph after its last whole sentence that fits).
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
    prose = instructions.profile is Profile.PARAGRAPH
    body = clean_caption(limit_length(text, 2 * limits.body), trigger, prefix, prose=prose)
    if instructions.profile is Profile.TAGS:
        body = ", ".join(_unique(body.split(", ")))
    return _bounded(body, limits.body, prose=prose)


def _bounded(body: str, limit: int, *, prose: bool = False) -> str:
    if len(body) > limit:
        logger.info("Caption of %d characters cut to the limit of %d", len(body), limit)
        body = limit_length(body, limit, prose=prose)
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
