"""Fuzz and property tests (Hypothesis) of the text rules: the filter's query language, caption
cleaning, trigger words and the file names an export writes.

Every test is deterministic (``derandomize=True``: the examples are the same on every run for a
given Hypothesis version) and keeps no example database (``database=None``: a failure is not
replayed from an earlier run; the ``.hypothesis`` folder then holds only Hypothesis' cache of
the constants in the code, and ignores itself in git). The example counts keep the whole file
to a few seconds.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loracap.core.errors import ImageRejectedError, TriggerWordError
from loracap.core.exports.planner import safe_stem
from loracap.core.prompts import Profile, build_instructions, clean_caption, parse_answer
from loracap.core.query import MAX_NESTING, QueryItem, QuerySyntaxError, parse_query, tag_term
from loracap.core.trigger import (
    MAX_TRIGGER_LENGTH,
    render_prefix,
    suggest_trigger,
    validate_trigger,
)

FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

#: Every character but lone surrogates (which no caption, query or file name holds once read).
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)

#: Pieces of the query language, so that generated queries are mostly near-valid.
QUERY_PIECES = st.sampled_from([
    "(", ")", '"', '""', "-", " ", "  ", "|", ":", ">", "<", ">=", "<=", "=", "AND", "or", "Not",
    "tag:", "state:", "review:", "name:", "words", "edited", "manual", "approved", "lamp", "Lamp",
    "wooden tables", "*", "?", "[a]", "40", "x", "é", "\t", "\n", ",", "(red:1.2)",
])
QUERIES = st.one_of(st.lists(QUERY_PIECES, max_size=30).map("".join), ANY_TEXT)

ITEMS = [
    QueryItem("IMG_0001.jpg", "photo of t a hall, wooden tables, lamp", "edited", "approved",
              body="a hall, wooden tables, lamp"),
    QueryItem("dsc (1).png", "", "uncaptioned", "unreviewed"),
    QueryItem("é.webp", 'a 12" vinyl, (red:1.2)', "manual", "rejected"),
]

# ---------------------------------------------------------------------------------- query


@FUZZ
@given(QUERIES)
@example("(" * 400)
@example("-" * 400 + "a")
@example('tag:"')
def test_parse_query_raises_only_query_syntax_errors(text: str) -> None:
    try:
        query = parse_query(text)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert f"at position {exc.position}" in str(exc)
        return
    assert query.text == text
    assert parse_query(query.text) == query  # the text is the query: parsing it again is equal
    for item in ITEMS:
        assert query.matches(item) in (True, False)


@FUZZ
@given(st.integers(min_value=0, max_value=3 * MAX_NESTING), st.booleans())
def test_nesting_parses_exactly_up_to_the_limit(depth: int, use_not: bool) -> None:
    text = ("NOT " * depth + "lamp") if use_not else ("(" * depth + "lamp" + ")" * depth)
    if depth <= MAX_NESTING:
        assert parse_query(text).matches(ITEMS[0]) is (not use_not or depth % 2 == 0)
    else:
        with pytest.raises(QuerySyntaxError, match='Too many levels of "\\(" and NOT'):
            parse_query(text)


#: A tag as split_tags gives it: stripped, non-empty, without the separator's comma.
TAGS = ANY_TEXT.map(str.strip).filter(lambda tag: tag != "" and "," not in tag)


@FUZZ
@given(TAGS)
@example('12" vinyl')
@example("tag:odd")
@example("NOT")
def test_tag_term_round_trips_through_the_parser(tag: str) -> None:
    having = QueryItem("a.jpg", f"p {tag}, lamp", "edited", "unreviewed", body=f"{tag}, lamp")
    lacking = QueryItem("b.jpg", "p lamp", "edited", "unreviewed", body="lamp")
    found = parse_query(tag_term(tag))
    excluded = parse_query(tag_term(tag, exclude=True))
    assert found.matches(having) and not found.matches(lacking)
    assert excluded.matches(lacking) and not excluded.matches(having)


# ---------------------------------------------------------------------------------- captions

#: Model answers: any text, and text built from what answers really contain (markdown, quotes,
#: lead-ins, line breaks, control characters and escape sequences).
ANSWER_PIECES = st.sampled_from([
    "a hall", "wooden tables", ", ", ".", "\n", "\r\n", "\r", "\x85", "\u2028", "\t", "  ",
    "**", "`", "```", "# ", "- ", "> ", "_x_", '"', "\u201c", "\u201d", "\u00ab", "Caption:",
    "Here is a caption:", "Sure!", "photo of ", "t", "[trigger]", "\x00", "\x1b[31m", "\x1b]0;x\x07",
    "\x7f", "\x9b", "\u200b", "\ufeff", "é", "e\u0301",
])
ANSWERS = st.one_of(st.lists(ANSWER_PIECES, max_size=25).map("".join), ANY_TEXT)

#: What a caption body may never contain: control characters (C0, DEL, C1) and line breaks.
_FORBIDDEN_IN_BODY = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@FUZZ
@given(ANSWERS)
@example("line one\nline two\r\nline three\x85four\u2028five")
@example("\x1b[31mred\x1b[0m\x00 hall")
def test_clean_caption_is_one_line_without_control_characters(answer: str) -> None:
    body = clean_caption(answer, "t", render_prefix("photo of {trigger} ", "t"))
    assert not _FORBIDDEN_IN_BODY.search(body), repr(body)
    assert body == body.strip()


@FUZZ
@given(ANSWERS)
def test_clean_caption_is_never_much_longer_than_the_answer(answer: str) -> None:
    body = clean_caption(answer, "t", "photo of t ")
    # Each line break may become ", " (one character more); nothing else adds text.
    assert len(body) <= len(answer) + len(answer.splitlines()), (answer, body)


INSTRUCTIONS = {profile: build_instructions(profile, "Describe the photo.") for profile in Profile}


@st.composite
def model_answers(draw: st.DrawFn, profile: Profile) -> str:
    """What a model may answer: free text, text repeated past the limits, or (for the
    structured profiles) a JSON object of the profile's fields holding any values."""
    kind = draw(st.sampled_from(["text", "long", "json"]))
    if kind == "text":
        return draw(ANSWERS)
    if kind == "long":
        return draw(st.sampled_from(["wooden tables, ", "a\n", "x", "\x1b[0m, "])) * draw(
            st.integers(min_value=100, max_value=30_000))
    fields = INSTRUCTIONS[profile].field_order or ("caption",)
    value = st.one_of(ANSWERS, st.lists(ANSWERS, max_size=30), st.integers(), st.floats(),
                      st.none(), st.booleans())
    data = draw(st.dictionaries(st.sampled_from(fields), value))
    return json.dumps(data, ensure_ascii=draw(st.booleans()))


