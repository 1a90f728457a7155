"""What a vision model is asked to write question-answer pairs about an image (issue 14).

A *preset* says what kind of questions to ask (:data:`PRESETS`: ``descriptive``,
``reasoning``, ``counting`` -- counting and spatial relations -- and ``ocr``); a user's own
template (``--prompt-file``) replaces it. Either may use ``{count}`` (how many questions) and
``{language}`` (the language's English name). LoRACap then adds what it needs to read the
answer back: how many pairs, the language, the answer type's rules (:func:`answer_rules`) and,
for a backend without structured output, the exact JSON shape.

The answer is one JSON object ``{"pairs": [{"question": …, "answer": …}, …]}``
(:func:`pairs_schema`), asked for with the backend's structured output -- Gemini's
``response_json_schema``, OpenAI's ``response_format``, a forced tool for Claude
(:meth:`loracap.core.backends.base.VisionAsker.ask`). Plain Python; no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from loracap.core.errors import InputError
from loracap.core.prompts import language_name
from loracap.core.qa.records import AnswerType

#: Questions per image asked by default (issue 14: ``--questions N``, default 3).
DEFAULT_QUESTIONS = 3
#: Most questions one request may ask for: longer lists get repetitive and the answer may be
#: cut off by the model's output limit.
MAX_QUESTIONS = 20
#: Longest custom prompt template, in characters.
MAX_TEMPLATE_CHARS = 8000

PRESETS: Mapping[str, str] = MappingProxyType({
    "descriptive": (
        "Write {count} different questions a person could ask about what is visible in this "
        "image -- the objects, people, clothing, colours, materials, actions and the setting "
        "-- each with a correct, specific answer taken from the image."),
    "reasoning": (
        "Write {count} different questions about this image that need a short chain of "
        "reasoning to answer -- why something is the way it is, what a person is about to "
        "do, what the place is used for, what happened just before -- each with an answer "
        "that states the conclusion and the visible evidence for it."),
    "counting": (
        "Write {count} different questions about this image on counting and spatial "
        "relations -- how many of something there are, what is left or right of, in front "
        "of, behind, above or below something else -- each with a precise answer (a number "
        "where the question asks how many)."),
    "ocr": (
        "Write {count} different questions about the text that can be read in this image -- "
        "signs, labels, screens, documents, packaging -- each with the exact text as the "
        "answer. If the image has less readable text than that, ask about what there is and "
        "where it is."),
})
"""The built-in kinds of questions, by name (``loracap qa generate --prompt NAME``)."""

DEFAULT_PRESET = "descriptive"

_FORMAT_RULES = """\
Answer with one JSON object and nothing else: {{"pairs": [{{"question": "...", "answer": \
"..."}}, ...]}} with exactly {count} items."""


def check_preset(name: str) -> str:
    """``name`` as a preset of :data:`PRESETS` (case and spaces ignored). Raises
    :class:`InputError` listing the presets for any other name."""
    wanted = name.strip().casefold()
    if wanted in PRESETS:
        return wanted
    raise InputError(f'"{name.strip()[:40]}" is not a question preset; choose one of '
                     f"{', '.join(PRESETS)}, or give your own with --prompt-file.")


def check_template(text: str) -> str:
    """A user's prompt template, stripped. Raises :class:`InputError` when it is empty, too
    long (:data:`MAX_TEMPLATE_CHARS`) or uses a placeholder other than ``{count}`` and
    ``{language}`` (write ``{{`` and ``}}`` for literal braces)."""
    template = text.strip()
    if not template:
        raise InputError("The prompt template is empty.")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise InputError(f"The prompt template has {len(template)} characters; at most "
                         f"{MAX_TEMPLATE_CHARS} are allowed.")
    try:
        template.format(count=1, language="English")
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"The prompt template has a placeholder LoRACap does not fill ({exc}); "
                         "use {count} and {language}, and {{ }} for literal braces.") from exc
    return template


def check_count(count: int) -> int:
    """``count`` questions per image, 1 to :data:`MAX_QUESTIONS`; raises :class:`InputError`
    otherwise."""
    if not 1 <= count <= MAX_QUESTIONS:
        raise InputError(f"Ask for 1 to {MAX_QUESTIONS} questions per image, not {count}.")
    return count


def answer_rules(answer_type: AnswerType, labels: Sequence[str] = (), schema: str = "") -> str:
    """What the prompt says about the answers of ``answer_type``: free text (one or two
    sentences); ``label`` a JSON array of labels chosen from ``labels`` (the project's label
    list); ``custom_format`` JSON following the user's JSON ``schema``. Raises
    :class:`InputError` for a label answer without labels or a custom format without a
    schema."""
    if answer_type is AnswerType.LABEL:
        if not labels:
            raise InputError("Label answers need the project's label list (loracap qa labels).")
        return ("Each answer is a JSON array (written as a string) of one or more labels "
                "chosen only from this list: " + json.dumps(list(labels), ensure_ascii=False)
                + ". Use no other label.")
    if answer_type is AnswerType.CUSTOM_FORMAT:
        if not schema.strip():
            raise InputError("Custom-format answers need a JSON schema (loracap qa schema).")
        return ("Each answer is JSON (written as a string) that follows this JSON schema: "
                + " ".join(schema.split()))
    return "Each answer is one or two complete sentences, specific to this image."


def pairs_prompt(count: int, language: str, *, preset: str = DEFAULT_PRESET,
                 template: str = "", answer_type: AnswerType = AnswerType.TEXT,
                 labels: Sequence[str] = (), schema: str = "") -> str:
    """The prompt asking for ``count`` question-answer pairs in ``language`` (a code of
    :data:`loracap.core.prompts.LANGUAGES`): the ``template`` (else the ``preset``) with its
    placeholders filled, then the language, the answer rules and the JSON shape. Raises
    :class:`InputError` as the ``check_*`` functions do."""
    check_count(count)
    name = language_name(language)
    body = check_template(template) if template else PRESETS[check_preset(preset)]
    lines = [
        body.format(count=count, language=name),
        "Ask only what the image itself answers; do not ask about things that cannot be seen.",
        "No two questions may ask the same thing.",
        answer_rules(answer_type, labels, schema),
        f"Write the questions and answers in {name}.",
        _FORMAT_RULES.format(count=count),
    ]
    return "\n".join(lines)


def pairs_schema(count: int) -> dict[str, Any]:
    """The JSON schema of the answer: ``{"pairs": [{"question", "answer"}, …]}`` with
    ``count`` items (``minItems``/``maxItems``, which Gemini, OpenAI and Claude accept)."""
    pair = {"type": "object",
            "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
            "required": ["question", "answer"]}
    return {"type": "object",
            "properties": {"pairs": {"type": "array", "items": pair, "minItems": count,
                                     "maxItems": count}},
            "required": ["pairs"]}


def answers_prompt(questions: Sequence[str], language: str, *,
                   answer_type: AnswerType = AnswerType.TEXT, labels: Sequence[str] = (),
                   schema: str = "") -> str:
    """The prompt asking the model to answer ``questions`` (a person's, or those of the
    first of two requests) about the image, in order, as ``{"answers": ["…", …]}``."""
    name = language_name(language)
    numbered = "\n".join(f"{number}. {' '.join(question.split())}"
                         for number, question in enumerate(questions, start=1))
    return "\n".join([
        "Answer each of these questions about this image, from what the image shows:",
        numbered,
        answer_rules(answer_type, labels, schema),
        f"Write the answers in {name}.",
        'Answer with one JSON object and nothing else: {"answers": ["...", ...]} with one '
        f"answer per question, in the same order ({len(questions)} in all).",
    ])


def answers_schema(count: int) -> dict[str, Any]:
    """The JSON schema of :func:`answers_prompt`'s answer: ``{"answers": [str × count]}``."""
    return {"type": "object",
            "properties": {"answers": {"type": "array", "items": {"type": "string"},
                                       "minItems": count, "maxItems": count}},
            "required": ["answers"]}


def questions_prompt(count: int, language: str, *, preset: str = DEFAULT_PRESET,
                     template: str = "") -> str:
    """The first of two requests (for a server without structured output): only the
    questions, one per line."""
    check_count(count)
    name = language_name(language)
    body = check_template(template) if template else PRESETS[check_preset(preset)]
    return "\n".join([
        body.format(count=count, language=name),
        "Ask only what the image itself answers; no two questions may ask the same thing.",
        f"Write only the {count} questions, in {name}, one per line, with no numbers, no "
        "answers and nothing else.",
    ])


__all__ = ["DEFAULT_PRESET", "DEFAULT_QUESTIONS", "MAX_QUESTIONS", "PRESETS", "answer_rules",
           "answers_prompt", "answers_schema", "check_count", "check_preset", "check_template",
           "pairs_prompt", "pairs_schema", "questions_prompt"]
