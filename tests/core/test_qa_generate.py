"""Question-answer generation without a network: the prompts, reading the model's answers, and
checking each answer against its type (issue 14, "Generating" and "Bad input")."""

from __future__ import annotations

import json

import pytest

from loracap.core.errors import ImageRejectedError, InputError
from loracap.core.qa.generate import (
    QAOptions,
    load_schema,
    parse_answers,
    parse_pairs,
    parse_questions,
    question_key,
    validate_answer,
)
from loracap.core.qa.prompts import (
    PRESETS,
    answers_prompt,
    check_template,
    pairs_prompt,
    pairs_schema,
)
from loracap.core.qa.records import AnswerType

SCHEMA = json.dumps({"type": "object", "properties": {"count": {"type": "integer",
                                                                "minimum": 0}},
                     "required": ["count"]})


def test_every_preset_asks_for_the_count_in_the_language() -> None:
    for preset in PRESETS:
        prompt = pairs_prompt(4, "tr", preset=preset)
        assert "Write 4 different questions" in prompt
        assert "in Turkish" in prompt and "exactly 4 items" in prompt
    chinese = pairs_prompt(2, "zh-CN", preset="ocr")
    assert "Simplified Chinese" in chinese and "text that can be read" in chinese
    assert pairs_schema(4)["properties"]["pairs"]["maxItems"] == 4


def test_a_custom_template_fills_its_placeholders_and_refuses_others() -> None:
    prompt = pairs_prompt(5, "de", template="Ask {count} questions about the {{logo}} "
                          "({language}).")
    assert prompt.startswith("Ask 5 questions about the {logo} (German).")
    with pytest.raises(InputError, match="placeholder"):
        check_template("Ask about {subject}.")
    with pytest.raises(InputError):
        check_template("   ")
    with pytest.raises(InputError):
        QAOptions(questions=0).checked()
    with pytest.raises(InputError):
        QAOptions(answer_type=AnswerType.LABEL).checked()  # no labels
    assert QAOptions(language="zh-CN").checked().language == "zh-Hans"


def test_label_and_schema_rules_are_in_the_prompt() -> None:
    prompt = pairs_prompt(3, "en", answer_type=AnswerType.LABEL, labels=("cat", "dog"))
    assert '["cat", "dog"]' in prompt
    assert '"count"' in answers_prompt(["How many?"], "en",
                                       answer_type=AnswerType.CUSTOM_FORMAT, schema=SCHEMA)


def test_pairs_are_read_from_json_with_a_fence_or_words_around_it() -> None:
    text = 'Sure!\n```json\n{"pairs": [{"question": " What  colour is the car? ", ' \
        '"answer": "Red."}, {"question": "", "answer": "x"}, "junk"]}\n```'
    assert parse_pairs(text) == [("What colour is the car?", "Red.")]
    assert parse_pairs('<think>hmm</think>{"pairs": []}') == []
    with pytest.raises(ImageRejectedError, match="not the JSON"):
        parse_pairs("I cannot answer questions about this image.")
    with pytest.raises(ImageRejectedError, match="pairs"):
        parse_pairs('{"questions": ["a"]}')


def test_answers_from_json_or_numbered_lines_always_as_many_as_asked() -> None:
    assert parse_answers('{"answers": ["Two.", "Blue."]}', 3) == ["Two.", "Blue.", ""]
    assert parse_answers("1. Two.\n2) Blue.\n", 2) == ["Two.", "Blue."]
    assert parse_questions("1. How many cars?\n- What colour?\n\n") == [
        "How many cars?", "What colour?"]
    assert question_key(" How  many\tCARS? ") == question_key("how many cars?")


def test_label_answers_must_come_from_the_list() -> None:
    labels = ("Cat", "Dog", "Bird")
    assert validate_answer('["cat", "DOG", "cat"]', AnswerType.LABEL, labels) == (
        '["Cat", "Dog"]', "")
    assert validate_answer("bird", AnswerType.LABEL, labels) == ('["Bird"]', "")
    answer, reason = validate_answer('["cat", "horse"]', AnswerType.LABEL, labels)
    assert answer == '["cat", "horse"]' and "horse" in reason
    assert validate_answer("[1, 2]", AnswerType.LABEL, labels)[1]
    assert validate_answer("", AnswerType.TEXT)[1] == "The answer is empty."


def test_custom_format_answers_follow_the_users_schema() -> None:
    assert validate_answer('{"count": 3}', AnswerType.CUSTOM_FORMAT, schema=SCHEMA) == (
        '{"count": 3}', "")
    answer, reason = validate_answer('{"count": -1}', AnswerType.CUSTOM_FORMAT, schema=SCHEMA)
    assert answer == '{"count": -1}'
    assert reason == ("The answer does not follow the schema at count: -1 is less than the "
                      "minimum of 0.")
    assert "'count' is a required property" in validate_answer(
        '{"x": 1}', AnswerType.CUSTOM_FORMAT, schema=SCHEMA)[1]
    assert "not JSON" in validate_answer("three", AnswerType.CUSTOM_FORMAT, schema=SCHEMA)[1]
    with pytest.raises(InputError, match="not a valid JSON schema"):
        load_schema('{"type": "banana"}')
    with pytest.raises(InputError, match="not JSON"):
        load_schema("{type: object}")
