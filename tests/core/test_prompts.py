"""Caption profiles: instructions per profile, cleaning of model answers, structured assembly."""

from __future__ import annotations

import json

import pytest

from loracap.core.errors import InputError
from loracap.core.prompts import (
    Instructions,
    Profile,
    assemble_structured,
    build_instructions,
    clean_caption,
    parse_answer,
    profile_label,
)

TRIGGER = "ide_main_hall"
PREFIX = "photo of ide_main_hall "


# --- profiles and instructions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "label"),
    [(Profile.SPACE, "Interior space"), (Profile.PERSON, "Person"), (Profile.CUSTOM, "Custom prompt")],
)
def test_profile_labels(profile: Profile, label: str) -> None:
    assert profile.label == label
    assert profile_label(profile) == label


def test_profile_values_are_stable_strings() -> None:
    assert [p.value for p in Profile] == ["space", "person", "custom"]
    assert Profile("person") is Profile.PERSON


def test_space_instructions_ask_for_the_space_fields_as_json() -> None:
    instructions = build_instructions(Profile.SPACE)
    assert instructions.field_order == ("room_type", "key_objects", "lighting", "contextual_details")
    schema = instructions.json_schema
    assert schema is not None
    assert schema["required"] == list(instructions.field_order)
    assert list(schema["properties"]) == list(instructions.field_order)
    assert schema["properties"]["key_objects"]["type"] == "array"
    assert schema["properties"]["key_objects"]["items"] == {"type": "string"}
    prompt = instructions.prompt
    assert "interior space" in prompt
    assert "JSON" in prompt
    assert "natural vs artificial" in prompt
    assert "lecture hall" in prompt  # the workshop example
    assert 'Do NOT include the "photo of [trigger_word]" prefix' in prompt
    assert "person" not in prompt.lower()


def test_person_instructions_ask_for_the_person_fields_as_json() -> None:
    instructions = build_instructions(Profile.PERSON)
    assert instructions.field_order == (
        "pose_action", "clothing", "expression", "lighting", "background",
    )
    assert instructions.json_schema is not None
    assert instructions.json_schema["required"] == list(instructions.field_order)
    assert "person" in instructions.prompt
    assert "soft window light from left" in instructions.prompt
    assert "interior space" not in instructions.prompt


def test_schema_is_a_fresh_copy_each_time() -> None:
    first = build_instructions(Profile.SPACE)
    assert first.json_schema is not None
    first.json_schema["required"].append("mutated")
    assert "mutated" not in (build_instructions(Profile.SPACE).json_schema or {})["required"]


def test_custom_instructions_use_the_user_text_and_ask_for_plain_text() -> None:
    instructions = build_instructions(Profile.CUSTOM, "  Describe the facade in ten words.  ")
    assert instructions.prompt.startswith("Describe the facade in ten words.")
    assert "one line" in instructions.prompt
    assert "prefix" in instructions.prompt
    assert instructions.json_schema is None
    assert instructions.field_order == ()
    assert not instructions.structured


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_custom_instructions_refuse_an_empty_prompt(text: str) -> None:
    with pytest.raises(InputError, match="custom prompt is empty"):
        build_instructions(Profile.CUSTOM, text)


