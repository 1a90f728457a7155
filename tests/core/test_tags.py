"""Tags in caption bodies: splitting, span-preserving edits, counting, tags files, find/replace."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from loracap.core import tags as tags_mod
from loracap.core.errors import InputError
from loracap.core.tags import (
    DEFAULT_SEPARATOR,
    FIND_TIME_BUDGET_S,
    TOO_SLOW_MESSAGE,
    Change,
    ExpressionTooSlowError,
    TagCounter,
    add_tag,
    append_text,
    apply_batch,
    find_replace_preview,
    has_tag,
    join_tags,
    parse_tags_txt,
    prepend_text,
    remove_tag,
    rename_tag,
    split_tags,
    tag_spans,
)

SENTENCE = "A photo of a hall, with tall windows and a wooden floor."


@pytest.mark.parametrize(
    ("body", "separator", "expected"),
    [
        ("a, b, c", ", ", ["a", "b", "c"]),
        ("a,b ,  c", ", ", ["a", "b", "c"]),
        ("  a, , b,,", ", ", ["a", "b"]),
        ("", ", ", []),
        ("   ", ", ", []),
        ("(red:1.2), Red, red, red", ", ", ["(red:1.2)", "Red", "red", "red"]),
        ("wooden tables, lamp", ", ", ["wooden tables", "lamp"]),
        ("a | b|c", " | ", ["a", "b", "c"]),
        ("a b  c", " ", ["a", "b", "c"]),
        ("a\nb", "\n", ["a", "b"]),
    ],
)
def test_split_tags(body: str, separator: str, expected: list[str]) -> None:
    assert split_tags(body, separator) == expected


def test_tag_spans_point_into_the_original_string() -> None:
    body = " a ,  (b:1.2)  ,c"
    assert tag_spans(body) == [(1, 2), (6, 13), (16, 17)]
    assert [body[s:e] for s, e in tag_spans(body)] == ["a", "(b:1.2)", "c"]


@pytest.mark.parametrize(
    "tags",
    [["a"], ["a", "b c", "(red:1.2)"], ["Lamp", "lamp", "lamp"], []],
)
@pytest.mark.parametrize("separator", [", ", " | ", ";"])
def test_split_join_round_trip(tags: list[str], separator: str) -> None:
    joined = join_tags(tags, separator)
    assert split_tags(joined, separator) == tags
    assert join_tags(split_tags(joined, separator), separator) == joined


def test_join_tags_exact() -> None:
    assert join_tags(["a", "b", "c"]) == "a, b, c"
    assert join_tags(["a", "b"], " | ") == "a | b"
    assert DEFAULT_SEPARATOR == ", "


def test_empty_separator_is_refused() -> None:
    with pytest.raises(InputError, match="separator is empty"):
        split_tags("a, b", "")


@pytest.mark.parametrize(
    ("body", "tag", "expected"),
    [
        ("a, b", " b ", True),
        ("a, b", "B", False),
        ("a, (red:1.2)", "(red:1.2)", True),
        ("a, (red:1.2)", "red", False),
        ("wooden tables, lamp", "wooden", False),
        ("", "a", False),
    ],
)
def test_has_tag(body: str, tag: str, expected: bool) -> None:
    assert has_tag(body, tag) is expected


@pytest.mark.parametrize(
    ("body", "tag", "at_start", "expected"),
    [
        ("a, b", "c", False, "a, b, c"),
        ("a, b", "c", True, "c, a, b"),
        ("a, b", "b", False, "a, b"),
        ("a, b", " b ", True, "a, b"),
        ("a, b", "B", False, "a, b, B"),
        ("", "lamp", False, "lamp"),
        ("   ", "lamp", True, "lamp"),
        ("a, b,", "c", False, "a, b, c"),
        ("a, b\n", "c", False, "a, b, c\n"),
        ("a,b", "c", False, "a,b, c"),
        ("a, b", "  ", False, "a, b"),
        (SENTENCE, "lamp", False, SENTENCE + ", lamp"),
        (SENTENCE, "lamp", True, "lamp, " + SENTENCE),
    ],
)
def test_add_tag(body: str, tag: str, at_start: bool, expected: str) -> None:
    assert add_tag(body, tag, at_start=at_start) == expected


@pytest.mark.parametrize(
    ("body", "tag", "expected"),
    [
        ("a, b, c", "b", "a, c"),
        ("a, b, c", "a", "b, c"),
        ("a, b, c", "c", "a, b"),
        ("a, b, a, c", "a", "b, c"),
        ("a, a", "a", ""),
        ("a", "a", ""),
        ("a , b , c", "b", "a , c"),
        ("a,b,  c,d", "c", "a,b,d"),
        ("x,  a,b", "a", "x,b"),
        ("(red:1.2), Red, red", "red", "(red:1.2), Red"),
        ("(red:1.2), Red, red", "(red:1.2)", "Red, red"),
        ("a, b, c", "d", "a, b, c"),
        ("a,, b", "b", "a,"),
        ("  a, b  ", "a", "  b  "),
        (SENTENCE, "lamp", SENTENCE),
        (SENTENCE, "with tall windows and a wooden floor.", "A photo of a hall"),
    ],
)
def test_remove_tag(body: str, tag: str, expected: str) -> None:
    assert remove_tag(body, tag) == expected


def test_remove_tag_with_other_separator() -> None:
    assert remove_tag("a | b | c", "b", " | ") == "a | c"
    assert remove_tag("a|b | c", "a", " | ") == "b | c"


@pytest.mark.parametrize(
    ("body", "old", "new", "expected"),
    [
        ("a, chair, b", "chair", "wooden chair", "a, wooden chair, b"),
        ("chair,b ,chair", "chair", "stool", "stool,b ,stool"),
        ("a, Chair", "chair", "stool", "a, Chair"),
        ("a, chair, stool", "chair", "stool", "a, stool"),
        ("a, chair", "chair", "", "a"),
        ("a, (red:1.2)", "(red:1.2)", "(red:1.4)", "a, (red:1.4)"),
        ("a, b", "a", "a", "a, b"),
        (SENTENCE, "hall", "room", SENTENCE),
    ],
)
def test_rename_tag(body: str, old: str, new: str, expected: str) -> None:
    assert rename_tag(body, old, new) == expected


@pytest.mark.parametrize(
    ("body", "text", "expected"),
    [
        ("a, b", "c", "a, b, c"),
        ("a, b,", "c", "a, b, c"),
        ("a, b, ", "c", "a, b, c "),
        ("", "c", "c"),
        ("a, b", "   ", "a, b"),
        ("A hall.", "Warm light.", "A hall. Warm light."),
        ("A hall", "warm light", "A hall, warm light"),
    ],
)
def test_append_text(body: str, text: str, expected: str) -> None:
    assert append_text(body, text) == expected


@pytest.mark.parametrize(
    ("body", "text", "expected"),
    [
        ("a, b", "c", "c, a, b"),
        ("a, b", "c,", "c, a, b"),
        ("", "c", "c"),
        ("a, b", "", "a, b"),
        ("Warm light.", "A hall.", "A hall. Warm light."),
        ("\na, b", "c", "\nc, a, b"),
    ],
)
def test_prepend_text(body: str, text: str, expected: str) -> None:
    assert prepend_text(body, text) == expected


def _recount(bodies: dict[int, str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for body in bodies.values():
        counts.update(set(split_tags(body)))
    return dict(counts)


def test_tag_counter_counts_captions_not_occurrences() -> None:
    counter = TagCounter()
    counter.add_caption("a, b, a")
    counter.add_caption("b, c")
    assert counter.counts() == {"a": 1, "b": 2, "c": 1}
    assert counter.most_common() == [("b", 2), ("a", 1), ("c", 1)]
    assert counter.most_common(2) == [("b", 2), ("a", 1)]
    assert counter.vocabulary() == ["b", "a", "c"]
    counter.remove_caption("b, c")
    assert counter.counts() == {"a": 1, "b": 1}
    counter.replace_caption("a, b, a", "b, d")
    assert counter.counts() == {"b": 1, "d": 1}


def test_tag_counter_refuses_removing_unknown_caption() -> None:
    counter = TagCounter()
    counter.add_caption("a")
    with pytest.raises(ValueError, match="never added"):
        counter.remove_caption("a, z")
    assert counter.counts() == {"a": 1}


def test_tag_counter_incremental_equals_recount_over_random_edits() -> None:
    rng = random.Random(20240611)
    vocabulary = ["a", "b", "c", "(red:1.2)", "Red", "wooden tables", "lamp", "x y"]
    bodies: dict[int, str] = {}
    counter = TagCounter()
    mirror: dict[str, int] = {}  # kept only from the returned changes, as a view would
    next_id = 0
    for _step in range(200):
        action = rng.choice(["add", "remove", "edit", "edit", "edit"])
        if action == "add" or not bodies:
            body = join_tags(rng.choices(vocabulary, k=rng.randint(0, 5)))
            bodies[next_id] = body
            mirror.update(counter.add_caption(body))
            next_id += 1
        elif action == "remove":
            image_id = rng.choice(sorted(bodies))
            mirror.update(counter.remove_caption(bodies.pop(image_id)))
        else:
            image_id = rng.choice(sorted(bodies))
            old = bodies[image_id]
            operation = rng.choice(["add", "remove", "rename", "append"])
            tag = rng.choice(vocabulary)
            if operation == "add":
                new = add_tag(old, tag, at_start=rng.random() < 0.5)
            elif operation == "remove":
                new = remove_tag(old, tag)
            elif operation == "rename":
                new = rename_tag(old, tag, rng.choice(vocabulary))
            else:
                new = append_text(old, tag)
            bodies[image_id] = new
            changed = counter.replace_caption(old, new)
            assert set(changed) == set(split_tags(old)) ^ set(split_tags(new))
            mirror.update(changed)
        assert counter.counts() == _recount(bodies)
        assert {tag: n for tag, n in mirror.items() if n > 0} == counter.counts()
    assert len(bodies) > 5
    assert counter.counts()


def test_export_tags_txt() -> None:
    counter = TagCounter()
    for body in ["lamp, chair", "chair", "chair, (red:1.2)", "lamp"]:
        counter.add_caption(body)
    assert counter.export_tags_txt() == "chair\nlamp\n(red:1.2)\n"
    assert TagCounter().export_tags_txt() == ""
    assert parse_tags_txt(counter.export_tags_txt()) == counter.vocabulary()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lamp\nchair\n", ["lamp", "chair"]),
        ("lamp\r\n\r\n  wooden tables  \r\n", ["lamp", "wooden tables"]),
        ("tag\nlamp\n", ["lamp"]),
        ("\ufeffname,count\nlamp,3\n", ["lamp"]),
        (
            '1girl,0,4114588,"1girls,sole_female"\nsolo,0,3426446,"female_solo,solo_female"\n'
            "highres,5,3008413,\"high_res,high_resolution,hires\"\n",
            ["1girl", "solo", "highres"],
        ),
        ("tag,category\nlong_hair,0\n\n(red:1.2)\n", ["long_hair", "(red:1.2)"]),
        ("lamp\nlamp\nchair\n", ["lamp", "chair"]),
        ("lamp\ntag\n", ["lamp", "tag"]),
        ("", []),
    ],
)
def test_parse_tags_txt(text: str, expected: list[str]) -> None:
    assert parse_tags_txt(text) == expected


BODIES = {1: "a red chair, red lamp", 2: "blue chair", 3: "Red door", 4: "lamp, red"}


def test_find_replace_literal_counts_and_skips_unchanged() -> None:
    assert find_replace_preview(BODIES, "red", "green") == [
        Change(1, "a red chair, red lamp", "a green chair, green lamp", 2),
        Change(4, "lamp, red", "lamp, green", 1),
    ]


def test_find_replace_case_insensitive() -> None:
    changes = find_replace_preview(BODIES, "RED", "green", case_sensitive=False)
    assert [(c.image_id, c.after, c.count) for c in changes] == [
        (1, "a green chair, green lamp", 2),
        (3, "green door", 1),
        (4, "lamp, green", 1),
    ]


def test_find_replace_literal_does_not_interpret_regex_or_groups() -> None:
    bodies = {7: "a.b, a+b", 8: "axb"}
    assert find_replace_preview(bodies, "a.b", r"\1 x") == [Change(7, "a.b, a+b", r"\1 x, a+b", 1)]


def test_find_replace_regex_with_groups() -> None:
    changes = find_replace_preview(BODIES, r"(\w+) chair", r"chair of \1", regex=True)
    assert changes == [
        Change(1, "a red chair, red lamp", "a chair of red, red lamp", 1),
        Change(2, "blue chair", "chair of blue", 1),
    ]
    named = find_replace_preview({5: "x1 x22"}, r"x(?P<n>\d+)", r"<\g<n>>", regex=True)
    assert named == [Change(5, "x1 x22", "<1> <22>", 2)]


def test_find_replace_same_text_is_not_a_change() -> None:
    assert find_replace_preview(BODIES, "red", "red") == []


@pytest.mark.parametrize(
    ("find", "message"),
    [
        ("(red", "Invalid regular expression: missing ), unterminated subpattern at position 0."),
        ("red[", "Invalid regular expression: unterminated character set at position 3."),
        ("a**", "Invalid regular expression: multiple repeat at position 2."),
    ],
)
def test_find_replace_invalid_regex(find: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        find_replace_preview(BODIES, find, "x", regex=True)
    assert str(info.value) == message


def test_find_replace_invalid_group_and_empty_find() -> None:
    with pytest.raises(InputError, match="Invalid replacement text"):
        find_replace_preview(BODIES, "red", r"\2", regex=True)
    with pytest.raises(InputError, match="text to find is empty"):
        find_replace_preview(BODIES, "", "x")


# A backtracking expression: (a|aa)+$ tries every way of splitting the a's before it fails on
# "!" -- about 1.6 ** n steps, hours for 60 characters under Python's re.
CATASTROPHIC = r"(a|aa)+$"
CATASTROPHIC_BODY = "a" * 60 + "!"


def test_catastrophic_expression_stops_within_the_budget() -> None:
    bodies = {1: "a red chair", 2: CATASTROPHIC_BODY, 3: "aaa"}
    started = time.monotonic()
    with pytest.raises(ExpressionTooSlowError) as info:
        find_replace_preview(bodies, CATASTROPHIC, "x", regex=True, time_budget=0.2)
    assert time.monotonic() - started < 5  # without a time limit: hours
    assert str(info.value) == TOO_SLOW_MESSAGE
    assert str(info.value).startswith("This expression is too slow on these captions; simplify it")
    assert isinstance(info.value, InputError)  # shown like any input mistake
    assert FIND_TIME_BUDGET_S <= 2


def test_time_budget_covers_the_whole_preview_not_each_caption() -> None:
    # Each caption alone takes ~40 ms, well inside the budget; 200 of them take ~8 s.
    bodies = {i: "a" * 24 + "!" for i in range(200)}
    started = time.monotonic()
    with pytest.raises(ExpressionTooSlowError):
        find_replace_preview(bodies, CATASTROPHIC, "x", regex=True, time_budget=0.25)
    assert time.monotonic() - started < 4


def test_the_issue_expression_is_fast_and_still_works() -> None:
    # (\w+\s?)+\.$ took 17 s on 40 characters under re; the regex engine does not backtrack here.
    bodies = {1: "word " * 8 + "!", 2: "a wooden table by the window."}
    assert find_replace_preview(bodies, r"(\w+\s?)+\.$", "X.", regex=True) == [
        Change(2, "a wooden table by the window.", "X.", 1),
    ]


def test_python_re_features_still_work() -> None:
    bodies = {1: "red chair, red red lamp", 2: "Red chair"}
    assert find_replace_preview(bodies, r"(?<=red )chair", "sofa", regex=True) == [
        Change(1, "red chair, red red lamp", "red sofa, red red lamp", 1),
    ]
    assert find_replace_preview(bodies, r"\b(\w+) \1\b", r"\1", regex=True) == [
        Change(1, "red chair, red red lamp", "red chair, red lamp", 1),
    ]
    assert find_replace_preview(bodies, r"^red", "blue", regex=True, case_sensitive=False) == [
        Change(1, "red chair, red red lamp", "blue chair, red red lamp", 1),
        Change(2, "Red chair", "blue chair", 1),
    ]


@pytest.mark.parametrize("find", ["(a{1000}){1000}", "((a{100}){100}){100}", "x{1000000}",
                                  "(?:b|a{1000000})?"])
def test_expression_too_big_to_compile_is_refused_at_once(find: str) -> None:
    # regex compiles in time proportional to the repeats written out, outside its timeout.
    started = time.monotonic()
    with pytest.raises(ExpressionTooSlowError, match=r"repeats too much.*smaller counts"):
        find_replace_preview(BODIES, find, "x", regex=True)
    assert time.monotonic() - started < 1


def test_large_but_cheap_repeats_are_accepted() -> None:
    assert find_replace_preview(BODIES, "a{0,1000000}r", "R", regex=True)[0].after.startswith(
        "a Red")
    assert find_replace_preview(BODIES, "(?:e{3}){300}", "x", regex=True) == []


def test_too_long_literal_find() -> None:
    with pytest.raises(InputError, match="text to find is too long"):
        find_replace_preview(BODIES, "x" * (tags_mod.MAX_EXPRESSION_SIZE + 1), "y")


def test_deeply_nested_expression_is_an_input_error() -> None:
    find = "(" * 3000 + "a" + ")" * 3000
    with pytest.raises(InputError, match="nested too deeply"):
        find_replace_preview(BODIES, find, "x", regex=True)


def test_results_too_long_in_all_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tags_mod, "MAX_RESULT_CHARS", 100)
    bodies = {i: "red chair" for i in range(10)}
    assert len(find_replace_preview(bodies, "red", "blue")) == 10  # 100 characters: not over 100
    with pytest.raises(InputError, match="captions too long"):
        find_replace_preview(bodies, "r", "r" * 10)


def test_apply_batch() -> None:
    bodies = {1: "a, b", 2: "b", 3: "c"}
    assert apply_batch(bodies, lambda body: remove_tag(body, "b")) == [
        Change(1, "a, b", "a", 1),
        Change(2, "b", "", 1),
    ]
    assert apply_batch(bodies, lambda body: add_tag(body, "c")) == [
        Change(1, "a, b", "a, b, c", 1),
        Change(2, "b", "b, c", 1),
    ]
    assert apply_batch(bodies, lambda body: prepend_text(body, "z")) == [
        Change(1, "a, b", "z, a, b", 1),
        Change(2, "b", "z, b", 1),
        Change(3, "c", "z, c", 1),
    ]
