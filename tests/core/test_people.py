"""The pure core of multi-person captions (issue 13): boxes, order, aliases, crops on real
Pillow images, text cleaning, prompts and caption assembly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from loracap.core.errors import ImageRejectedError, InputError
from loracap.core.imaging import load_rgb_on_white
from loracap.core.people import (
    DETECTION_PROMPT,
    DETECTION_SCHEMA,
    MAX_ALIAS_LENGTH,
    Gender,
    InvalidBoxError,
    PersonBox,
    PersonEntry,
    assemble_caption,
    assemble_tags_caption,
    assign_aliases,
    box_from_gemini,
    clean_person_text,
    clean_scene_text,
    context_pixels,
    count_words,
    crop_rect,
    cut_to_words,
    multi_person_caption,
    order_people,
    parse_aliases,
    parse_detection,
    person_crop,
    person_prompt,
    scene_image,
    scene_prompt,
    validate_aliases,
)
from tests.test_fuzz_text import (
    FUZZ,  # the project's Hypothesis settings: deterministic, no database
)

PERSON_COLOUR = (255, 0, 255)


def gradient(width: int, height: int) -> Image.Image:
    """An RGB image whose pixel (x, y) is (x % 256, y % 256, 200): every position differs."""
    im = Image.new("RGB", (width, height))
    im.putdata([(x % 256, y % 256, 200) for y in range(height) for x in range(width)])
    return im


def with_person(im: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """``im`` with a magenta rectangle exactly over ``box`` (right/bottom exclusive)."""
    im = im.copy()
    ImageDraw.Draw(im).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=PERSON_COLOUR)
    return im


def dimmed(pixel: tuple[int, ...], dim: float = 0.30) -> tuple[int, ...]:
    return tuple(int(value * dim + 0.5) for value in pixel)


def box(left: int, top: int, right: int, bottom: int, gender: Gender = "unknown") -> PersonBox:
    return PersonBox(left, top, right, bottom, gender)


# ----------------------------------------------------------------------------- boxes


def test_box_from_gemini_scales_ymin_xmin_ymax_xmax_by_the_image_size() -> None:
    # [ymin, xmin, ymax, xmax] on a 3000 x 4000 (portrait) image.
    result = box_from_gemini([100, 250, 900, 500], 3000, 4000)
    assert result.as_tuple() == (750, 400, 1500, 3600)
    assert (result.width, result.height, result.area) == (750, 3200, 750 * 3200)
    assert result.gender == "unknown" and result.confidence is None


def test_box_from_gemini_rounds_outwards_so_the_box_covers_what_was_marked() -> None:
    # 33.3 px rounds down to 33 for the start, 66.7 px up to 67 for the end.
    assert box_from_gemini([333, 333, 667, 667], 100, 100).as_tuple() == (33, 33, 67, 67)
    assert box_from_gemini([0.0, 0.0, 500.0, 250.5], 1000, 10).as_tuple() == (0, 0, 251, 5)


def test_box_from_gemini_clamps_to_the_image_and_keeps_at_least_one_pixel() -> None:
    assert box_from_gemini([-50, -10, 1200, 1100], 64, 48).as_tuple() == (0, 0, 64, 48)
    assert box_from_gemini([500, 500, 500.4, 500.4], 100, 100).as_tuple() == (50, 50, 51, 51)
    # A sliver at the far edges still lies inside the image.
    assert box_from_gemini([999.9, 999.9, 1000, 1000], 100, 100).as_tuple() == (99, 99, 100, 100)


def test_box_from_gemini_uses_the_oriented_size_of_a_rotated_photo(tmp_path: Path) -> None:
    # What a person sees: 300 wide x 400 high, the person on the upper left.
    seen = with_person(Image.new("RGB", (300, 400), (20, 120, 20)), (30, 40, 150, 240))
    # Stored sideways (400 x 300) with EXIF orientation 6 ("rotate 90 clockwise to show").
    stored = seen.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.png"
    stored.save(path, exif=exif)
    with Image.open(path) as raw:
        assert raw.size == (400, 300)
    oriented = load_rgb_on_white(path)
    assert oriented.size == (300, 400)
    # The model saw the oriented image: ymin 100 = 40/400, xmin 100 = 30/300, ...
    person = box_from_gemini([100, 100, 600, 500], *oriented.size)
    assert person.as_tuple() == (30, 40, 150, 240)
    crop = person_crop(oriented, person)
    assert crop.size == (150 + 8 - 22, 248 - 32)  # 8 px of context at a 400-px long side
    assert crop.getpixel((8, 8)) == PERSON_COLOUR
    assert crop.getpixel((7, 7)) == dimmed((20, 120, 20))


@pytest.mark.parametrize("value", [
    [1, 2, 3], [1, 2, 3, 4, 5], "0 0 10 10", None, 5, {"ymin": 0},
    ["0", "0", "10", "10"], [0, 0, True, 10], [0, 0, float("nan"), 10], [0, 0, float("inf"), 9],
    [600, 0, 400, 10], [0, 600, 10, 400], [500, 0, 500, 10], [0, 0, 0, 0],
    [1100, 0, 1200, 10],  # entirely below the image: empty once clamped
])
def test_box_from_gemini_refuses_unusable_boxes(value: Any) -> None:
    with pytest.raises(InvalidBoxError) as caught:
        box_from_gemini(value, 100, 100)
    assert isinstance(caught.value, ValueError)
    assert "box" in str(caught.value).lower() or "number" in str(caught.value)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (True, 10), (10.0, 10)])
def test_box_from_gemini_refuses_a_size_that_is_not_positive(size: tuple[Any, Any]) -> None:
    with pytest.raises(InvalidBoxError, match="not a positive size"):
        box_from_gemini([0, 0, 10, 10], *size)


def test_person_box_refuses_an_empty_box() -> None:
    with pytest.raises(InvalidBoxError):
        PersonBox(10, 10, 10, 20)
    with pytest.raises(InvalidBoxError):
        PersonBox(-1, 0, 5, 5)


# ----------------------------------------------------------------------------- detection


def test_parse_detection_reads_a_fenced_answer_with_extra_keys() -> None:
    answer = ('```json\n{"people": [{"box_2d": [0, 0, 500, 500], "gender": "Female", '
              '"label": "x", "score": 0.9}, {"box_2d": [100, 500, 900, 1000], '
              '"gender": "male"}], "note": "two people"}\n```')
    people = parse_detection(answer, 200, 100)
    assert [p.as_tuple() for p in people] == [(0, 0, 100, 50), (100, 10, 200, 90)]
    assert [p.gender for p in people] == ["woman", "man"]


@pytest.mark.parametrize(("said", "gender"), [
    ("woman", "woman"), ("Female", "woman"), (" GIRL ", "woman"), ("lady", "woman"),
    ("man", "man"), ("MALE", "man"), ("boy", "man"), ("m", "man"),
    ("unknown", "unknown"), ("child", "unknown"), ("", "unknown"), (None, "unknown"),
    (1, "unknown"), ("femme", "unknown"),
])
def test_parse_detection_maps_gender_synonyms(said: Any, gender: str) -> None:
    people = parse_detection({"people": [{"box_2d": [0, 0, 10, 10], "gender": said}]}, 100, 100)
    assert [p.gender for p in people] == [gender]


def test_parse_detection_drops_broken_entries_and_keeps_the_rest() -> None:
    answer = json.dumps({"people": [
        {"box_2d": [0, 0, 100, 100], "gender": "woman"},
        {"box_2d": [50, 50, 50, 90]},  # empty
        {"box_2d": [10, 20, 30]},  # three numbers
        {"gender": "man"},  # no box
        "a person",
        {"box_2d": [900, 0, 100, 50]},  # ymin above ymax
        {"box_2d": [200, 200, 400, 300], "label": "man"},  # Gemini's own key for the class
    ]})
    people = parse_detection(answer, 1000, 1000)
    assert [(p.as_tuple(), p.gender) for p in people] == [
        ((0, 0, 100, 100), "woman"), ((200, 200, 300, 400), "man")]


def test_parse_detection_accepts_a_bare_list_and_no_people() -> None:
    assert len(parse_detection('[{"box_2d": [0, 0, 10, 10], "label": "person"}]', 50, 50)) == 1
    assert parse_detection('{"people": []}', 50, 50) == []


@pytest.mark.parametrize("answer", [
    "There are two people.", '{"persons": []}', '{"people": "two"}', "42", '"people"', "",
    "[" * 5000,
])
def test_parse_detection_refuses_an_answer_that_is_not_a_list_of_people(answer: str) -> None:
    with pytest.raises(ImageRejectedError, match="find people"):
        parse_detection(answer, 50, 50)


def test_detection_schema_is_strict_and_matches_the_genders() -> None:
    item = DETECTION_SCHEMA["properties"]["people"]["items"]
    assert item["properties"]["box_2d"]["minItems"] == item["properties"]["box_2d"]["maxItems"] == 4
    assert tuple(item["properties"]["gender"]["enum"]) == get_args(Gender)
    # OpenAI strict structured output: every object lists all its properties as required.
    for obj in (DETECTION_SCHEMA, item):
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    assert "box_2d" in DETECTION_PROMPT and "[ymin, xmin, ymax, xmax]" in DETECTION_PROMPT
    json.dumps(DETECTION_SCHEMA)  # plain JSON data, as the SDKs send it


# ----------------------------------------------------------------------------- order


def test_order_people_left_to_right_by_centre_with_ties_by_top() -> None:
    wide = box(0, 0, 100, 10)  # centre 50
    narrow_low = box(40, 50, 60, 60)  # centre 50, lower
    narrow_high = box(45, 5, 55, 15)  # centre 50, higher
    right = box(80, 0, 90, 10)  # centre 85
    left = box(0, 0, 20, 10)  # centre 10
    ordered = order_people([right, narrow_low, wide, left, narrow_high])
    assert ordered == [left, wide, narrow_high, narrow_low, right]


def test_order_people_by_size_largest_first_ties_left_to_right() -> None:
    small = box(0, 0, 10, 10)
    big_right = box(50, 0, 70, 20)
    big_left = box(10, 0, 30, 20)
    people = [small, big_right, big_left]
    assert order_people(people, by="size") == [big_left, big_right, small]
    assert people == [small, big_right, big_left]  # a new list; the input is unchanged


def test_order_people_refuses_another_order() -> None:
    with pytest.raises(InputError, match='"left".*"size"'):
        order_people([], by="height")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- aliases

GENDERS: list[Gender] = ["man", "woman", "unknown", "woman", "man"]


def people(count: int) -> list[PersonBox]:
    return [box(i, 0, i + 1, 1, GENDERS[i]) for i in range(count)]


@pytest.mark.parametrize(("count", "expected"), [
    (1, ["sksA"]),
    (2, ["sksA", "sksB"]),
    (3, ["sksA", "sksB", "unidentified person"]),
    (5, ["sksA", "sksB", "unidentified person", "unidentified woman", "unidentified man"]),
])
def test_default_aliases(count: int, expected: list[str]) -> None:
    assert assign_aliases(people(count)) == expected


@pytest.mark.parametrize(("count", "expected"), [
    (1, ["Anna"]),
    (2, ["Anna", "ohwx_ben"]),
    (3, ["Anna", "ohwx_ben", "Carla"]),
    (5, ["Anna", "ohwx_ben", "Carla", "unidentified woman", "unidentified man"]),
])
def test_custom_aliases_take_precedence_in_order(count: int, expected: list[str]) -> None:
    custom = (" Anna ", "ohwx_ben", "Carla")
    assert assign_aliases(people(count), custom=custom) == expected


def test_one_custom_alias_leaves_the_second_default_in_place() -> None:
    assert assign_aliases(people(3), custom=["Anna"]) == ["Anna", "sksB", "unidentified person"]
    # A custom alias that is a default pushes that default on, so no two people share one.
    assert assign_aliases(people(2), custom=["SKSB"]) == ["SKSB", "sksC"]


@pytest.mark.parametrize(("count", "custom", "expected"), [
    (1, (), ["person1"]),
    (3, (), ["person1", "person2", "person3"]),
    (5, (), ["person1", "person2", "person3", "person4", "person5"]),
    (3, ("anna",), ["anna", "person2", "person3"]),
    (3, ("person3", "anna"), ["person3", "anna", "person4"]),
    (3, ("Person2",), ["Person2", "person3", "person4"]),  # a moved default is not used twice
])
def test_tags_mode_aliases(count: int, custom: tuple[str, ...], expected: list[str]) -> None:
    assert assign_aliases(people(count), custom=custom, mode="tags") == expected


def test_assign_aliases_refuses_an_unknown_mode() -> None:
    with pytest.raises(InputError, match="natural"):
        assign_aliases(people(1), mode="booru")  # type: ignore[arg-type]


@pytest.mark.parametrize(("aliases", "message"), [
    (["anna", ""], "Alias 2 is empty"),
    (["   "], "Alias 1 is empty"),
    (["anna\nben"], "more than one line"),
    (["anna: ben"], "colon"),
    (["anna, ben"], "comma"),
    (["\u5b89\u5a1c\uff1a"], "colon"),
    (["an\x00na"], "control character"),
    (["x" * (MAX_ALIAS_LENGTH + 1)], f"at most {MAX_ALIAS_LENGTH}"),
    (["Anna", "ben", "ANNA"], 'given twice \\(aliases 1 and 3\\)'),
])
def test_validate_aliases_refuses_broken_aliases(aliases: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_aliases(aliases)


def test_validate_aliases_tidies_spaces_and_keeps_other_scripts() -> None:
    assert validate_aliases(["  Anna   Maria ", "x" * MAX_ALIAS_LENGTH, "\u5b89\u5a1c"]) == (
        "Anna Maria", "x" * MAX_ALIAS_LENGTH, "\u5b89\u5a1c")


def test_parse_aliases_of_the_command_line() -> None:
    assert parse_aliases("anna, ben") == ("anna", "ben")
    assert parse_aliases("ohwx_anna") == ("ohwx_anna",)
    assert parse_aliases("  ") == ()
    with pytest.raises(InputError, match="Alias 2 is empty"):
        parse_aliases("anna,,ben")
    with pytest.raises(InputError, match="given twice"):
        parse_aliases("anna, Anna")


# ----------------------------------------------------------------------------- crops


@pytest.mark.parametrize(("size", "pixels"), [
    ((1000, 600), 20), ((600, 1000), 20), ((2000, 1500), 40), ((500, 500), 10),
    ((1025, 10), 21), ((1024, 10), 20), ((10, 10), 0),
])
def test_context_is_20_per_mille_of_the_long_side(size: tuple[int, int], pixels: int) -> None:
    assert context_pixels(*size) == pixels


def test_person_crop_is_the_box_plus_context_with_only_the_margin_dimmed() -> None:
    person = (100, 50, 200, 250)
    im = with_person(gradient(500, 400), person)  # long side 500: 10 px of context
    before = im.tobytes()
    crop = person_crop(im, box(*person))
    assert crop.size == (100 + 2 * 10, 200 + 2 * 10)
    assert crop_rect(box(*person), 500, 400) == (90, 40, 210, 260)
    assert im.tobytes() == before  # the image itself is not changed
    for y in range(crop.height):
        for x in range(crop.width):
            source = im.getpixel((90 + x, 40 + y))
            inside = 10 <= x < 110 and 10 <= y < 210
            assert crop.getpixel((x, y)) == (source if inside else dimmed(source)), (x, y)
    # The undimmed person is exactly where the box says.
    magenta = [(x, y) for y in range(crop.height) for x in range(crop.width)
               if crop.getpixel((x, y)) == PERSON_COLOUR]
    assert (min(magenta), max(magenta)) == ((10, 10), (109, 209))
    assert len(magenta) == 100 * 200


def test_person_crop_is_clamped_at_the_image_edges() -> None:
    im = with_person(gradient(300, 200), (0, 0, 40, 60))  # 6 px of context
    crop = person_crop(im, box(0, 0, 40, 60))
    assert crop.size == (46, 66)
    assert crop.getpixel((0, 0)) == PERSON_COLOUR
    assert crop.getpixel((40, 0)) == dimmed(im.getpixel((40, 0)))
    assert crop_rect(box(250, 150, 300, 200), 300, 200) == (244, 144, 300, 200)
    whole = person_crop(im, box(0, 0, 300, 200))
    assert whole.tobytes() == im.tobytes()  # no margin at all: nothing dimmed


def test_person_crop_context_and_dim_can_be_changed() -> None:
    im = gradient(1000, 100)
    crop = person_crop(im, box(500, 40, 510, 60), context_per_mille=5, dim=0.5)
    assert crop.size == (20, 30)
    assert crop.getpixel((0, 0)) == dimmed(im.getpixel((495, 35)), 0.5)


@pytest.mark.parametrize(("image", "person", "dim", "message"), [
    (Image.new("RGB", (50, 50)), box(10, 10, 60, 20), 0.3, "does not lie within"),
    (Image.new("RGBA", (50, 50)), box(10, 10, 20, 20), 0.3, "RGB"),
    (Image.new("RGB", (50, 50)), box(10, 10, 20, 20), 1.5, "between 0 and 1"),
])
def test_person_crop_refuses_bad_input(image: Image.Image, person: PersonBox, dim: float,
                                       message: str) -> None:
    with pytest.raises(ValueError, match=message):
        person_crop(image, person, dim=dim)


def test_scene_image_dims_every_person_once_and_nothing_else() -> None:
    im = gradient(120, 80)
    boxes = [box(10, 10, 40, 50), box(30, 20, 60, 70)]  # overlapping
    scene = scene_image(im, boxes)
    assert scene.size == im.size
    for y in range(80):
        for x in range(120):
            inside = any(b.left <= x < b.right and b.top <= y < b.bottom for b in boxes)
            source = im.getpixel((x, y))
            assert scene.getpixel((x, y)) == (dimmed(source) if inside else source), (x, y)
    assert scene_image(im, []).tobytes() == im.tobytes()
    with pytest.raises(ValueError, match="does not lie within"):
        scene_image(im, [box(100, 0, 121, 10)])


# ----------------------------------------------------------------------------- text

LONG = ("A young woman with long wavy brown hair wears a flowing blue summer dress, a thin "
        "silver bracelet and white sneakers, stands beside a tall window with her arms "
        "crossed, and smiles warmly at the camera while holding a small leather handbag "
        "in her left hand")


@pytest.mark.parametrize(("answer", "expected"), [
    ("The person is wearing a red coat", "Wearing a red coat."),
    ("This person is a tall man in a grey suit", "A tall man in a grey suit."),
    ("The highlighted person in the image is a child in yellow", "A child in yellow."),
    ("This image shows a woman with a hat", "A woman with a hat."),
    ("The image shows a man with a beard", "A man with a beard."),
    ("In this image, a boy waves.", "A boy waves."),
    ("Description: a woman in a green jacket", "A woman in a green jacket."),
    ("Person: a woman in a green jacket", "A woman in a green jacket."),
    ("Person 1 - a woman in a green jacket", "A woman in a green jacket."),
    ("Scene: a woman in a green jacket", "A woman in a green jacket."),
    ('**Description:** "This image shows a young woman."', "A young woman."),
    ("Person:\nA woman\nin a green jacket", "A woman, in a green jacket."),
    ("```\n# A woman smiling\n```", "A woman smiling."),
    ("Describe only that person, not the dimmed area, the background or anyone else: a woman "
     "in red", "A woman in red."),
    ("a woman smiling!!!", "A woman smiling."),
    ("A woman smiling...", "A woman smiling."),
    ("\u00ab a woman in a red coat \u00bb", "A woman in a red coat."),
    ("The woman is smiling", "The woman is smiling."),  # a gendered subject is kept
])
def test_clean_person_text_removes_lead_ins_and_echoes(answer: str, expected: str) -> None:
    assert clean_person_text(answer).text == expected


def test_clean_person_text_keeps_other_languages_intact() -> None:
    german = "eine junge Frau mit langen braunen Haaren trägt ein blaues Kleid und lächelt"
    assert clean_person_text(german).text == "E" + german[1:] + "."
    chinese = "\u4e00\u4f4d\u7a7f\u84dd\u8272\u8fde\u8863\u88d9\u7684\u5e74\u8f7b\u5973\u5b50\u3002"
    assert clean_person_text(chinese).text == chinese
    assert clean_person_text(chinese[:-1] + "\uff0c").text == chinese
    assert clean_person_text("Beschreibung: \u00e9l\u00e8ve souriante").text == (
        "\u00c9l\u00e8ve souriante.")


def test_person_text_over_35_words_is_cut_at_the_last_clause_boundary() -> None:
    assert count_words(LONG) > 35
    result = clean_person_text(LONG)
    assert result.cut and not result.too_short
    # Word 35 is "the" of "at the camera"; the last boundary at or before it is after
    # "crossed," (word 30): ", and smiles warmly at the" is dropped, not cut mid-clause.
    assert result.text == (
        "A young woman with long wavy brown hair wears a flowing blue summer dress, a thin "
        "silver bracelet and white sneakers, stands beside a tall window with her arms "
        "crossed.")
    assert result.words == count_words(result.text) <= 35
    assert LONG.startswith(result.text[:-1])  # a prefix of the answer: no word is split


def test_cut_prefers_and_then_words_and_never_splits_a_word() -> None:
    text = " ".join(f"w{i}" for i in range(20)) + " and " + " ".join(f"x{i}" for i in range(20))
    assert cut_to_words(text, 35, 15) == (" ".join(f"w{i}" for i in range(20)), True)
    plain = " ".join(f"word{i}" for i in range(50))
    cut, was_cut = cut_to_words(plain, 35, 15)
    assert was_cut and cut == " ".join(f"word{i}" for i in range(35))
    # A boundary that would leave fewer than 15 words is passed over for a word cut.
    early = "A woman, " + " ".join(f"word{i}" for i in range(50))
    assert cut_to_words(early, 35, 15)[0] == "A woman, " + " ".join(f"word{i}" for i in range(33))
    # "3.5" is not a sentence end.
    decimal = "a " * 20 + "3.5 metre tall " + "b " * 30
    assert "3" in cut_to_words(decimal, 35, 15)[0] and ".5" in cut_to_words(decimal, 35, 15)[0]
    assert cut_to_words("short text", 35) == ("short text", False)


def test_cjk_characters_count_as_half_words_and_cut_at_cjk_commas() -> None:
    assert count_words("\u4e00" * 10) == 5
    assert count_words("a woman, smiling \u2014 happily") == 4
    clause = "\u4e00" * 40 + "\uff0c"
    cut, was_cut = cut_to_words(clause * 3, 35, 15)
    assert was_cut and cut == "\u4e00" * 40  # 20 words: the first clause; two would be 40


def test_short_descriptions_are_flagged_for_asking_again() -> None:
    assert clean_person_text("A woman in a red coat").too_short
    fourteen = " ".join(["word"] * 14)
    fifteen = " ".join(["word"] * 15)
    assert clean_person_text(fourteen).too_short and clean_person_text(fourteen).words == 14
    assert not clean_person_text(fifteen).too_short
    assert clean_person_text("").text == "" and clean_person_text("").too_short


def test_clean_scene_text_is_cut_to_15_words() -> None:
    result = clean_scene_text(
        "The scene is a modern office with floor-to-ceiling windows, white desks and green "
        "plants, lit by soft afternoon daylight from the left side of the room")
    assert result.text == ("A modern office with floor-to-ceiling windows, white desks and green "
                           "plants.")
    assert result.cut and result.words == 11 and not result.too_short
    assert clean_scene_text("Scene: office").too_short
    assert clean_scene_text("The setting is a beach at dusk").text == "A beach at dusk."


def test_prompts_ask_for_one_person_and_the_scene_in_the_language() -> None:
    prompt = person_prompt()
    assert "15 to 35 words" in prompt and "dimmed" in prompt and '"The person is"' in prompt
    assert "Write the sentence in" not in prompt
    assert person_prompt("de").endswith("\nWrite the sentence in German (Deutsch).")
    assert scene_prompt("zh-Hans").endswith("Simplified Chinese (\u7b80\u4f53\u4e2d\u6587).")
    assert "5 to 15 words" in scene_prompt() and "do not mention them" in scene_prompt()
    with pytest.raises(InputError, match="not a caption language"):
        scene_prompt("xx")


# ----------------------------------------------------------------------------- assembly


def test_assemble_caption_writes_one_line_per_person_then_the_scene() -> None:
    entries = [PersonEntry("sksA", "A young woman in a blue dress."),
               PersonEntry("sksB", "A man in a\nblack  suit.")]
    assert assemble_caption(entries, "Modern office with white furniture.") == (
        "sksA: A young woman in a blue dress.\n"
        "sksB: A man in a black suit.\n"
        "Scene: Modern office with white furniture.")


@pytest.mark.parametrize(("scene", "has_line"), [
    ("Office.", False), ("Bright office.", False), ("Bright open office.", True), ("", False),
    ("\u660e\u4eae\u7684\u529e\u516c\u5ba4\u3002", True),  # 6 characters: 3 words
    ("\u660e\u4eae\u7684\u529e\u3002", False),
])
def test_scene_line_needs_three_words(scene: str, has_line: bool) -> None:
    body = assemble_caption([PersonEntry("sksA", "A woman.")], scene)
    assert body.endswith(f"\nScene: {scene}") is has_line
    assert body.count("\n") == int(has_line)


def test_assemble_caption_refuses_a_missing_part() -> None:
    with pytest.raises(ValueError, match="at least one person"):
        assemble_caption([], "A room with a view.")
    with pytest.raises(ValueError, match="Person 2 has no alias or no description"):
        assemble_caption([PersonEntry("sksA", "A woman."), PersonEntry("sksB", "  ")], "")


def test_assemble_tags_caption() -> None:
    assert assemble_tags_caption(
        [("person1", ["long hair", "smile"]), ("person2", ["beard"])],
        ["indoors", "window"]) == "person1, long hair, smile, person2, beard, scene, indoors, window"
    assert assemble_tags_caption([("person1", []), ("person2", ["", "hat"])], []) == (
        "person1, person2, hat")
    assert assemble_tags_caption([("anna", ["hat"])], ["sky"], separator=" ") == "anna hat scene sky"
    assert assemble_tags_caption([], []) == ""


def test_multi_person_caption_zero_people_means_the_ordinary_caption() -> None:
    assert multi_person_caption([], "A bright office with desks.") is None
    assert multi_person_caption([], mode="tags", scene_tags=["indoors"]) is None
    entries = [PersonEntry("person1", "ignored in tags mode", ("smile",))]
    assert multi_person_caption(entries, mode="tags", scene_tags=["indoors"]) == (
        "person1, smile, scene, indoors")
    assert multi_person_caption([PersonEntry("sksA", "A woman.")], "A bright office.") == (
        "sksA: A woman.\nScene: A bright office.")
    with pytest.raises(ValueError, match="natural"):
        multi_person_caption(entries, mode="lines")  # type: ignore[arg-type]


def test_the_whole_flow_on_a_real_image() -> None:
    im = with_person(with_person(gradient(400, 300), (20, 30, 120, 280)), (250, 40, 380, 290))
    answer = json.dumps({"people": [
        {"box_2d": [134, 625, 966, 950], "gender": "man"},
        {"box_2d": [100, 50, 933, 300], "gender": "woman"}]})
    found = order_people(parse_detection(answer, *im.size))
    assert [p.as_tuple() for p in found] == [(20, 30, 120, 280), (250, 40, 380, 290)]
    aliases = assign_aliases(found)
    crops = [person_crop(im, p) for p in found]
    assert [c.getpixel((8, 8)) for c in crops] == [PERSON_COLOUR, PERSON_COLOUR]
    answers = ["The person is a woman in magenta.", "**Person:** a man in magenta"]
    entries = [PersonEntry(alias, clean_person_text(answer).text)
               for alias, answer in zip(aliases, answers, strict=True)]
    body = multi_person_caption(entries, clean_scene_text("This image shows a grey room").text)
    assert body == ("sksA: A woman in magenta.\nsksB: A man in magenta.\n"
                    "Scene: A grey room.")


# ----------------------------------------------------------------------------- properties


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[int, int, PersonBox, int]:
    width = draw(st.integers(1, 3000))
    height = draw(st.integers(1, 3000))
    left = draw(st.integers(0, width - 1))
    top = draw(st.integers(0, height - 1))
    right = draw(st.integers(left + 1, width))
    bottom = draw(st.integers(top + 1, height))
    per_mille = draw(st.integers(0, 1000))
    return width, height, PersonBox(left, top, right, bottom), per_mille


@FUZZ
@given(image_and_box())
@example((1, 1, PersonBox(0, 0, 1, 1), 20))
@example((3000, 5, PersonBox(2999, 0, 3000, 5), 1000))
def test_a_crop_lies_within_the_image_and_contains_the_box(
        case: tuple[int, int, PersonBox, int]) -> None:
    width, height, person, per_mille = case
    left, top, right, bottom = crop_rect(person, width, height, per_mille)
    assert 0 <= left <= person.left and 0 <= top <= person.top
    assert person.right <= right <= width and person.bottom <= bottom <= height
    margin = context_pixels(width, height, per_mille)
    assert left == max(person.left - margin, 0) and bottom == min(person.bottom + margin, height)


@FUZZ
@given(st.lists(st.integers(-200, 1200), min_size=4, max_size=4), st.integers(1, 5000),
       st.integers(1, 5000))
def test_a_converted_box_always_lies_within_the_image(
        box_2d: list[int], width: int, height: int) -> None:
    try:
        person = box_from_gemini(box_2d, width, height)
    except InvalidBoxError:
        return
    assert 0 <= person.left < person.right <= width
    assert 0 <= person.top < person.bottom <= height


ANSWER_PIECES = st.sampled_from([
    "a woman", "in a red coat", "smiling", ", ", ".", "...", "!", ";", " and ", "\n", "\r\n",
    "  ", "**", "# ", "- ", '"', "\u201c", "The person is ", "This image shows ", "Scene: ",
    "Description:", "Person:", "In this image, ", "\u4e00\u4f4d\u5973\u5b50", "\u3002", "\uff0c",
    "\x00", "\x1b[31m", "\u2028", "\u00e9", "word " * 12,
])
ANSWERS = st.one_of(st.lists(ANSWER_PIECES, max_size=30).map("".join),
                    st.text(st.characters(blacklist_categories=("Cs",)), max_size=120))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@FUZZ
@given(ANSWERS, st.booleans())
@example("word. " * 40, True)
@example("...", True)
@example("\u4e00\u3002\u3002", False)
def test_cleaned_text_is_one_line_ending_with_exactly_one_period(answer: str,
                                                                 person: bool) -> None:
    result = clean_person_text(answer) if person else clean_scene_text(answer)
    text = result.text
    assert not _CONTROL.search(text), repr(text)
    assert text == text.strip()
    assert result.words == count_words(text)
    assert result.words <= (35 if person else 15)
    if text:
        assert text[-1] in ".\u3002"
        assert text[-2:-1] not in {".", "\u3002", ",", ";", " ", "\uff0c"}, repr(text)
