"""Trigger words, their error messages and suggestions, and the caption prefix."""

from __future__ import annotations

import pytest

from loracap.core.errors import InputError, TriggerWordError
from loracap.core.trigger import (
    DEFAULT_PREFIX_TEMPLATE,
    TRIGGER_RE,
    full_caption,
    render_prefix,
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