@settings(FUZZ, max_examples=100)
@given(st.data(), st.sampled_from(list(Profile)))
def test_parse_answer_is_sanitised_and_bounded(data: st.DataObject, profile: Profile) -> None:
    instructions = INSTRUCTIONS[profile]
    limits = instructions.limits
    answer = data.draw(model_answers(profile))
    try:
        body = parse_answer(answer, instructions, "t", "photo of t ")
    except ImageRejectedError:
        assert len(answer) > limits.answer  # only an answer too long to be a caption fails
        return
    assert len(body) <= limits.body
    assert not _FORBIDDEN_IN_BODY.search(body), repr(body)


# ---------------------------------------------------------------------------------- triggers

_TRIGGER_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")


def _is_trigger(text: str) -> bool:
    """The documented language, written out: 1-64 characters of a-z, 0-9 and _, a letter
    first (:mod:`loracap.core.trigger`)."""
    return (0 < len(text) <= MAX_TRIGGER_LENGTH and text[0] in string.ascii_lowercase
            and set(text) <= _TRIGGER_CHARS)


TRIGGER_LIKE = st.one_of(
    st.from_regex(r"[a-z_0-9][a-z0-9_]{0,70}", fullmatch=True),
    st.text(st.sampled_from("abzAZ09_ -.é\u0131\u212a\n"), max_size=70),
    ANY_TEXT,
)


@FUZZ
@given(TRIGGER_LIKE)
@example("a" * MAX_TRIGGER_LENGTH)
@example("a" * (MAX_TRIGGER_LENGTH + 1))
@example("\u212a")  # KELVIN SIGN: lowercases to ASCII "k"
@example("ide_main_hall\n")
@example("a_")  # valid as it is: its own suggestion, not "a"
def test_validate_trigger_accepts_exactly_its_language(text: str) -> None:
    if _is_trigger(text):
        assert validate_trigger(text) == text
        assert suggest_trigger(text) == text
        return
    with pytest.raises(TriggerWordError) as info:
        validate_trigger(text)
    suggestion = info.value.suggestion
    assert suggestion == suggest_trigger(text)
    if suggestion:
        assert validate_trigger(suggestion) == suggestion
        assert f'Try "{suggestion}".' in str(info.value)


@FUZZ
@given(ANY_TEXT)
@example("123abc")
@example("___")
@example("Ǆ ǅ ǆ ﬁ ẞ")
def test_suggest_trigger_always_validates_when_not_empty(text: str) -> None:
    suggestion = suggest_trigger(text)
    assert suggestion == "" or _is_trigger(suggestion)
    assert suggest_trigger(suggestion) == suggestion  # already valid: kept as it is


# ---------------------------------------------------------------------------------- file names

_WINDOWS_RESERVED = set('<>:"/\\|?*')
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                    *(f"lpt{i}" for i in range(1, 10))}

STEMS = st.one_of(
    ANY_TEXT,
    st.lists(st.sampled_from(["..", ".", "/", "\\", "a", "CON", "nul", "Com1", "lpt9", " ", ":",
                              "C:", "\x00", "\x1f", "\x7f", "e\u0301", "\u212b", "|", "*", "?"]),
             max_size=8).map("".join),
)


@FUZZ
@given(STEMS)
@example("..")
@example("a\\..\\..\\evil")
@example("../../etc/passwd")
@example("CON")
@example("e\u0301")
def test_safe_stem_gives_a_name_every_system_accepts(stem: str) -> None:
    name = safe_stem(stem)
    assert name, "empty"
    assert name not in (".", "..") and set(name) != {"."}
    assert not _WINDOWS_RESERVED & set(name), name
    # C0 controls and DEL; C1 controls (U+0080-U+009F) are not removed yet: see below.
    assert not re.search(r"[\x00-\x1f\x7f]", name), repr(name)
    assert not name.endswith((".", " ")), name
    assert name.casefold() not in _WINDOWS_DEVICES, name
    assert unicodedata.is_normalized("NFC", name), repr(name)
    assert safe_stem(name) == name  # a safe name stays as it is


@pytest.mark.parametrize("stem", ["\x80", "a\x85b", "\x9f", "nul.tar", "Con .x", "COM\u00b9",
                                  "lpt\u00b2", "photo\u202egpj.exe"])
def test_safe_stem_closes_the_gaps_the_fuzz_test_found(stem: str) -> None:
    name = safe_stem(stem)
    assert not any(unicodedata.category(ch) == "Cc" for ch in name), repr(name)
    device = name.split(".")[0].rstrip(" ").casefold()
    device = device.translate(str.maketrans("\u00b9\u00b2\u00b3", "123"))
    assert device not in _WINDOWS_DEVICES, name
    assert "\u202e" not in name  # a right-to-left override would make it read as another name
