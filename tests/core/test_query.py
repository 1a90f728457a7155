"""The filter's query language: every field, combining, precedence and error positions."""

from __future__ import annotations

import pytest

from loracap.core.errors import InputError
from loracap.core.query import (
    FIELDS,
    MAX_NESTING,
    REVIEWS,
    STATES,
    QueryItem,
    QuerySyntaxError,
    parse_query,
    tag_term,
)

ITEMS: dict[str, QueryItem] = {
    "hall": QueryItem(
        "IMG_0001.jpg", "photo of ide_hall a hall, wooden tables, lamp", "edited", "approved",
        body="a hall, wooden tables, lamp",
    ),
    "kitchen": QueryItem(
        "IMG_0002.JPG", "photo of ide_hall a kitchen, (red:1.2), Lamp", "generated", "unreviewed",
        body="a kitchen, (red:1.2), Lamp",
    ),
    "sentence": QueryItem(
        "dsc_7.png",
        "A long quiet corridor with two words painted on the wall and a lamp at the end",
        "manual", "rejected",
    ),
    "empty": QueryItem("scan.tif", "", "uncaptioned", "unreviewed"),
    "broken": QueryItem("broken.jpg", "", "invalid", "unreviewed"),
    "gone": QueryItem("IMG_9.jpg", "", "missing", "unreviewed"),
    "failed": QueryItem("x.webp", "", "failed", "unreviewed"),
    "imported": QueryItem("IMG_3.png", "wooden tables, chair", "imported", "approved"),
}


def matching(query: str, separator: str = ", ") -> list[str]:
    parsed = parse_query(query, separator)
    return [key for key, item in ITEMS.items() if parsed.matches(item)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # plain words and phrases: case-insensitive substring of the full caption
        ("lamp", ["hall", "kitchen", "sentence"]),
        ("LAMP", ["hall", "kitchen", "sentence"]),
        ("ide_hall", ["hall", "kitchen"]),
        ('"two words"', ["sentence"]),
        ('"words two"', []),
        ("wood tab", ["hall", "imported"]),
        ('"wooden tables, lamp"', ["hall"]),
        ('"(red:1.2)"', ["kitchen"]),  # quoted: parentheses and colon are plain text
    ],
)
def test_text_terms(query: str, expected: list[str]) -> None:
    assert matching(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tag:lamp", ["hall"]),
        ("tag:Lamp", ["kitchen"]),
        ('tag:"wooden tables"', ["hall", "imported"]),
        ("tag:wooden", []),
        ('tag:"(red:1.2)"', ["kitchen"]),
        ('tag:"a hall"', ["hall"]),  # the body is split, not the prefixed caption
        ("tag:chair", ["imported"]),  # no body: the caption is split
        ("-tag:lamp", ["kitchen", "sentence", "empty", "broken", "gone", "failed", "imported"]),
        ("TAG:lamp", ["hall"]),
    ],
)
def test_tag_terms(query: str, expected: list[str]) -> None:
    assert matching(query) == expected


