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
    [(Profile.SPACE, "Interior space"), (Profile.PERSON, "Person"), (Profile.CUSTOM, "Custom prompt"),
     (Profile.TAGS, "Booru tags"), (Profile.PARAGRAPH, "Natural-language paragraph"),
     (Profile.SHORT, "Short caption")],
)
def test_profile_labels(profile: Profile, label: str) -> None:
    assert profile.label == label
    assert profile_label(profile) == label


def test_profile_values_are_stable_strings() -> None:
    # The values are stored in project files; the new profiles come before "custom" in menus.
    assert [p.value for p in Profile] == ["space", "person", "tags", "paragraph", "short",
                                          "multi-person", "multi-person-tags", "custom"]
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


# --- the tags, paragraph and short profiles ---------------------------------------------------


NO_PREFIX = 'Do NOT include the "photo of [trigger_word]" prefix or any trigger word'


@pytest.mark.parametrize("profile", list(Profile))
def test_every_prompt_keeps_the_no_prefix_rule(profile: Profile) -> None:
    for language in ("en", "zh-Hans", "tr"):
        prompt = build_instructions(profile, "Describe it.", language=language).prompt
        assert NO_PREFIX in prompt or ('"photo of ..." prefix or trigger word' in prompt
                                       and profile is Profile.CUSTOM)


def test_tags_instructions_ask_for_a_list_of_booru_tags() -> None:
    tags = build_instructions(Profile.TAGS)
    assert tags.structured and tags.field_order == ("tags",)
    assert tags.json_schema is not None
    assert tags.json_schema["required"] == ["tags"]
    assert tags.json_schema["properties"]["tags"]["type"] == "array"
    assert tags.json_schema["properties"]["tags"]["items"] == {"type": "string"}
    assert "Danbooru" in tags.prompt and "most important first" in tags.prompt
    assert "not underscores" in tags.prompt and "No sentences" in tags.prompt
    from loracap.core.prompts import _TAGS_EXAMPLE
    assert json.dumps(_TAGS_EXAMPLE) in tags.prompt


@pytest.mark.parametrize(("profile", "words"), [
    (Profile.PARAGRAPH, ["3 to 5 complete sentences", "FLUX", "one paragraph", "on one line"]),
    (Profile.SHORT, ["one sentence of at most 20 words", "on one line"]),
])
def test_plain_profiles_ask_for_plain_text(profile: Profile, words: list[str]) -> None:
    instructions = build_instructions(profile)
    assert not instructions.structured and instructions.field_order == ()
    assert instructions.json_schema is None
    for word in words:
        assert word in instructions.prompt
    assert "JSON" not in instructions.prompt


def test_the_new_profiles_ignore_a_custom_prompt() -> None:
    for profile in (Profile.TAGS, Profile.PARAGRAPH, Profile.SHORT):
        assert build_instructions(profile, "Say hello.") == build_instructions(profile)
        assert "Say hello" not in build_instructions(profile, "Say hello.").prompt


def test_limits_of_the_new_profiles() -> None:
    tags, paragraph, short = (ANSWER_LIMITS[p] for p in (Profile.TAGS, Profile.PARAGRAPH,
                                                          Profile.SHORT))
    assert tags.items >= 40  # the prompt asks for up to 40 tags: all are kept
    assert tags.field <= 100  # a tag is a few words
    assert short.body <= 400  # one CLIP window: a short caption is short
    assert paragraph.body >= 1_000  # 3-5 detailed sentences fit
    assert paragraph.body <= 2_000  # what FLUX's T5 reads


def test_example_captions_of_the_new_profiles() -> None:
    from loracap.core.prompts import example_caption_body

    tags = example_caption_body(Profile.TAGS)
    assert tags.startswith("no humans, scenery, indoors, lecture hall")
    assert "." not in tags
    paragraph = example_caption_body(Profile.PARAGRAPH)
    assert 3 <= paragraph.count(". ") + 1 <= 5 and paragraph.endswith(".")
    short = example_caption_body(Profile.SHORT)
    assert len(short.split()) <= 20 and "," not in short and not short.endswith(".")
    for body, profile in ((tags, Profile.TAGS), (paragraph, Profile.PARAGRAPH),
                          (short, Profile.SHORT)):
        assert len(body) <= ANSWER_LIMITS[profile].body


