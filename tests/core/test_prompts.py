"""Caption profiles: instructions per profile, cleaning of model answers, structured assembly."""

from __future__ import annotations

import json

import pytest

from loracap.core.errors import ImageRejectedError, InputError
from loracap.core.prompts import (
    ANSWER_LIMITS,
    Instructions,
    Profile,
    assemble_structured,
    build_instructions,
    clean_caption,
    limit_length,
    parse_answer,
    profile_label,
    sanitize_text,
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


# --- sanitising and length limits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("lecture\x00 hall", "lecture hall"),  # NUL
        ("\x1b[31mred\x1b[0m chairs", "red chairs"),  # colours: the whole sequence goes
        ("\x1b[2J\x1b[Hhall", "hall"),  # clear screen, cursor home
        ("\x1b]0;pwned\x07hall", "hall"),  # OSC: window title
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ hall", "link hall"),  # OSC 8 hyperlink
        ("\x1bchall", "hall"),  # ESC c: terminal reset
        ("hall\x1b", "hall"),  # a lone ESC
        ("\x9b31mhall", "hall"),  # 8-bit CSI
        ("a\x07b\x08c\x7fd\x85e", "abcd\ne"),  # BEL, backspace, DEL; NEL is a line break
        ("tab\there", "tab here"),
        ("one\r\ntwo\rthree\u2028four", "one\ntwo\nthree\nfour"),
        ("caf\u00e9 \u202eevil\u202c \ufeffzero\u200bwidth", "caf\u00e9 evil zerowidth"),
        ("lone \ud800 surrogate \udfff", "lone \ufffd surrogate \ufffd"),
        ("emoji \U0001f600 and \u4e2d\u6587 stay", "emoji \U0001f600 and \u4e2d\u6587 stay"),
        ("  spaces   stay  ", "  spaces   stay  "),
    ],
)
def test_sanitize_text(raw: str, expected: str) -> None:
    assert sanitize_text(raw) == expected
    sanitize_text(raw).encode("utf-8")  # storable: no lone surrogate left


def test_clean_caption_sanitises_every_answer() -> None:
    answer = "**Caption:** \x1b[1mlecture hall\x1b[0m,\x00 tiered\tseating\ud83d."
    assert clean_caption(answer, TRIGGER, PREFIX) == "lecture hall, tiered seating\ufffd"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("lecture hall, tiered seating, windows", 30, "lecture hall, tiered seating"),
        ("lecture hall tiered seating windows", 30, "lecture hall tiered seating"),
        ("x" * 50, 20, "x" * 20),
        ("a, " + "y" * 40, 20, "a, " + "y" * 17),  # a separator too early is not used
    ],
)
def test_limit_length_cuts_at_a_phrase_or_word(text: str, limit: int, expected: str) -> None:
    assert limit_length(text, limit) == expected
    assert len(limit_length(text, limit)) <= limit


def test_every_profile_has_limits_and_structured_ones_are_shorter() -> None:
    custom = ANSWER_LIMITS[Profile.CUSTOM]
    for profile in Profile:
        limits = build_instructions(profile, "Describe it.").limits
        assert limits is ANSWER_LIMITS[profile]
        assert 0 < limits.field < limits.body < limits.answer
        assert limits.body <= custom.body


def test_a_long_plain_answer_is_cut_to_the_profile_limit() -> None:
    custom = build_instructions(Profile.CUSTOM, "Describe it.")
    limit = custom.limits.body
    answer = ", ".join(f"detail {n}" for n in range(limit // 5))  # well over the limit
    body = parse_answer(answer, custom, TRIGGER, PREFIX)
    assert limit - 20 < len(body) <= limit
    assert body.startswith("detail 0, detail 1, ") and not body.endswith(",")
    assert answer.startswith(body)


def test_a_structured_answer_is_bounded_field_by_field() -> None:
    limits = SPACE.limits
    answer = json.dumps({
        "room_type": "atrium " * 200,
        "key_objects": [f"object {n}" for n in range(500)],
        "lighting": "daylight",
        "contextual_details": "busy",
    })
    body = parse_answer(answer, SPACE, TRIGGER, PREFIX)
    pieces = body.split(", ")
    assert len(pieces[0]) <= limits.field and pieces[0].startswith("atrium atrium")
    assert pieces[1:limits.items + 1] == [f"object {n}" for n in range(limits.items)]
    assert pieces[-2:] == ["daylight", "busy"]  # a runaway field leaves room for the others
    assert len(body) <= limits.body


def test_an_answer_too_long_to_be_a_caption_fails_its_image() -> None:
    for instructions in (SPACE, build_instructions(Profile.CUSTOM, "Describe it.")):
        too_long = "a chair, " * (instructions.limits.answer // 9 + 1)
        with pytest.raises(ImageRejectedError, match=r"too long to be a caption \([\d,]+ "
                                                    r"characters; at most [\d,]+ are kept\)"):
            parse_answer(too_long, instructions, TRIGGER, PREFIX)


def test_deeply_nested_json_is_not_a_crash() -> None:
    # json.loads raises RecursionError past about a thousand levels: read as plain text.
    assert parse_answer("[" * 5000 + "]" * 5000, SPACE, TRIGGER, PREFIX) == ""
    nested = '{"room_type": ' + "[" * 3000 + '"hall"' + "]" * 3000 + "}"
    assert len(parse_answer(nested, SPACE, TRIGGER, PREFIX)) <= SPACE.limits.body


def test_control_characters_inside_json_fields_are_removed() -> None:
    answer = json.dumps({"room_type": "hall\u0000\u001b[31m", "key_objects": ["chair\ud800"],
                         "lighting": "\u009b0mdaylight", "contextual_details": "busy"})
    assert parse_answer(answer, SPACE, TRIGGER, PREFIX) == "hall, chair\ufffd, daylight, busy"
