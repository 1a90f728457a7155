"""Trigger words, their error messages and suggestions, and the caption prefix."""

from __future__ import annotations

import pytest

from loracap.core.errors import InputError, TriggerWordError
from loracap.core.trigger import (
    DEFAULT_PREFIX_TEMPLATE,
    TRIGGER_RE,
    find_foreign_prefix,
    foreign_prefix_note,
    full_caption,
    render_prefix,
    strip_foreign_prefix,
    strip_prefix,
    suggest_trigger,
    validate_prefix_template,
    validate_trigger,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IDE Main-Hall", "ide_main_hall"),
        ("Café  Ümlaut!", "cafe_umlaut"),
        ("3D room", "x3d_room"),
        ("123abc", "x123abc"),  # the digits are kept, a letter goes in front
        ("2024 Trip", "x2024_trip"),
        ("_42", "x42"),
        ("__x__", "x"),
        ("ide_main_hall", "ide_main_hall"),
        ("ﬁsh", "fish"),  # NFKD splits the ligature
        ("12345", "x12345"),
        ("1" * 70, "x" + "1" * 63),
        ("日本", ""),
        ("", ""),
        ("a" * 70, "a" * 64),
        ("a" * 63 + " b", "a" * 63),  # cut at 64, then the trailing "_" goes
    ],
)
def test_suggest_trigger(text: str, expected: str) -> None:
    suggestion = suggest_trigger(text)
    assert suggestion == expected
    if suggestion:
        assert TRIGGER_RE.fullmatch(suggestion)


@pytest.mark.parametrize("word", ["ide_main_hall", "a", "x1", "sks_person_2", "a" * 64, "a__b_"])
def test_validate_trigger_accepts(word: str) -> None:
    assert validate_trigger(word) == word


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        (
            "IDE Main-Hall",
            'Trigger word "IDE Main-Hall" has uppercase letters, spaces and "-"; use lowercase '
            'letters, digits and underscores, starting with a letter. Try "ide_main_hall".',
            "ide_main_hall",
        ),
        (
            "",
            "Trigger word is empty; use lowercase letters, digits and underscores, starting "
            "with a letter.",
            "",
        ),
        (
            "3d_room",
            'Trigger word "3d_room" starts with a digit; use lowercase letters, digits and '
            'underscores, starting with a letter. Try "x3d_room".',
            "x3d_room",
        ),
        (
            "_hall",
            'Trigger word "_hall" starts with an underscore; use lowercase letters, digits and '
            'underscores, starting with a letter. Try "hall".',
            "hall",
        ),
        (
            "café!",
            'Trigger word "café!" has "é" and "!"; use lowercase letters, digits and '
            'underscores, starting with a letter. Try "cafe".',
            "cafe",
        ),
        (
            "9 Lives",
            'Trigger word "9 Lives" starts with a digit and has uppercase letters and spaces; '
            'use lowercase letters, digits and underscores, starting with a letter. Try "x9_lives".',
            "x9_lives",
        ),
        (
            "tab\there",
            'Trigger word "tab\there" has U+0009; use lowercase letters, digits and '
            'underscores, starting with a letter. Try "tab_here".',
            "tab_here",
        ),
        (
            "123abc",
            'Trigger word "123abc" starts with a digit; use lowercase letters, digits and '
            'underscores, starting with a letter. Try "x123abc".',
            "x123abc",
        ),
        (
            "!!!",
            'Trigger word "!!!" has "!"; use lowercase letters, digits and underscores, '
            "starting with a letter.",
            "",
        ),
    ],
)
def test_validate_trigger_rejects_with_reasons(text: str, message: str, suggestion: str) -> None:
    with pytest.raises(TriggerWordError) as caught:
        validate_trigger(text)
    assert str(caught.value) == message
    assert caught.value.suggestion == suggestion
    assert isinstance(caught.value, InputError)


def test_validate_trigger_rejects_too_long() -> None:
    word = "a" * 65
    with pytest.raises(TriggerWordError) as caught:
        validate_trigger(word)
    assert "is 65 characters long (at most 64)" in str(caught.value)
    assert caught.value.suggestion == "a" * 64


