"""``tags.txt`` (Tags > Export Tag List, ``loracap tags``) with tags that would break its
one-tag-per-line form: line breaks and commas inside a tag."""

from __future__ import annotations

from loracap.core.tags import TagCounter, parse_tags_txt, tags_txt_line


def test_a_tag_with_a_line_break_stays_on_one_line() -> None:
    counter = TagCounter()
    counter.add_caption("wooden\ntable, chair")
    counter.add_caption("wooden\r\ntable, lamp\u2028shade, chair")
    text = counter.export_tags_txt()
    assert text == "chair\nlamp shade\nwooden table\n"
    assert parse_tags_txt(text) == ["chair", "lamp shade", "wooden table"]


def test_tags_that_become_the_same_line_are_written_once() -> None:
    counter = TagCounter()
    counter.add_caption("wooden table, wooden\ntable")
    assert counter.export_tags_txt() == "wooden table\n"


def test_a_tag_with_a_comma_is_quoted_so_it_reads_back_whole() -> None:
    counter = TagCounter("; ")
    counter.add_caption('red, blue; say "hi", twice; plain')
    text = counter.export_tags_txt()
    assert parse_tags_txt(text) == sorted(["red, blue", 'say "hi", twice', "plain"])
    assert tags_txt_line('say "hi", twice') == '"say ""hi"", twice"'
    assert tags_txt_line("plain (red:1.2)") == "plain (red:1.2)"