def test_tag_terms_use_the_separator() -> None:
    item = QueryItem("a.jpg", "red | wooden tables", "manual", "unreviewed")
    assert parse_query('tag:"wooden tables"', " | ").matches(item)
    assert not parse_query('tag:"wooden tables"').matches(item)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state:edited", ["hall"]),
        ("state:generated", ["kitchen"]),
        ("state:manual", ["sentence"]),
        ("state:imported", ["imported"]),
        ("state:failed", ["failed"]),
        ("state:uncaptioned", ["empty"]),
        ("state:invalid", ["broken"]),
        ("state:missing", ["gone"]),
        ("state:edited|manual|IMPORTED", ["hall", "sentence", "imported"]),
        ('state:"edited | manual"', ["hall", "sentence"]),
        ("review:approved", ["hall", "imported"]),
        ("review:rejected", ["sentence"]),
        ("review:approved|rejected", ["hall", "sentence", "imported"]),
        ("name:IMG_*", ["hall", "kitchen", "gone", "imported"]),
        ("name:img_000?.jpg", ["hall", "kitchen"]),
        ("name:*.png", ["sentence", "imported"]),
        ("name:IMG", []),
        ('name:"dsc_[0-9].png"', ["sentence"]),
    ],
)
def test_state_review_name(query: str, expected: list[str]) -> None:
    assert matching(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("words>10", ["sentence"]),
        ("words<1", ["empty", "broken", "gone", "failed"]),
        ("words=0", ["empty", "broken", "gone", "failed"]),
        ("words>=8", ["hall", "sentence"]),
        ("words<=3", ["empty", "broken", "gone", "failed", "imported"]),
        ("words=3", ["imported"]),
        ("words>3 words<8", ["kitchen"]),
    ],
)
def test_words(query: str, expected: list[str]) -> None:
    # hall: 8 words, kitchen: 7, sentence: 17, imported: 3
    assert matching(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lamp state:edited", ["hall"]),
        ("lamp AND state:edited", ["hall"]),
        ("lamp and state:edited", ["hall"]),
        ("state:edited OR state:manual", ["hall", "sentence"]),
        ("state:edited or state:manual", ["hall", "sentence"]),
        ("NOT lamp", ["empty", "broken", "gone", "failed", "imported"]),
        ("not lamp review:unreviewed", ["empty", "broken", "gone", "failed"]),
        ("-lamp -review:unreviewed", ["imported"]),
        ("-(lamp OR chair)", ["empty", "broken", "gone", "failed"]),
        ("NOT NOT state:edited", ["hall"]),
        ("- lamp", []),  # a lone "-" is an ordinary word
        # precedence: AND binds tighter than OR ...
        ("state:manual OR lamp review:approved", ["hall", "sentence"]),
        ("(state:manual OR lamp) review:approved", ["hall"]),
        ("review:approved state:imported OR state:generated", ["kitchen", "imported"]),
        ("review:approved (state:imported OR state:generated)", ["imported"]),
        # ... and NOT tighter than AND
        ("NOT state:edited lamp", ["kitchen", "sentence"]),
        ("NOT (state:edited lamp)", ["kitchen", "sentence", "empty", "broken", "gone", "failed",
                                     "imported"]),
        ("NOT state:edited OR lamp", list(ITEMS)),
        ("((tag:lamp))", ["hall"]),
        ("(tag:lamp)OR(tag:chair)", ["hall", "imported"]),
        ('"or"', ["sentence"]),  # a quoted keyword is a word: "corridor"
        ('"AND" corridor', ["sentence"]),
    ],
)
def test_combining(query: str, expected: list[str]) -> None:
    assert matching(query) == expected


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_blank_query_matches_everything(query: str) -> None:
    parsed = parse_query(query)
    assert parsed.matches_everything
    assert all(parsed.matches(item) for item in ITEMS.values())


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("tag:", 'Expected a value after "tag:" at position 4', 4),
        ("lamp tag:  ", 'Expected a value after "tag:" at position 9', 9),
        ("(state:edited", 'Expected ")" at position 13 to close the "(" at position 0', 13),
        ("lamp (tag:a OR b", 'Expected ")" at position 16 to close the "(" at position 5', 16),
        ("words>x", 'Expected a whole number after "words>" at position 6', 6),
        ("words>=", 'Expected a whole number after "words>=" at position 7', 7),
        ("words:3", 'Expected a comparison (>, <, >=, <=, =) after "words" at position 5,'
                    " e.g. words>40", 5),
        ("(red:1.2)",
         'Unknown field "red" at position 1 (known: tag, state, review, name, words, qa, qa_score, qa_tag)', 1),
        ("tag>3", 'Field "tag" takes ":" followed by a value, not ">" at position 3', 3),
        ("foo:bar",
         'Unknown field "foo" at position 0 (known: tag, state, review, name, words, qa, qa_score, qa_tag)', 0),
        ("lamp stat:edited",
         'Unknown field "stat" at position 5 (known: tag, state, review, name, words, qa, qa_score, qa_tag)', 5),
        ("state:nope", 'Unknown state "nope" at position 6 (known: generated, edited, manual,'
                       " imported, failed, uncaptioned, invalid, missing)", 6),
        ("state:edited|edit", 'Unknown state "edit" at position 13 (known: generated, edited,'
                              " manual, imported, failed, uncaptioned, invalid, missing)", 13),
        ("review:ok", 'Unknown review "ok" at position 7 (known: approved, rejected,'
                      " unreviewed)", 7),
        ("a OR", 'Expected a search term after "OR" at position 4', 4),
        ("a AND AND b", 'Expected a search term after "AND" at position 6, found "AND"', 6),
        ("NOT", 'Expected a search term after "NOT" at position 3', 3),
        ("()", 'Expected a search term after "(" at position 1, found ")"', 1),
        ("OR a", 'Expected a search term at position 0, found "OR"', 0),
        ("a )", 'Unexpected ")" at position 2', 2),
        ('lamp "two words', 'Unclosed quote at position 5: add the closing "', 5),
        ('tag:"lamp', 'Unclosed quote at position 4: add the closing "', 4),
    ],
)
def test_syntax_errors(query: str, message: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert str(info.value) == message
    assert info.value.position == position
    assert isinstance(info.value, InputError)
    assert info.value.exit_code == 2


def test_known_values_match_the_documentation() -> None:
    import loracap.core.query as module

    doc = module.__doc__ or ""
    for name in (*STATES, *REVIEWS):
        assert name in doc
    for name in FIELDS:
        assert f"``{name}" in doc


def test_plain_words_also_find_file_names() -> None:
    item = QueryItem(file_name="IMG_0003.jpg", caption="photo of hall lobby", state="generated",
                     review="unreviewed")
    assert parse_query("img_0003").matches(item)
    assert parse_query("lobby").matches(item)
    assert not parse_query('"lobby IMG"').matches(item)  # a phrase never spans both


@pytest.mark.parametrize("tag", [
    "lamp", "wooden tables", '12" vinyl', "(red:1.2)", "or", "NOT", "a-b", "x|y", 'say ""hi""',
    "tag:odd", "ünïcode",
])
def test_tag_term_finds_exactly_the_tag(tag: str) -> None:
    having = QueryItem("a.jpg", f"photo of t {tag}, lamp shade", "edited", "unreviewed",
                       body=f"{tag}, lamp shade")
    lacking = QueryItem("b.jpg", "photo of t lamp shade", "edited", "unreviewed",
                        body="lamp shade")
    assert parse_query(tag_term(tag)).matches(having)
    assert not parse_query(tag_term(tag)).matches(lacking)
    assert not parse_query(tag_term(tag, exclude=True)).matches(having)
    assert parse_query(tag_term(tag, exclude=True)).matches(lacking)


def test_doubled_quote_inside_quotes_is_one_quote() -> None:
    item = QueryItem("a.jpg", 'a 12" vinyl record', "edited", "unreviewed")
    assert parse_query('"12"" vinyl"').matches(item)
    with pytest.raises(QuerySyntaxError, match="Unclosed quote at position 0"):
        parse_query('"12"" vinyl')


@pytest.mark.parametrize(
    ("query", "position"),
    [
        ("(" * 400, 50),  # raised RecursionError: the window said "Something went wrong"
        ("(" * 51 + "lamp" + ")" * 51, 50),
        ("NOT " * 60 + "lamp", 200),
        ("-" * 400 + "lamp", 50),
        ("(NOT " * 30 + "lamp" + ")" * 30, 125),  # "(" and NOT count together
        ("lamp OR " + "(" * 1000 + "x", 58),
    ],
)
def test_nesting_limit_is_a_syntax_error_with_its_position(query: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert info.value.position == position
    assert str(info.value) == (f'Too many levels of "(" and NOT at position {position}'
                               f" (at most {MAX_NESTING} inside each other)")


def test_nesting_up_to_the_limit_parses_and_matches() -> None:
    assert MAX_NESTING == 50
    deepest = "(" * 50 + "tag:lamp" + ")" * 50
    assert matching(deepest) == ["hall"]
    assert matching("NOT " * 50 + "lamp") == ["hall", "kitchen", "sentence"]  # even: lamp
    assert matching("(NOT " * 25 + "lamp" + ")" * 25) == ["empty", "broken", "gone", "failed",
                                                            "imported"]  # odd: not lamp
    # Siblings do not add up: only levels inside each other count.
    assert matching(" OR ".join(["(" * 50 + "chair" + ")" * 50] * 100)) == ["imported"]


def test_question_answer_terms() -> None:
    from loracap.core.query import QueryItem, parse_query

    none = QueryItem("a.jpg", "", "uncaptioned", "unreviewed")
    open_pairs = QueryItem("b.jpg", "", "generated", "unreviewed", qa_total=3, qa_confirmed=1,
                           qa_best_score=4, qa_tags=frozenset({"hard case"}))
    done = QueryItem("c.jpg", "", "generated", "approved", qa_total=2, qa_confirmed=2,
                     qa_best_score=2)

    def names(text: str) -> list[str]:
        query = parse_query(text)
        return [item.file_name for item in (none, open_pairs, done) if query.matches(item)]

    assert names("qa:none") == ["a.jpg"]
    assert names("qa:confirmed") == ["c.jpg"]
    assert names("qa:unconfirmed|none") == ["a.jpg", "b.jpg"]
    assert names("qa_score>=4") == ["b.jpg"]
    assert names("qa_score<3") == ["c.jpg"]
    assert names('qa_tag:"hard case"') == ["b.jpg"]
    assert names("-qa:none qa_score>1") == ["b.jpg", "c.jpg"]
    for bad, position in (("qa:done", 3), ("qa_score:4", 8), ("qa_score>x", 9)):
        with pytest.raises(QuerySyntaxError) as caught:
            parse_query(bad)
        assert caught.value.position == position