def test_validate_trigger_rejects_surrounding_spaces() -> None:
    with pytest.raises(TriggerWordError) as caught:
        validate_trigger(" hall ")
    assert "has spaces" in str(caught.value)
    assert caught.value.suggestion == "hall"


def test_validate_trigger_lists_many_characters_briefly() -> None:
    with pytest.raises(TriggerWordError) as caught:
        validate_trigger("a!@#$%^&*()")
    assert '"!", "@", "#", "$", "%", "^" and 4 more characters' in str(caught.value)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (DEFAULT_PREFIX_TEMPLATE, "photo of ide_main_hall "),
        ("{style} [{trigger}]", "{style} [ide_main_hall]"),
        ("{{trigger}} {trigger}", "{ide_main_hall} ide_main_hall"),
        ("{0} {} {trigger", "{0} {} {trigger"),
        ("no placeholder", "no placeholder"),
    ],
)
def test_render_prefix_substitutes_only_trigger(template: str, expected: str) -> None:
    assert render_prefix(template, "ide_main_hall") == expected


@pytest.mark.parametrize("template", ["photo of\n{trigger}", "a\r\nb", "x\u2028y"])
def test_validate_prefix_template_rejects_line_breaks(template: str) -> None:
    with pytest.raises(InputError, match="line break"):
        validate_prefix_template(template)


def test_validate_prefix_template_accepts_single_line() -> None:
    assert validate_prefix_template("a {b} {trigger}, ") == "a {b} {trigger}, "


@pytest.mark.parametrize(
    ("template", "body", "expected"),
    [
        (DEFAULT_PREFIX_TEMPLATE, "a wide hall", "photo of sks a wide hall"),
        (DEFAULT_PREFIX_TEMPLATE, "  a wide hall \n", "photo of sks a wide hall"),
        ("{trigger},", "a wide hall", "sks, a wide hall"),
        ("{trigger}", "a wide hall", "sks a wide hall"),
        ("", "a wide hall", "a wide hall"),
        (DEFAULT_PREFIX_TEMPLATE, "", ""),
        (DEFAULT_PREFIX_TEMPLATE, "   \n ", ""),
    ],
)
def test_full_caption(template: str, body: str, expected: str) -> None:
    assert full_caption(template, "sks", body) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("photo of ide_main_hall a wide hall", "a wide hall"),
        ("Photo  OF\tIDE_main_hall,  a wide hall ", "a wide hall"),
        ("  photo of ide_main_hall", ""),
        ("photo of ide_main_hall2 in the hall", "photo of ide_main_hall2 in the hall"),
        ("a photo of ide_main_hall", "a photo of ide_main_hall"),
        ("a wide hall", "a wide hall"),
    ],
)
def test_strip_prefix(text: str, expected: str) -> None:
    assert strip_prefix(text, DEFAULT_PREFIX_TEMPLATE, "ide_main_hall") == expected


def test_strip_prefix_with_punctuation_template() -> None:
    assert strip_prefix("[SKS] {x} a dog", "[{trigger}] {x} ", "sks") == "a dog"
    assert strip_prefix("[sks]a dog", "[{trigger}]", "sks") == "a dog"


def test_strip_prefix_blank_template_keeps_text() -> None:
    assert strip_prefix("  keep me ", "", "sks") == "  keep me "


def test_strip_prefix_round_trips_full_caption() -> None:
    caption = full_caption(DEFAULT_PREFIX_TEMPLATE, "sks", "a dog on a sofa")
    assert strip_prefix(caption, DEFAULT_PREFIX_TEMPLATE, "sks") == "a dog on a sofa"


# ---------------------------------------------------------------------- foreign prefixes

