"""Generating question-answer pairs for one image, and answering a person's questions
(issue 14, "Generating").

One image is one job of the captioning runner (:mod:`loracap.jobs.runner`), under the batch's
rules: the shared rate limiter, retries, the consecutive-timeout watch, cancel and Ctrl+C
(:meth:`loracap.core.captioning.Attempt.send`). With structured output (every vision backend,
unless an OpenAI-compatible server refused it) one request asks for the questions and their
answers together (:func:`~loracap.core.qa.prompts.pairs_prompt`); otherwise two: the
questions, one per line, then their answers.

What the model returns is checked pair by pair: questions already asked about the image (or
twice in the answer) are not added; an answer that is not one of the project's labels or does
not follow the user's JSON schema is stored *invalid* with its reason (never exported as
valid, :func:`validate_answer`); fewer pairs than asked is reported. The pairs are committed
with the tokens they cost before the image is reported done.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from loracap.core.backends.base import Answer, TokenUsage, VisionAsker, vision_asker
from loracap.core.captioning import Attempt, ImageFailed, ImageOutcome, _saving
from loracap.core.errors import ImageRejectedError, InputError
from loracap.core.prompts import check_language, sanitize_text
from loracap.core.qa.prompts import (
    DEFAULT_PRESET,
    DEFAULT_QUESTIONS,
    answers_prompt,
    answers_schema,
    check_count,
    check_preset,
    check_template,
    pairs_prompt,
    pairs_schema,
    questions_prompt,
)
from loracap.core.qa.records import AnswerType, QAEntry

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: Longest question and answer kept, in characters (a runaway answer is cut, not stored whole).
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 4000

_THINKING = re.compile(r"^\s*<think>.*?</think>", re.S)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S | re.I)
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\(?\d{1,2}[.)\]:]|Q\d{1,2}[.:)])\s*", re.I)


@dataclass(frozen=True)
class QAOptions:
    """How a batch makes question-answer pairs (``loracap qa generate`` / ``qa answer``).

    ``questions`` per image (1-20), in ``language`` (a code of
    :data:`loracap.core.prompts.LANGUAGES`), of the ``preset`` kind or from the user's
    ``template``; answers of ``answer_type`` checked against the project's ``labels`` or JSON
    ``schema``. ``answer_only``: answer the questions a person wrote (``qa answer``) instead
    of asking new ones. ``only`` chooses the images: ``missing`` (no pair yet), ``all`` or
    ``selected``.
    """

    questions: int = DEFAULT_QUESTIONS
    language: str = "en"
    preset: str = DEFAULT_PRESET
    template: str = ""
    answer_type: AnswerType = AnswerType.TEXT
    labels: tuple[str, ...] = ()
    schema: str = ""
    answer_only: bool = False
    only: str = "missing"

    def checked(self) -> QAOptions:
        """The options with every value checked (raises :class:`InputError` with the first
        problem): the language code normalised, the preset known, the template usable, the
        count in range, labels or a schema present for those answer types."""
        from loracap.core.qa.prompts import answer_rules

        if self.only not in ("missing", "all", "selected"):
            raise InputError(f'--only is missing, all or selected, not "{self.only[:20]}".')
        answer_rules(self.answer_type, self.labels, self.schema)
        if self.answer_type is AnswerType.CUSTOM_FORMAT:
            load_schema(self.schema)
        return replace(self, questions=check_count(self.questions),
                       language=check_language(self.language),
                       preset=check_preset(self.preset),
                       template=check_template(self.template) if self.template else "")


# ---------------------------------------------------------------------- reading answers


def _json_text(text: str) -> str:
    """The JSON inside a model's answer: without a leading ``<think>…</think>``, a code fence,
    or words before the first ``{`` and after the last ``}``."""
    text = _THINKING.sub("", text, count=1).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else text


def _load_object(text: str, what: str) -> dict[str, Any]:
    try:
        loaded = json.loads(_json_text(text))
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict):
        shown = " ".join(text.split())[:80]
        raise ImageRejectedError(f"The model's {what} is not the JSON asked for: \"{shown}\".")
    return loaded


def _clean(text: object, limit: int) -> str:
    value = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    cleaned = " ".join(sanitize_text(value).split())
    return cleaned[:limit].rstrip()


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """The ``(question, answer)`` pairs of a model's answer to
    :func:`~loracap.core.qa.prompts.pairs_prompt`, cleaned (control characters removed,
    whitespace collapsed, cut at :data:`MAX_QUESTION_CHARS` / :data:`MAX_ANSWER_CHARS`); items
    without a question are dropped. A code fence or words around the JSON are tolerated.
    Raises :class:`ImageRejectedError` when the answer is not such JSON."""
    loaded = _load_object(text, "answer")
    items = loaded.get("pairs")
    if not isinstance(items, list):
        raise ImageRejectedError('The model\'s answer has no "pairs" list.')
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        question = _clean(item.get("question", ""), MAX_QUESTION_CHARS)
        answer = _clean(item.get("answer", ""), MAX_ANSWER_CHARS)
        if question:
            pairs.append((question, answer))
    return pairs


def parse_answers(text: str, count: int) -> list[str]:
    """The answers of a model's answer to :func:`~loracap.core.qa.prompts.answers_prompt`:
    ``{"answers": [...]}``, else (a server without structured output) one answer per
    numbered line. Always ``count`` items (missing ones ``""``)."""
    try:
        items = _load_object(text, "answer").get("answers")
    except ImageRejectedError:
        items = None
    if not isinstance(items, list):
        lines = [line for line in _THINKING.sub("", text, count=1).splitlines() if line.strip()]
        items = [_NUMBERING.sub("", line) for line in lines]
    answers = [_clean(item, MAX_ANSWER_CHARS) for item in items[:count]]
    return answers + [""] * (count - len(answers))


def parse_questions(text: str) -> list[str]:
    """The questions of a model's answer to :func:`~loracap.core.qa.prompts.questions_prompt`:
    one per line, bullets and numbers removed."""
    lines = _THINKING.sub("", text, count=1).splitlines()
    questions = [_clean(_NUMBERING.sub("", line), MAX_QUESTION_CHARS) for line in lines]
    return [question for question in questions if question]


def question_key(question: str) -> str:
    """What makes two questions the same: case and runs of whitespace ignored."""
    return " ".join(question.casefold().split())


# ---------------------------------------------------------------------- answer types


def load_schema(schema: str) -> dict[str, Any]:
    """The user's JSON schema of ``custom_format`` answers, parsed and checked against its
    own meta-schema (:mod:`jsonschema`, the draft its ``$schema`` names, else 2020-12).
    Raises :class:`InputError` with the reason when it is not a usable schema."""
    import jsonschema

    try:
        loaded = json.loads(schema)
    except ValueError as exc:
        raise InputError(f"The answer schema is not JSON: {exc}.") from exc
    if not isinstance(loaded, dict):
        raise InputError("The answer schema must be a JSON object.")
    validator = jsonschema.validators.validator_for(loaded, jsonschema.Draft202012Validator)
    try:
        validator.check_schema(loaded)
    except jsonschema.SchemaError as exc:
        raise InputError(f"The answer schema is not a valid JSON schema: {exc.message}.") \
            from exc
    return loaded


def validate_answer(answer: str, answer_type: AnswerType, labels: Sequence[str] = (),
                    schema: str = "") -> tuple[str, str]:
    """``(answer, reason)``: the answer as stored (label and custom-format answers as compact
    JSON) and why it is invalid, ``""`` when it is valid.

    * ``text``: any non-empty text.
    * ``label``: a JSON array of labels from ``labels`` (a single bare label is taken as a
      one-label array; labels match ignoring case and are stored as the list spells them);
      a label outside the list is invalid.
    * ``custom_format``: JSON that validates against ``schema`` (:mod:`jsonschema`); the
      first error is the reason.
    """
    if not answer.strip():
        return answer, "The answer is empty."
    if answer_type is AnswerType.LABEL:
        return _validate_labels(answer, labels)
    if answer_type is AnswerType.CUSTOM_FORMAT:
        return _validate_custom(answer, schema)
    return answer, ""


def _validate_labels(answer: str, labels: Sequence[str]) -> tuple[str, str]:
    try:
        value = json.loads(answer)
    except ValueError:
        value = [answer.strip()]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return answer, "The answer is not a JSON array of labels."
    known = {label.casefold(): label for label in labels}
    chosen: list[str] = []
    for item in value:
        label = known.get(item.strip().casefold())
        if label is None:
            return json.dumps(value, ensure_ascii=False), \
                f'"{item.strip()[:60]}" is not in the project\'s label list.'
        if label not in chosen:
            chosen.append(label)
    return json.dumps(chosen, ensure_ascii=False), ""


def _validate_custom(answer: str, schema: str) -> tuple[str, str]:
    import jsonschema

    try:
        value = json.loads(_json_text(answer) if "{" in answer else answer)
    except ValueError:
        return answer, "The answer is not JSON."
    stored = json.dumps(value, ensure_ascii=False)
    validator_class = jsonschema.validators.validator_for(load_schema(schema),
                                                          jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator_class(json.loads(schema))
                                             .iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        return stored, f"The answer does not follow the schema{f' at {where}' if where else ''}: " \
            f"{error.message[:200]}."
    return stored, ""


# ---------------------------------------------------------------------- one image


@dataclass
class _Asking:
    """The requests of one image: what they cost, and which model answered."""

    attempt: Attempt
    asker: VisionAsker
    jpeg: bytes
    paid: TokenUsage = TokenUsage()

    def ask(self, prompt: str, what: str, schema: dict[str, Any] | None = None) -> Answer:
        answer = self.attempt.send(
            lambda: self.asker.ask(self.jpeg, prompt, json_schema=schema), what)
        self.paid = self.paid + answer.usage
        return answer


def _asker_and_image(attempt: Attempt) -> _Asking:
    job, record = attempt.job, attempt.record
    asker = vision_asker(job.captioner, "Question-answer pairs need")
    try:
        jpeg = job.captioner.prepare(record.abs_path, job.max_side)
    except InputError as exc:
        raise ImageFailed.unusable(exc) from exc
    return _Asking(attempt, asker, jpeg)


def _entries(pairs: Sequence[tuple[str, str]], options: QAOptions, asking: _Asking
             ) -> list[QAEntry]:
    entries: list[QAEntry] = []
    for question, raw in pairs:
        answer, reason = validate_answer(raw, options.answer_type, options.labels,
                                         options.schema)
        entries.append(QAEntry(question, answer, options.answer_type, model=asking.asker.model,
                               backend=asking.asker.backend, valid=not reason,
                               invalid_reason=reason))
    return entries


def _summary(stored: Sequence[QAEntry], asked: int, received: int) -> str:
    """What the outcome says about one image: ``3 pairs``, plus what went wrong per entry."""
    parts = [f"{len(stored)} pair{'s' if len(stored) != 1 else ''}"]
    if received < asked:
        parts.append(f"the model wrote {received} of the {asked} asked for")
    if received > len(stored):
        parts.append(f"{received - len(stored)} already asked left out")
    for entry in stored:
        if not entry.valid:
            parts.append(f'invalid answer to "{entry.question[:50]}": {entry.invalid_reason}')
    return "; ".join(parts)


def generate_pairs(attempt: Attempt, options: QAOptions) -> ImageOutcome:
    """Ask for ``options.questions`` new pairs about ``attempt``'s image and store them (see
    the module's description). A failure of this image (unreadable, refused, not JSON) is
    returned, not recorded on the image's caption; the batch-stopping errors of
    :func:`loracap.core.captioning.caption_image` are raised."""
    try:
        asking = _asker_and_image(attempt)
        count = options.questions
        if getattr(asking.asker, "structured_output", True):
            answer = asking.ask(pairs_prompt(
                count, options.language, preset=options.preset, template=options.template,
                answer_type=options.answer_type, labels=options.labels,
                schema=options.schema), "writing questions: ", pairs_schema(count))
            try:
                pairs = parse_pairs(answer.text)
            except ImageRejectedError as exc:
                if getattr(asking.asker, "structured_output", True):
                    raise ImageFailed(str(exc), "rejected") from exc
                pairs = _two_requests(asking, options)  # the server refused the schema
        else:
            pairs = _two_requests(asking, options)
        if not pairs:
            raise ImageFailed("The model wrote no question.", "rejected")
        return _store(attempt, asking, _entries(pairs[:count], options, asking), count,
                      len(pairs[:count]))
    except ImageFailed as failure:
        return _failed(attempt, failure)


def _two_requests(asking: _Asking, options: QAOptions) -> list[tuple[str, str]]:
    questions = parse_questions(asking.ask(questions_prompt(
        options.questions, options.language, preset=options.preset,
        template=options.template), "writing questions: ").text)[:options.questions]
    if not questions:
        raise ImageFailed("The model wrote no question.", "rejected")
    answers = parse_answers(asking.ask(answers_prompt(
        questions, options.language, answer_type=options.answer_type, labels=options.labels,
        schema=options.schema), "answering: ", answers_schema(len(questions))).text,
        len(questions))
    return list(zip(questions, answers, strict=True))


def _store(attempt: Attempt, asking: _Asking, entries: list[QAEntry], asked: int,
           received: int) -> ImageOutcome:
    project, record = attempt.job.project, attempt.record
    stored = _saving(project, record.path,
                     lambda: project.add_qa(record.id, entries, usage=asking.paid))
    summary = _summary(stored, asked, received)
    log.info("Question-answer pairs of %s: %s", record.path, summary)
    return ImageOutcome(record.id, ok=True, body=summary, stored=bool(stored),
                        request_s=attempt.last_request_s)


def _failed(attempt: Attempt, failure: ImageFailed) -> ImageOutcome:
    if failure.invalid_reason:  # pixels that do not decode: the image is invalid
        project, record = attempt.job.project, attempt.record
        _saving(project, record.path,
                lambda: project.mark_invalid(record.id, failure.invalid_reason))
    log.info("Question-answer pairs of %s failed: %s", attempt.record.path, failure.message)
    return ImageOutcome(attempt.record.id, ok=False, error=failure.message, kind=failure.kind,
                        request_s=attempt.last_request_s)


def answer_questions(attempt: Attempt, options: QAOptions) -> ImageOutcome:
    """Answer the questions of ``attempt``'s image that have no answer yet (a person wrote
    them; ``loracap qa answer``) with one request, and store each answer (validated as
    :func:`validate_answer` says) as the model's."""
    project, record = attempt.job.project, attempt.record
    waiting = project.unanswered_qa([record.id]).get(record.id, [])
    if not waiting:
        return ImageOutcome(record.id, ok=True, body="0 answers (no open question)")
    try:
        asking = _asker_and_image(attempt)
        questions = [entry.question for entry in waiting]
        answer = asking.ask(answers_prompt(
            questions, options.language, answer_type=waiting[0].answer_type,
            labels=options.labels, schema=options.schema), "answering: ",
            answers_schema(len(questions)))
        answers = parse_answers(answer.text, len(questions))
    except ImageFailed as failure:
        return _failed(attempt, failure)
    written = 0
    notes: list[str] = []
    paid: TokenUsage | None = asking.paid
    for entry, raw in zip(waiting, answers, strict=True):
        if not raw:
            notes.append(f'no answer to "{entry.question[:50]}"')
            continue
        text, reason = validate_answer(raw, entry.answer_type, options.labels, options.schema)
        usage, paid = paid, None  # the request's tokens go with the first answer stored
        if _store_answer(attempt, asking, entry, text, reason, usage):
            written += 1
        if reason:
            notes.append(f'invalid answer to "{entry.question[:50]}": {reason}')
    summary = "; ".join([f"{written} answer{'s' if written != 1 else ''}", *notes])
    return ImageOutcome(record.id, ok=True, body=summary, stored=written > 0,
                        request_s=attempt.last_request_s)


