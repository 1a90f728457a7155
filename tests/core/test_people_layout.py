"""Editing the people of one image (issue 13, "In the window"): the layout read from stored
boxes and the caption's lines, each edit, and the caption rebuilt with the new aliases."""

from __future__ import annotations

import pytest

from loracap.core.errors import InputError
from loracap.core.people.layout import MIN_BOX_SIDE, clamp_box, read_layout

WOMAN = ((10, 20, 110, 220), "woman")
MAN = ((120, 20, 220, 220), "man")
CHILD = ((230, 100, 280, 220), "unknown")
SIZE = (640, 480)


def test_the_caption_lines_win_over_the_stored_descriptions() -> None:
    body = ("sksA: A woman in a red coat, edited by hand.\n"
            "sksB: A man with a beard.\nScene: A quiet park in autumn light.")
    layout = read_layout([WOMAN, MAN], ["A woman in a blue coat.", "A man."],
                         scene="A park.", body=body)
    assert [p.text for p in layout.people] == ["A woman in a red coat, edited by hand.",
                                              "A man with a beard."]
    assert layout.scene == "A quiet park in autumn light."
    assert layout.caption() == body  # reading and writing again changes nothing


def test_moving_a_person_to_the_front_gives_them_the_first_alias_and_their_line() -> None:
    body = "sksA: A woman.\nsksB: A man.\nunidentified person: A child.\nScene: A beach at noon."
    layout = read_layout([WOMAN, MAN, CHILD], ["", "", ""], body=body)
    moved = layout.moved(2, 0)
    assert moved.aliases() == ["sksA", "sksB", "unidentified man"]
    assert moved.caption() == ("sksA: A child.\nsksB: A woman.\nunidentified man: A man.\n"
                               "Scene: A beach at noon.")


def test_deleting_a_person_moves_the_others_up() -> None:
    layout = read_layout([WOMAN, MAN, CHILD], ["A woman.", "A man.", "A child."])
    assert layout.without(0).caption() == "sksA: A man.\nsksB: A child."
    with pytest.raises(InputError):
        layout.without(3)
    # The last person deleted: the scene alone is the caption; nothing at all keeps it.
    only = read_layout([WOMAN], ["A woman."], scene="A beach at noon with palm trees.")
    assert only.without(0).caption() == "A beach at noon with palm trees."
    assert read_layout([WOMAN], ["A woman."]).without(0).caption() is None


def test_a_drawn_person_has_no_line_until_described() -> None:
    layout = read_layout([WOMAN], ["A woman."]).with_person((300, 10, 200, 400), SIZE, "man")
    assert layout.people[1].box == (200, 10, 300, 400)  # corners put in order
    assert layout.caption() == "sksA: A woman."
    described = layout.described(1, "  A man   in a hat. ")
    assert described.caption() == "sksA: A woman.\nsksB: A man in a hat."
    with pytest.raises(InputError):
        layout.with_person((0, 0, MIN_BOX_SIDE - 1, 50), SIZE)


def test_a_moved_box_is_clamped_and_keeps_its_text() -> None:
    layout = read_layout([WOMAN], ["A woman."]).with_box(0, (-20, 400, 100, 900), SIZE)
    assert layout.people[0].box == (0, 400, 100, 480)
    assert layout.people[0].text == "A woman."
    assert clamp_box((5, 5, 700, 500), SIZE) == (5, 5, 640, 480)
    with pytest.raises(InputError):
        clamp_box((635, 0, 700, 50), SIZE)  # 5 px wide once clamped to the image
    assert layout.with_gender(0, "female").people[0].gender == "woman"


def test_lines_no_person_owns_are_kept() -> None:
    body = "sksA: A woman.\nA note I added.\nsksB: A man.\nScene: A busy street at night."
    layout = read_layout([WOMAN, MAN], ["", ""], body=body)
    assert layout.extra == ("A note I added.",)
    assert layout.without(1).caption() == ("sksA: A woman.\nA note I added.\n"
                                           "Scene: A busy street at night.")


def test_repeated_default_aliases_are_matched_in_order() -> None:
    women = [((x, 0, x + 50, 100), "woman") for x in (0, 100, 200, 300)]
    body = ("sksA: One.\nsksB: Two.\nunidentified woman: Three.\nunidentified woman: Four.")
    layout = read_layout(women, ["", "", "", ""], body=body)
    assert [p.text for p in layout.people] == ["One.", "Two.", "Three.", "Four."]
    assert layout.moved(3, 0).caption() == (
        "sksA: Four.\nsksB: One.\nunidentified woman: Two.\nunidentified woman: Three.")


def test_custom_aliases_follow_the_position() -> None:
    layout = read_layout([WOMAN, MAN], ["A woman.", "A man."], custom=("anna", "ben"))
    assert layout.moved(1, 0).caption() == "anna: A man.\nben: A woman."


def test_tags_mode_reads_and_rebuilds_the_one_line_caption() -> None:
    body = "solo focus, person1, long hair, smile, person2, beard, scene, indoors, window"
    layout = read_layout([WOMAN, MAN], [(), ()], body=body, mode="tags")
    assert layout.extra == ("solo focus",)
    assert [p.tags for p in layout.people] == [("long hair", "smile"), ("beard",)]
    assert layout.scene_tags == ("indoors", "window")
    assert layout.caption() == body
    assert layout.moved(1, 0).caption() == (
        "solo focus, person1, beard, person2, long hair, smile, scene, indoors, window")
    assert layout.described(0, tags=["red dress"]).without(1).caption() == (
        "solo focus, person1, red dress, scene, indoors, window")
    assert layout.state() == [[[10, 20, 110, 220], "woman"], [[120, 20, 220, 220], "man"]]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InputError):
        read_layout([WOMAN], [""], mode="poem")  # type: ignore[arg-type]