@pytest.mark.parametrize(
    ("text", "found", "rest"),
    [
        ("photo of other_name a hall, tall windows", "photo of other_name",
         "a hall, tall windows"),
        ("Photo  of\tOther_Name, a hall", "Photo of Other_Name", "a hall"),  # case, spaces
        ("  photo of hall2: a hall", "photo of hall2", "a hall"),
        ("photo of TOK a hall", "photo of TOK", "a hall"),  # Replicate's default trigger
        ("photo of sks dog", "photo of sks", "dog"),
        ("photo of [trigger] a hall", "photo of [trigger]", "a hall"),
        ("photo of johndoe a man", "photo of johndoe", "a man"),  # a label before "a"
        ("photo of ide_main_hall2 a hall", "photo of ide_main_hall2", "a hall"),
        # ordinary captions that happen to start with "photo of"
        ("photo of a hall", None, None),
        ("photo of the lobby, chairs", None, None),
        ("photo of people in a hall", None, None),
        ("photo of johndoe, smiling", None, None),
        # the project's own prefix is not foreign (the check says prefix_twice)
        ("photo of ide_main_hall a hall", None, None),
        ("PHOTO OF IDE_MAIN_HALL a hall", None, None),
        # not at the start, not a whole word, not trigger-shaped
        ("a photo of other_name", None, None),
        ("photo of other_namé a hall", None, None),
        ("photo of 3d_room a hall", None, None),
        ("photos of other_name a hall", None, None),
    ],
)
def test_foreign_prefix_default_template(text: str, found: str | None,
                                         rest: str | None) -> None:
    template = DEFAULT_PREFIX_TEMPLATE
    assert find_foreign_prefix(text, template, "ide_main_hall") == found
    expected = text if rest is None else rest
    assert strip_foreign_prefix(text, template, "ide_main_hall") == expected


def test_foreign_prefix_custom_template() -> None:
    template = "[{trigger}] style, "
    assert find_foreign_prefix("[other_x] Style,  a hall", template, "hall") == "[other_x] Style"
    assert strip_foreign_prefix("[other_x] Style,  a hall", template, "hall") == "a hall"
    assert find_foreign_prefix("[hall] style, a hall", template, "hall") is None  # own prefix
    assert find_foreign_prefix("[other] style, a hall", template, "hall") is None  # a word
    # the token repeated in the template must be the same token
    assert find_foreign_prefix("x_y, x_y a", "{trigger}, {trigger} ", "me") == "x_y, x_y"
    assert find_foreign_prefix("x_y, z_z a", "{trigger}, {trigger} ", "me") is None


def test_foreign_prefix_template_that_is_the_trigger_alone() -> None:
    assert find_foreign_prefix("other_name, a hall", "{trigger}, ", "hall") == "other_name"
    assert strip_foreign_prefix("other_name, a hall", "{trigger}, ", "hall") == "a hall"
    assert find_foreign_prefix("hall, a hall", "{trigger}, ", "hall") is None


@pytest.mark.parametrize("template", ["photo of ", "", "   "])
def test_no_foreign_prefix_without_trigger_in_template(template: str) -> None:
    text = "photo of other_name a hall"
    assert find_foreign_prefix(text, template, "hall") is None
    assert strip_foreign_prefix(text, template, "hall") == text


def test_strip_foreign_prefix_leaves_the_own_prefix_to_strip_prefix() -> None:
    text = "photo of ide_main_hall photo of other_name, a hall"
    body = strip_prefix(text, DEFAULT_PREFIX_TEMPLATE, "ide_main_hall")
    assert strip_foreign_prefix(body, DEFAULT_PREFIX_TEMPLATE, "ide_main_hall") == "a hall"


def test_foreign_prefix_note_counts_imported_captions() -> None:
    sidecars = ["photo of other_name a hall", "Photo of Other_Name, a lobby",
                "photo of ide_main_hall photo of other_name a door", "photo of TOK a stair",
                "photo of a hall", "a hall"]
    note = foreign_prefix_note(sidecars, DEFAULT_PREFIX_TEMPLATE, "ide_main_hall")
    assert note == ("4 imported captions start with another trigger word's prefix "
                    "(photo of other_name, photo of TOK)")
    assert foreign_prefix_note(sidecars[:1], DEFAULT_PREFIX_TEMPLATE, "ide_main_hall") == (
        "1 imported caption starts with another trigger word's prefix (photo of other_name)")
    # the trigger word decides what is foreign
    assert foreign_prefix_note(sidecars[:1], DEFAULT_PREFIX_TEMPLATE, "other_name") == ""
    assert foreign_prefix_note(sidecars[4:], DEFAULT_PREFIX_TEMPLATE, "ide_main_hall") == ""