def _store_answer(attempt: Attempt, asking: _Asking, entry: QAEntry, text: str, reason: str,
                  usage: TokenUsage | None) -> bool:
    project, record = attempt.job.project, attempt.record

    def write() -> bool:
        return project.set_answer(entry.id, text, backend=asking.asker.backend,
                                  model=asking.asker.model, valid=not reason,
                                  invalid_reason=reason, usage=usage)

    return _saving(project, record.path, write)


def answer_again(project: Project, entry_id: int, captioner: object, *, max_side: int = 1536,
                 labels: Sequence[str] = (), schema: str = "", language: str = "en",
                 overwrite_confirmed: bool = False) -> QAEntry:
    """Ask the model again for the answer of one entry (the window's "Regenerate Answer"):
    one request, no retries; the answer replaces the entry's (a new version, provenance
    generated) unless the entry is confirmed or a person wrote or edited its answer and
    ``overwrite_confirmed`` is False: then :class:`InputError` says so and nothing is sent.
    Returns the entry as stored."""
    from loracap.core.records import Provenance

    entry = project.qa_entry(entry_id)
    if not overwrite_confirmed and (entry.confirmed or entry.provenance is not
                                    Provenance.GENERATED) and entry.answer:
        raise InputError("This answer is confirmed or was written by a person; confirm that "
                         "it may be replaced.")
    asker = vision_asker(captioner, "Answering needs")
    record = project.image(entry.image_id)
    jpeg = captioner.prepare(record.abs_path, max_side)  # type: ignore[attr-defined]
    answer = asker.ask(jpeg, answers_prompt(
        [entry.question], language, answer_type=entry.answer_type, labels=labels,
        schema=schema), json_schema=answers_schema(1))
    [raw] = parse_answers(answer.text, 1)
    if not raw:
        raise ImageRejectedError("The model returned an empty answer.")
    text, reason = validate_answer(raw, entry.answer_type, labels, schema)
    project.set_answer(entry_id, text, backend=answer.backend or asker.backend,
                       model=answer.model or asker.model, valid=not reason,
                       invalid_reason=reason, usage=answer.usage,
                       overwrite_confirmed=overwrite_confirmed)
    return project.qa_entry(entry_id)


__all__ = ["MAX_ANSWER_CHARS", "MAX_QUESTION_CHARS", "QAOptions", "answer_again",
           "answer_questions", "generate_pairs", "load_schema", "parse_answers",
           "parse_pairs", "parse_questions", "question_key", "validate_answer"]