# --- cleaning ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # surrounding quotes, straight and curly, and unmatched ones
        ('"lecture hall, tiered seating"', "lecture hall, tiered seating"),
        ("\u201clecture hall, tiered seating\u201d", "lecture hall, tiered seating"),
        ("'lecture hall'", "lecture hall"),
        ('"lecture hall, tiered seating', "lecture hall, tiered seating"),
        # markdown
        ("**lecture hall**, *tiered* seating", "lecture hall, tiered seating"),
        ("`lecture hall` with __wooden__ desks", "lecture hall with wooden desks"),
        ("# lecture hall", "lecture hall"),
        ("- lecture hall\n- tiered seating\n* projection screen", "lecture hall, tiered seating, projection screen"),
        ("```\nlecture hall, tiered seating\n```", "lecture hall, tiered seating"),
        ("```text\nlecture hall\n```", "lecture hall"),
        # lead-ins
        ("Caption: lecture hall", "lecture hall"),
        ("caption - lecture hall", "lecture hall"),
        ("DESCRIPTION: lecture hall", "lecture hall"),
        ("Here is a caption: lecture hall", "lecture hall"),
        ("Here's the caption for the image: lecture hall", "lecture hall"),
        ("Here\u2019s a concise caption for this photo: lecture hall", "lecture hall"),
        ("Sure! Here is the description: lecture hall", "lecture hall"),
        ("Here is a caption for the image:\n\nlecture hall, tiered seating", "lecture hall, tiered seating"),
        ("Description of a lecture hall", "Description of a lecture hall"),
        # line breaks
        ("lecture hall\ntiered seating", "lecture hall, tiered seating"),
        ("lecture hall,\ntiered seating", "lecture hall, tiered seating"),
        ("lecture hall.\nTiered seating.\n\n", "lecture hall, Tiered seating"),
        ("lecture hall\r\ntiered seating", "lecture hall, tiered seating"),
        # whitespace and commas
        ("  lecture   hall ,  tiered\tseating  ", "lecture hall, tiered seating"),
        ("lecture hall,, tiered seating", "lecture hall, tiered seating"),
        ("1,000 seats", "1,000 seats"),
        # trailing period
        ("lecture hall, tiered seating.", "lecture hall, tiered seating"),
        ('"lecture hall."', "lecture hall"),
        ('"lecture hall".', "lecture hall"),
        # duplicated prefix
        ("photo of ide_main_hall lecture hall", "lecture hall"),
        ("Photo of ide_main_hall, lecture hall", "lecture hall"),
        ("a photo of ide_main_hall, lecture hall", "lecture hall"),
        ("A photo of IDE_MAIN_HALL: lecture hall", "lecture hall"),
        ("photo of [trigger_word], lecture hall", "lecture hall"),
        ("photo of [trigger] lecture hall", "lecture hall"),
        ("ide_main_hall, lecture hall", "lecture hall"),
        ("lecture hall near the ide_main_hall entrance", "lecture hall near the ide_main_hall entrance"),
        # realistic combinations
        ('**Caption:** "photo of ide_main_hall lecture hall, tiered seating.\n"', "lecture hall, tiered seating"),
        (
            "Sure! Here's a caption for the image:\n\n\u201cphoto of ide_main_hall, lecture hall, "
            "tiered seating, projection screen, overhead fluorescent lighting.\u201d",
            "lecture hall, tiered seating, projection screen, overhead fluorescent lighting",
        ),
        ("## Description\nLecture hall\nTiered seating.", "Lecture hall, Tiered seating"),
        ("", ""),
        ("   \n  ", ""),
        ("Caption:", ""),
    ],
)
def test_clean_caption(answer: str, expected: str) -> None:
    assert clean_caption(answer, TRIGGER, PREFIX) == expected


def test_clean_caption_removes_a_custom_rendered_prefix() -> None:
    prefix = "sks interior, "
    assert clean_caption("sks interior, lecture hall", "sks", prefix) == "lecture hall"


def test_clean_caption_without_trigger_keeps_words() -> None:
    assert clean_caption("lecture hall, tiered seating", "", "") == "lecture hall, tiered seating"


def test_clean_caption_keeps_underscores_inside_words() -> None:
    assert clean_caption("ide_main_hall_extra room", TRIGGER, PREFIX) == "ide_main_hall_extra room"


# --- structured answers -----------------------------------------------------------------------


SPACE = build_instructions(Profile.SPACE)
PERSON = build_instructions(Profile.PERSON)


def test_assemble_structured_follows_field_order_not_key_order() -> None:
    data = {
        "contextual_details": "teaching space with rows of desks",
        "lighting": "overhead fluorescent lighting",
        "key_objects": ["tiered seating", "projection screen"],
        "room_type": "lecture hall",
    }
    assert assemble_structured(data, SPACE) == (
        "lecture hall, tiered seating, projection screen, overhead fluorescent lighting, "
        "teaching space with rows of desks"
    )


