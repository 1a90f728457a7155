"""The escaping rule of tab-separated output lines and the JSON of ``--json``
(:func:`loracap.core.text.tsv_field`, :func:`tsv_unescape`, :func:`json_text`)."""

from __future__ import annotations

import json

import pytest

from loracap.core.text import json_text, tsv_field, tsv_unescape

AWKWARD = [
    "", "plain name.jpg", "tab\there", "line\nbreak", "cr\rlf\r\n", "back\\slash",
    "\\t is not a tab", "esc\x1b[31mred", "nul\x00", "del\x7f", "nel\x85",
    "line\u2028separator", "caf\udce9.jpg", "café, 東京", "trailing\\",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_a_field_is_one_line_without_tabs_and_reads_back_exactly(text: str) -> None:
    field = tsv_field(text)
    assert "\t" not in field and len(field.splitlines()) <= 1
    assert all(ch.isprintable() or ch == " " for ch in field)
    field.encode("utf-8")  # no lone surrogate left
    assert tsv_unescape(field) == text


def test_the_escapes() -> None:
    assert tsv_field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert tsv_field("\x1b\x00\x7f\x85") == "\\x1b\\x00\\x7f\\x85"
    assert tsv_field("\u2028\udce9") == "\\u2028\\udce9"
    assert tsv_field("café 東京 (red:1.2)") == "café 東京 (red:1.2)"


@pytest.mark.parametrize("field", ["bad\\q", "end\\", "\\x4", "\\uZZZZ"])
def test_unescape_refuses_what_the_rule_never_writes(field: str) -> None:
    with pytest.raises(ValueError, match="Not an escape"):
        tsv_unescape(field)


def test_json_text_is_valid_utf8_and_one_line_per_value() -> None:
    data = {"path": "caf\udce9\u2028x\x85.jpg", "caption": "a\nb \x1b café"}
    text = json_text(data)
    assert len(text.splitlines()) == 1
    text.encode("utf-8")
    assert json.loads(text) == data
    assert "café" in text  # readable, not \u00e9
    assert json.loads(json_text([1, {"a": "b"}], indent=2)) == [1, {"a": "b"}]