TAGS = build_instructions(Profile.TAGS)
PARAGRAPH = build_instructions(Profile.PARAGRAPH)
SHORT = build_instructions(Profile.SHORT)


def test_a_tags_answer_is_joined_without_repeats() -> None:
    answer = json.dumps({"tags": ["photo of ide_main_hall", "no humans", "Indoors", "desk",
                                  "indoors", "**chair**", "", "desk."]})
    assert parse_answer(answer, TAGS, TRIGGER, PREFIX) == "no humans, Indoors, desk, chair"


def test_a_tags_answer_is_bounded_tag_by_tag() -> None:
    limits = TAGS.limits
    answer = json.dumps({"tags": ["long " * 50] + [f"tag {n}" for n in range(200)]})
    pieces = parse_answer(answer, TAGS, TRIGGER, PREFIX).split(", ")
    assert len(pieces) == limits.items
    assert len(pieces[0]) <= limits.field and pieces[0].startswith("long long")
    assert pieces[-1] == f"tag {limits.items - 2}"


def test_a_tags_answer_in_plain_text_is_cleaned_and_deduplicated() -> None:
    answer = "Tags: 1girl, solo, long hair, Solo, smile.\n- smile"
    assert parse_answer(answer, TAGS, TRIGGER, PREFIX) == "Tags: 1girl, solo, long hair, smile"
    # Only whole tags are compared: "1,000 seats" is one piece, and it stays.
    assert parse_answer("1,000 seats, hall, hall", TAGS, "", "") == "1,000 seats, hall"


def test_a_paragraph_keeps_its_sentences() -> None:
    answer = ("Here is a detailed description:\n\nA large hall with wooden seats.\n"
              "The lights are on\nIt is empty.")
    assert parse_answer(answer, PARAGRAPH, TRIGGER, PREFIX) == (
        "A large hall with wooden seats. The lights are on. It is empty.")
    # The other plain profiles still join lines as phrases and drop the final period.
    assert parse_answer("A hall.\nIt is empty.", SHORT, TRIGGER, PREFIX) == "A hall, It is empty"