def test_assemble_structured_person_order() -> None:
    data = {
        "background": "neutral grey background",
        "expression": "relaxed expression",
        "pose_action": "standing",
        "lighting": "soft window light from left",
        "clothing": "casual jeans and sweater",
    }
    assert assemble_structured(data, PERSON) == (
        "standing, casual jeans and sweater, relaxed expression, soft window light from left, "
        "neutral grey background"
    )


def test_assemble_structured_cleans_and_skips_empty_pieces() -> None:
    data = {
        "room_type": " **Lecture hall.** ",
        "key_objects": ["tiered seating.", "", "  ", 12, None, ["nested"]],
        "lighting": "",
        "contextual_details": None,
        "extra": "ignored",
    }
    assert assemble_structured(data, SPACE) == "Lecture hall, tiered seating, 12"


def test_parse_answer_structured_json() -> None:
    answer = json.dumps({
        "room_type": "photo of ide_main_hall lecture hall",
        "key_objects": ["tiered seating"],
        "lighting": "daylight from high windows",
        "contextual_details": "empty before class",
    })
    assert parse_answer(answer, SPACE, TRIGGER, PREFIX) == (
        "lecture hall, tiered seating, daylight from high windows, empty before class"
    )


def test_parse_answer_tolerates_a_json_fence() -> None:
    answer = '```json\n{"room_type": "atrium", "key_objects": ["glass roof"], "lighting": "daylight", "contextual_details": "busy"}\n```'
    assert parse_answer(answer, SPACE, TRIGGER, PREFIX) == "atrium, glass roof, daylight, busy"


def test_parse_answer_uses_the_fields_present() -> None:
    answer = '{"room_type": "atrium", "lighting": "daylight"}'
    assert parse_answer(answer, SPACE, TRIGGER, PREFIX) == "atrium, daylight"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("photo of ide_main_hall atrium, glass roof.", "atrium, glass roof"),
        ('{"caption": "atrium"', '{"caption": "atrium"'),
        ('["atrium", "glass roof"]', '["atrium", "glass roof"]'),
    ],
)
def test_parse_answer_falls_back_to_plain_cleaning(answer: str, expected: str) -> None:
    assert parse_answer(answer, SPACE, TRIGGER, PREFIX) == expected


def test_parse_answer_custom_is_plain_cleaning() -> None:
    custom = build_instructions(Profile.CUSTOM, "Describe it.")
    answer = '{"room_type": "atrium"}'
    assert parse_answer("Caption: atrium.", custom, TRIGGER, PREFIX) == "atrium"
    assert parse_answer(answer, custom, TRIGGER, PREFIX) == answer


def test_instructions_are_frozen() -> None:
    instructions = Instructions(Profile.CUSTOM, "x", None, ())
    with pytest.raises(AttributeError):
        instructions.prompt = "y"  # type: ignore[misc]


def test_prompts_show_the_example_answers_as_json() -> None:
    from loracap.core.prompts import _PERSON_EXAMPLE, _SPACE_EXAMPLE

    assert json.dumps(_SPACE_EXAMPLE) in build_instructions(Profile.SPACE).prompt
    assert json.dumps(_PERSON_EXAMPLE) in build_instructions(Profile.PERSON).prompt


def test_example_caption_of_each_profile() -> None:
    from loracap.core.prompts import example_caption_body

    assert example_caption_body(Profile.SPACE) == (
        "lecture hall, tiered seating, projection screen, overhead fluorescent lighting, "
        "teaching space with rows of desks")
    assert example_caption_body(Profile.PERSON).startswith("standing, casual jeans and sweater")
    assert example_caption_body(Profile.CUSTOM) == ""


@pytest.mark.parametrize(("names", "expected"), [
    (("Portraits Anna", "anna"), Profile.PERSON),
    (("workshop", "anna_headshots"), Profile.PERSON),
    (("selfies-2026",), Profile.PERSON),
    (("Faces",), Profile.PERSON),
    (("surface_textures", "ide_main_hall"), None),  # "face" only at the start of a word
    (("IDE Main Hall", "ide_main_hall"), None),
])
def test_a_person_profile_is_suggested_by_the_names(names: tuple[str, ...],
                                                    expected: Profile | None) -> None:
    from loracap.core.prompts import suggest_profile

    assert suggest_profile(*names) is expected