def test_a_long_paragraph_is_cut_after_a_whole_sentence() -> None:
    limit = PARAGRAPH.limits.body
    sentence = "The wooden seats rise in rows toward the back, under a white ceiling. "
    body = parse_answer(sentence * (limit // len(sentence) + 5), PARAGRAPH, TRIGGER, PREFIX)
    assert limit - len(sentence) < len(body) <= limit
    assert body.endswith("under a white ceiling.")


def test_a_long_short_caption_is_cut_to_its_limit() -> None:
    answer = "a hall with " + "many wooden seats and " * 40
    body = parse_answer(answer, SHORT, TRIGGER, PREFIX)
    assert SHORT.limits.body - 10 < len(body) <= SHORT.limits.body
    assert answer.startswith(body + " ")  # whole words


# --- languages --------------------------------------------------------------------------------


def test_languages_are_ordered_with_english_first() -> None:
    from loracap.core.prompts import LANGUAGES

    codes = list(LANGUAGES)
    assert codes[0] == "en"
    assert {"en", "zh-Hans", "tr", "de", "nl", "fr", "es", "ja"} <= set(codes)
    assert LANGUAGES["zh-Hans"] == ("Simplified Chinese", "\u7b80\u4f53\u4e2d\u6587")
    assert LANGUAGES["tr"] == ("Turkish", "T\u00fcrk\u00e7e")
    with pytest.raises(TypeError):
        LANGUAGES["xx"] = ("X", "X")  # type: ignore[index]


@pytest.mark.parametrize(("code", "expected"), [
    ("en", "en"), ("zh-Hans", "zh-Hans"), ("zh_hans", "zh-Hans"), (" ZH-HANS ", "zh-Hans"),
    ("DE", "de"), ("ja", "ja"),
])
def test_check_language_gives_the_known_code(code: str, expected: str) -> None:
    from loracap.core.prompts import check_language

    assert check_language(code) == expected


@pytest.mark.parametrize("code", ["", "xx", "zh", "english", "en-US", "t\u00fcrk\u00e7e"])
def test_check_language_refuses_an_unknown_code_listing_the_valid_ones(code: str) -> None:
    from loracap.core.prompts import check_language

    with pytest.raises(InputError) as info:
        check_language(code)
    message = str(info.value)
    assert "not a caption language" in message
    assert "en (English)" in message and "zh-Hans (Simplified Chinese)" in message
    assert "tr (Turkish)" in message


def test_language_names_and_labels() -> None:
    from loracap.core.prompts import language_label, language_name

    assert language_name("zh-Hans") == "Simplified Chinese"
    assert language_name("nl") == "Dutch"
    assert language_label("de") == "German (Deutsch)"
    assert language_label("en") == "English"
    with pytest.raises(InputError):
        language_name("xx")


def test_english_prompts_are_unchanged_by_the_language_argument() -> None:
    for profile in Profile:
        default = build_instructions(profile, "Describe it.")
        english = build_instructions(profile, "Describe it.", language="en")
        assert english == default and default.language == "en"
        assert "Write the caption in" not in default.prompt
        assert "Write the text of every field in" not in default.prompt


def test_a_plain_prompt_asks_for_the_language() -> None:
    for profile in (Profile.PARAGRAPH, Profile.SHORT, Profile.CUSTOM):
        instructions = build_instructions(profile, "Describe the facade.", language="zh_hans")
        assert instructions.language == "zh-Hans"
        assert instructions.prompt.endswith(
            "\nWrite the caption in Simplified Chinese (\u7b80\u4f53\u4e2d\u6587).")
        assert instructions.prompt.startswith(build_instructions(profile, "Describe the facade.")
                                              .prompt)


def test_a_structured_prompt_asks_for_the_fields_in_the_language_and_keeps_the_keys() -> None:
    space = build_instructions(Profile.SPACE, language="tr")
    assert space.prompt.endswith(
        "Write the text of every field in Turkish (T\u00fcrk\u00e7e), even though the example "
        "is in English; keep the JSON keys exactly as given, in English.")
    assert space.json_schema == build_instructions(Profile.SPACE).json_schema
    assert space.field_order == SPACE.field_order
    tags = build_instructions(Profile.TAGS, language="ja")
    assert "Write every tag in Japanese (\u65e5\u672c\u8a9e)" in tags.prompt
    assert 'keep the JSON key "tags"' in tags.prompt


def test_an_unknown_language_is_refused_by_build_instructions() -> None:
    with pytest.raises(InputError, match="not a caption language"):
        build_instructions(Profile.SPACE, language="klingon")


# --- cleaning of non-English answers ----------------------------------------------------------


@pytest.mark.parametrize(("answer", "expected"), [
    # lead-ins in other languages, with ASCII or fullwidth colons
    ("\u63cf\u8ff0\uff1a\u4e00\u95f4\u5bbd\u655e\u7684\u6559\u5ba4\uff0c\u6728\u5236\u5ea7\u6905\u3002",
     "\u4e00\u95f4\u5bbd\u655e\u7684\u6559\u5ba4\uff0c\u6728\u5236\u5ea7\u6905"),
    ("\u56fe\u7247\u63cf\u8ff0: \u6559\u5ba4", "\u6559\u5ba4"),
    ("\u30ad\u30e3\u30d7\u30b7\u30e7\u30f3\uff1a\u4f1a\u8b70\u5ba4\u3001\u6728\u306e\u6905\u5b50",
     "\u4f1a\u8b70\u5ba4\u3001\u6728\u306e\u6905\u5b50"),
    ("A\u00e7\u0131klama: Geni\u015f bir amfi, ah\u015fap s\u0131ralar.",
     "Geni\u015f bir amfi, ah\u015fap s\u0131ralar"),
    ("A\u00c7IKLAMA: \u0130ki ki\u015fi", "\u0130ki ki\u015fi"),
    ("Beschreibung: Ein H\u00f6rsaal mit Holzb\u00e4nken", "Ein H\u00f6rsaal mit Holzb\u00e4nken"),
    ("L\u00e9gende : une salle de cours", "une salle de cours"),
    ("Descripci\u00f3n:\nuna sala", "una sala"),
    # text that only looks like a lead-in stays whole
    ("A\u00e7\u0131k bir ofis: masalar", "A\u00e7\u0131k bir ofis: masalar"),
    ("\u63cf\u8ff0\u4e86\u4e00\u95f4\u6559\u5ba4", "\u63cf\u8ff0\u4e86\u4e00\u95f4\u6559\u5ba4"),
    ("Opisany pok\u00f3j", "Opisany pok\u00f3j"),
    # CJK quotes and the prefix before Chinese text
    ("\u300c\u4f1a\u8b70\u5ba4\u306e\u5199\u771f\u300d", "\u4f1a\u8b70\u5ba4\u306e\u5199\u771f"),
    ("photo of ide_main_hall \u9636\u68af\u6559\u5ba4", "\u9636\u68af\u6559\u5ba4"),
    # Turkish dotted and dotless i are kept as written
    ("\u0131\u015f\u0131kl\u0131 \u0130stanbul ofisi", "\u0131\u015f\u0131kl\u0131 \u0130stanbul ofisi"),
])
def test_clean_caption_in_other_languages(answer: str, expected: str) -> None:
    assert clean_caption(answer, TRIGGER, PREFIX) == expected


def test_a_chinese_paragraph_keeps_its_full_stops_and_no_spaces() -> None:
    answer = "\u4e00\u95f4\u6559\u5ba4\n\u5ea7\u6905\u662f\u6728\u5236\u7684\u3002\n\u706f\u5149\u660e\u4eae\u3002"
    assert parse_answer(answer, PARAGRAPH, TRIGGER, PREFIX) == (
        "\u4e00\u95f4\u6559\u5ba4\u3002\u5ea7\u6905\u662f\u6728\u5236\u7684\u3002"
        "\u706f\u5149\u660e\u4eae\u3002")


@pytest.mark.parametrize(("text", "limit", "expected"), [
    # Chinese: the last fullwidth comma or full stop in the second half
    ("\u4e00\u95f4\u6559\u5ba4\uff0c\u6728\u5236\u5ea7\u6905\uff0c\u6295\u5f71\u5e55\u5e03", 10,
     "\u4e00\u95f4\u6559\u5ba4\uff0c\u6728\u5236\u5ea7\u6905"),
    ("\u4e00\u95f4\u5bbd\u655e\u7684\u6559\u5ba4\u3002\u706f\u5149\u660e\u4eae", 10,
     "\u4e00\u95f4\u5bbd\u655e\u7684\u6559\u5ba4"),
    # Japanese: the ideographic comma
    ("\u4f1a\u8b70\u5ba4\u3001\u6728\u306e\u6905\u5b50\u3001\u767d\u3044\u58c1", 9,
     "\u4f1a\u8b70\u5ba4\u3001\u6728\u306e\u6905\u5b50"),
    # no punctuation or space at all: exactly at the limit, whole characters
    ("\u6559" * 30, 12, "\u6559" * 12),
    # Turkish cuts at a space like English, keeping its letters
    ("\u0131\u015f\u0131kl\u0131 geni\u015f \u00e7al\u0131\u015fma alan\u0131", 19,
     "\u0131\u015f\u0131kl\u0131 geni\u015f"),
])
def test_limit_length_cuts_cjk_and_turkish_text_at_phrases(text: str, limit: int,
                                                           expected: str) -> None:
    assert limit_length(text, limit) == expected
    assert len(limit_length(text, limit)) <= limit


def test_a_chinese_structured_answer_is_assembled() -> None:
    data = {"room_type": "\u9636\u68af\u6559\u5ba4", "key_objects": ["\u6728\u5236\u5ea7\u6905\u3002"],
            "lighting": "\u65e5\u5149\u706f", "contextual_details": "\u5b89\u9759"}
    for ascii_only in (True, False):
        answer = json.dumps(data, ensure_ascii=ascii_only)
        assert parse_answer(answer, SPACE, TRIGGER, PREFIX) == (
            "\u9636\u68af\u6559\u5ba4, \u6728\u5236\u5ea7\u6905, \u65e5\u5149\u706f, \u5b89\u9759")


def test_a_long_chinese_caption_is_cut_to_the_limit() -> None:
    limit = SHORT.limits.body
    answer = "\u6559\u5ba4\u91cc\u6709\u6728\u5236\u5ea7\u6905\uff0c" * 100
    body = parse_answer(answer, SHORT, TRIGGER, PREFIX)
    assert limit // 2 <= len(body) <= limit
    assert body.endswith("\u6728\u5236\u5ea7\u6905")  # at a comma, not inside a word


# --- tag hints --------------------------------------------------------------------------------


HINT_LEAD = "Tags an image tagger saw (may be wrong; describe only what you can see): "


def test_tag_hints_add_one_line_to_the_prompt() -> None:
    hinted = SPACE.with_tag_hints(["indoors", "chair", "ceiling_light"])
    assert hinted.prompt == SPACE.prompt + "\n" + HINT_LEAD + "indoors, chair, ceiling light"
    assert hinted.json_schema == SPACE.json_schema
    assert hinted.json_schema is not SPACE.json_schema  # a copy: the original stays unchanged
    assert (hinted.profile, hinted.field_order, hinted.language) == (
        SPACE.profile, SPACE.field_order, SPACE.language)
    assert NO_PREFIX in hinted.prompt


def test_tag_hints_are_sanitised_and_deduplicated() -> None:
    hinted = SHORT.with_tag_hints([
        "long_hair", "^_^", "Long Hair", "a, b", "x\ny\r\nz", "  ", "", "\x1b[31mred\x1b[0m",
        "tab\tbed", "\u202eevil",
    ])
    line = hinted.prompt.splitlines()[-1]
    assert line == HINT_LEAD + "long hair, ^_^, a b, x y z, red, tab bed, evil"
    assert len(hinted.prompt.splitlines()) == len(SHORT.prompt.splitlines()) + 1


def test_tag_hints_are_bounded() -> None:
    from loracap.core.prompts import MAX_TAG_HINT_LENGTH, MAX_TAG_HINT_LINE, MAX_TAG_HINTS

    many = SPACE.with_tag_hints([f"tag{n}" for n in range(500)])
    line = many.prompt.splitlines()[-1]
    assert line.count(", ") + 1 == MAX_TAG_HINTS and line.endswith(f"tag{MAX_TAG_HINTS - 1}")
    long_tags = SPACE.with_tag_hints([f"{n} " + "word " * 40 for n in range(60)])
    line = long_tags.prompt.splitlines()[-1]
    assert len(line) <= MAX_TAG_HINT_LINE
    tags = line[len(HINT_LEAD):].split(", ")
    assert all(len(tag) <= MAX_TAG_HINT_LENGTH for tag in tags) and len(tags) > 10
    assert tags[0].startswith("0 word word")


@pytest.mark.parametrize("tags", [[], ["", "  ", "\x00", ","]])
def test_no_tag_hints_leave_the_instructions_as_they_are(tags: list[str]) -> None:
    assert SPACE.with_tag_hints(tags) is SPACE


def test_tag_hints_keep_the_language_line() -> None:
    german = build_instructions(Profile.PARAGRAPH, language="de")
    hinted = german.with_tag_hints(["indoors"])
    assert "Write the caption in German (Deutsch)." in hinted.prompt
    assert hinted.prompt.endswith(HINT_LEAD + "indoors") and hinted.language == "de"
