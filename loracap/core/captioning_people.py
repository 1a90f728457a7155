"""Captioning one image with several people (issue 13): detect, describe each person, describe the
scene, store the caption only when every part succeeded.

One image is one job of 1 + N + 1 requests to the batch's vision model, each under the batch's
rules (the shared rate limiter, retries, the consecutive-timeout watch, Ctrl+C;
:meth:`loracap.core.captioning.Attempt.send`):

1. **detection** -- the whole image (EXIF-oriented, long side at most ``max_side``) with
   :data:`~loracap.core.people.DETECTION_PROMPT` and its JSON schema; the boxes are normalised
   0-1000 and scaled to the oriented image (:func:`~loracap.core.people.parse_detection`);
2. **each person** -- :func:`~loracap.core.people.person_crop` (the box plus context, the
   context dimmed) with :func:`~loracap.core.people.person_prompt`, cleaned and cut to 35 words;
3. **the scene** -- :func:`~loracap.core.people.scene_image` (the people dimmed) with
   :func:`~loracap.core.people.scene_prompt`, cleaned and cut to 15 words.

Every part is stored the moment it is paid for (:meth:`~loracap.core.project.Project.
store_person_part`). A failed part fails the image with its reason (``"sksB: …"``); the parts
already paid for stay, and the next run of the same image file with the same backend and model
reuses them instead of paying again (:meth:`~loracap.core.project.Project.reusable_parts`).
An image without people gets the project's ordinary single-subject caption (``job.instructions``)
and ``loracap info --list`` says "no person found".

The caption is ``alias: description`` per person in the project's order, then ``Scene: …``
(:func:`~loracap.core.people.multi_person_caption`); its provenance is the vision model's, its
prompt the person prompt, its tokens those paid in this run.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from loracap.core.backends.base import Answer, TokenUsage, VisionAsker, vision_asker
from loracap.core.captioning import (
    Attempt,
    ImageFailed,
    ImageOutcome,
    _saving,
    caption_single,
)
from loracap.core.errors import CaptionError, ImageRejectedError, InputError
from loracap.core.people import (
    DETECTION_PROMPT,
    DETECTION_SCHEMA,
    PersonBox,
    PersonEntry,
    assign_aliases,
    clean_person_text,
    clean_scene_text,
    multi_person_caption,
    order_people,
    parse_detection,
    person_crop,
    person_prompt,
    scene_image,
    scene_prompt,
)
from loracap.core.people.detector import PersonDetector
from loracap.core.project_people import detected_people, detection_ordered, detection_text
from loracap.core.prompts import Profile, limit_length, sanitize_text
from loracap.core.records import PersonPart, ProjectSettings

if TYPE_CHECKING:
    from PIL import Image

    from loracap.core.project import Project

log = logging.getLogger(__name__)

_THINKING = re.compile(r"^\s*<think>.*?</think>", re.S)

#: Most people described in one image: the largest ones are kept (then put in the project's
#: order). Each person is one paid request; a crowd of 200 boxes must not become 200 requests.
MAX_PEOPLE = 12


@dataclass(frozen=True)
class PeopleOptions:
    """How a batch makes multi-person captions: the project's custom ``aliases`` (first person
    first), the ``order`` of people (``left`` or ``size``) and the caption ``language`` code."""

    aliases: tuple[str, ...] = ()
    order: str = "left"
    language: str = "en"
    #: ``natural`` (a sentence per person, then the scene) or ``tags`` (LoRA tags: the WD14
    #: tagger tags each person's crop and the scene; ``person1, tag, …, scene, tag``).
    mode: str = "natural"
    #: What joins the tags of the ``tags`` mode (the project's tag separator).
    separator: str = ", "
    #: A local ONNX person detector that finds the people instead of the vision model (no
    #: whole image is sent to find them), or None.
    detector: PersonDetector | None = None


def people_options(settings: ProjectSettings) -> PeopleOptions | None:
    """The multi-person options of a project whose profile is ``multi-person``, else None."""
    tags = settings.profile == Profile.MULTI_PERSON_TAGS.value
    if settings.profile != Profile.MULTI_PERSON.value and not tags:
        return None
    detector = PersonDetector(Path(settings.detector).expanduser()) if settings.detector \
        else None
    return PeopleOptions(aliases=tuple(settings.aliases), order=settings.people_order,
                         language=settings.language, mode="tags" if tags else "natural",
                         separator=settings.tag_separator, detector=detector)


def caption_people(attempt: Attempt, options: PeopleOptions) -> ImageOutcome:
    """Caption ``attempt``'s image as a multi-person caption (see the module docstring).

    Raises what :func:`loracap.core.captioning.caption_image` raises; a failure of this image
    is recorded on it and returned.
    """
    paid: list[_PartState] = []
    try:
        return _caption_people(attempt, options, paid)
    except ImageFailed as failure:
        if paid and paid[0].paid.total:
            state = paid[0]
            return attempt.fail(failure, state.paid, (state.asker.backend, state.asker.model))
        return attempt.fail(failure)


def _caption_people(attempt: Attempt, options: PeopleOptions,
                    paid: list[_PartState]) -> ImageOutcome:
    from loracap.core.imaging import jpeg_for_upload, load_rgb_on_white

    job, record = attempt.job, attempt.record
    asker = vision_asker(job.captioner, "Multi-person captions need")
    try:
        stat = os.stat(record.abs_path)
        if job.decodes is not None:  # a whole decode: the next export need not repeat it
            image = job.decodes.prepare(_whole_image, record.abs_path, 0)
        else:
            image = load_rgb_on_white(record.abs_path)
    except InputError as exc:
        raise ImageFailed.unusable(exc) from exc
    except OSError as exc:
        raise ImageFailed(f'Cannot read the image "{record.abs_path}": {exc.strerror or exc}.',
                          "image") from exc
    state = _PartState(attempt, asker, stat.st_size, stat.st_mtime)
    paid.append(state)  # what this run paid, recorded with a failure too
    whole = jpeg_for_upload(image, job.max_side)

    tagger = getattr(asker, "tagger", None) if options.mode == "tags" else None
    if options.mode == "tags" and tagger is None:
        raise CaptionError("Multi-person LoRA tags need the WD14 tagger beside the vision "
                           "model; install the wd14 extra (pip install \"loracap[wd14]\").")
    people = state.detect(whole, image, options.detector)
    if not people:
        # No person: the ordinary caption ("no person found" in the list): the project's
        # profile's, or in LoRA-tags mode the tagger's tags of the whole image.
        if tagger is not None:
            return attempt.store(_tags_text(tagger, image, options.separator),
                                 state.result(""), usage=state.paid)
        return caption_single(attempt, job.instructions)
    if not state.ordered:  # else the order a person chose in the window
        people = order_people(people, by=options.order)  # type: ignore[arg-type]
    if tagger is not None:
        aliases = assign_aliases(people, custom=options.aliases, mode="tags")
        tagged = [PersonEntry(alias, tags=tuple(_tags(tagger, person_crop(image, person))))
                  for person, alias in zip(people, aliases, strict=True)]
        body = multi_person_caption(tagged, mode="tags", separator=options.separator,
                                    scene_tags=_tags(tagger, scene_image(image, people)))
        return attempt.store(" ".join(sanitize_text(body or "").split()),
                             state.result("WD14 tags of each person and the scene"),
                             usage=state.paid)
    aliases = assign_aliases(people, custom=options.aliases)
    entries = [
        PersonEntry(alias, state.describe_person(image, person, position, alias,
                                                 options.language))
        for position, (person, alias) in enumerate(zip(people, aliases, strict=True))
    ]
    scene = state.describe_scene(image, people, options.language)
    body = multi_person_caption(entries, scene)
    if body is None:  # not reached: there are people
        return caption_single(attempt, job.instructions)
    lines = [limit_length(" ".join(sanitize_text(line).split()), job.instructions.limits.body)
             for line in body.splitlines()]
    return attempt.store("\n".join(line for line in lines if line), state.result(
        person_prompt(options.language)), usage=state.paid)


def _whole_image(path: Path, _max_side: int) -> Image.Image:
    """:func:`~loracap.core.imaging.load_rgb_on_white` in the shape of a preparation
    (:meth:`~loracap.core.prepared_decodes.PreparedDecodes.prepare`)."""
    from loracap.core.imaging import load_rgb_on_white

    return load_rgb_on_white(path)


def _tags(tagger: object, image: Image.Image) -> list[str]:
    """The WD14 tagger's tags of a PIL image (a crop, the scene), most confident first."""
    from loracap.core.backends.wd14 import to_model_input

    size = tagger.input_size  # type: ignore[attr-defined]
    try:
        chosen = tagger.tag(to_model_input(image, size))  # type: ignore[attr-defined]
    except ImageRejectedError:
        return []  # nothing above the thresholds
    return [tag for tag, _score in chosen]


def _tags_text(tagger: object, image: Image.Image, separator: str) -> str:
    tags = _tags(tagger, image)
    if not tags:
        raise ImageFailed("The WD14 tagger found no tag above its thresholds.", "rejected")
    return separator.join(tags)


@dataclass(frozen=True)
class _Provenance:
    """The caption's provenance: the vision model that wrote its parts."""

    body: str
    backend: str
    model: str
    prompt: str
    usage: TokenUsage


class _PartState:
    """The parts of one image: reused from an earlier run where possible, else asked for and
    stored at once; ``paid`` sums the tokens of this run's requests."""

    def __init__(self, attempt: Attempt, asker: VisionAsker, file_size: int,
                 mtime: float) -> None:
        self.attempt = attempt
        self.asker = asker
        self.file_size = file_size
        self.mtime = mtime
        self.paid = TokenUsage()
        #: Whether the detection reused is one a person edited: its order is the caption's.
        self.ordered = False
        project = attempt.job.project
        self.reusable = project.reusable_parts(
            attempt.record.id, backend=asker.backend, model=asker.model, file_size=file_size,
            mtime=mtime)

    def _ask(self, jpeg: bytes, prompt: str, what: str,
             schema: dict[str, object] | None = None) -> Answer:
        answer = self.attempt.send(
            lambda: self.asker.ask(jpeg, prompt, json_schema=schema), what)
        self.paid = self.paid + answer.usage
        # A reasoning model's leading <think>…</think> is not part of the answer.
        return replace(answer, text=_THINKING.sub("", answer.text, count=1))

    def _store(self, kind: str, answer: Answer, text: str, *, position: int = 0,
               person: PersonBox | None = None) -> None:
        project, record = self.attempt.job.project, self.attempt.record
        part = PersonPart(
            kind=kind, backend=self.asker.backend, model=self.asker.model,
            file_size=self.file_size, mtime=self.mtime, text=text, position=position,
            box=person.as_tuple() if person is not None else None,
            gender=person.gender if person is not None else "unknown",
            input_tokens=answer.usage.input_tokens, output_tokens=answer.usage.output_tokens)
        _saving(project, record.path, lambda: project.store_person_part(record.id, part))

    def detect(self, whole: bytes, image: Image.Image, detector: PersonDetector | None
               ) -> list[PersonBox]:
        """The people in the image: the stored detection of an earlier run (or of a person's
        edit, :attr:`ordered`), else the local ``detector``'s, else one request to the vision
        model (stored at once)."""
        if self.reusable:
            self.ordered = detection_ordered(self.reusable[0].text)
            return [PersonBox(*box, gender=gender)  # type: ignore[arg-type]
                    for box, gender in detected_people(self.reusable[0].text)]
        if detector is not None:
            found = detector.detect(image)
            answer = Answer("", self.asker.backend, self.asker.model, "")
        else:
            answer = self._ask(whole, DETECTION_PROMPT, "finding the people: ",
                               dict(DETECTION_SCHEMA))
            try:
                found = parse_detection(answer.text, *image.size)
            except ImageRejectedError as exc:
                raise ImageFailed(f"finding the people: {exc}", "rejected") from exc
        if len(found) > MAX_PEOPLE:
            found = sorted(found, key=lambda box: -box.area)[:MAX_PEOPLE]
        self._store("detection", answer, detection_text(
            [(box.as_tuple(), box.gender) for box in found]))
        return found

    def describe_person(self, image: Image.Image, person: PersonBox, position: int,
                        alias: str, language: str) -> str:
        """One person's description: an earlier run's for the same box, else one request."""
        from loracap.core.imaging import jpeg_for_upload

        for part in self.reusable:
            if part.kind == "person" and part.box == person.as_tuple() and part.text:
                return part.text
        crop = jpeg_for_upload(person_crop(image, person), self.attempt.job.max_side)
        answer = self._ask(crop, person_prompt(language), f"{alias}: ")
        cleaned = clean_person_text(answer.text)
        if not cleaned.text:
            raise ImageFailed(f"{alias}: the model returned an empty description.", "rejected")
        self._store("person", answer, cleaned.text, position=position, person=person)
        return cleaned.text

    def describe_scene(self, image: Image.Image, people: list[PersonBox], language: str) -> str:
        """The scene's description: an earlier run's, else one request with the people
        dimmed."""
        for part in self.reusable:
            if part.kind == "scene" and part.text:
                return part.text
        from loracap.core.imaging import jpeg_for_upload

        jpeg = jpeg_for_upload(scene_image(image, people), self.attempt.job.max_side)
        answer = self._ask(jpeg, scene_prompt(language), "the scene: ")
        text = clean_scene_text(answer.text).text
        self._store("scene", answer, text)
        return text

    def result(self, prompt: str) -> _Provenance:
        """The provenance of the caption made of the parts."""
        return _Provenance("", self.asker.backend, self.asker.model, prompt, self.paid)


def describe_person_again(project: Project, image_id: int, index: int, captioner: object, *,
                          max_side: int = 1536) -> str:
    """Describe person ``index`` (0-based, in caption order) of the image again with
    ``captioner`` and put the answer in their caption line, as one undo step ("Describe sksB
    again", issue 13): one request to a vision model (its crop as :func:`caption_people`
    sends it; the answer is cleaned and cut the same way, and stored as a paid part), or in a
    LoRA-tags project the WD14 tagger's tags of the crop. The other people's lines and every
    line a person edited stay as they are.

    Returns the new text (tags joined with the project's separator). Raises
    :class:`InputError` for an image without that person or an unreadable file,
    :class:`CaptionError` when the captioner cannot do it (a tagger alone in a natural-language
    project), :class:`ImageRejectedError` for an empty answer, and the backend's errors
    (:mod:`loracap.core.backends.base`) as they come: one request, no retries (the person
    asked for this one and sees the reason).
    """
    from loracap.core.imaging import jpeg_for_upload, load_rgb_on_white

    settings = project.settings
    layout = project.people_layout(image_id)
    if layout is None or not 0 <= index < len(layout.people):
        raise InputError("This image has no such person to describe; caption it first.")
    person = layout.people[index]
    alias = layout.aliases()[index]
    record = project.image(image_id)
    try:
        stat = os.stat(record.abs_path)
    except OSError as exc:
        raise InputError(f'Cannot read the image "{record.abs_path}": '
                         f"{exc.strerror or exc}.") from exc
    image = load_rgb_on_white(record.abs_path)
    box = PersonBox(*person.box, gender=person.gender)
    crop = person_crop(image, box)
    if layout.mode == "tags":
        tagger = getattr(captioner, "tagger", None)
        if tagger is None:
            raise CaptionError("LoRA tags of a person need the WD14 tagger; install the wd14 "
                               "extra (pip install \"loracap[wd14]\").")
        tags: list[str] = _tags(tagger, crop)
        text = settings.tag_separator.join(tags)
    else:
        tags = []
        asker = vision_asker(captioner, "Describing a person needs")
        answer = asker.ask(jpeg_for_upload(crop, max_side), person_prompt(settings.language))
        text = clean_person_text(_THINKING.sub("", answer.text, count=1)).text
        if not text:
            raise ImageRejectedError(f"{alias}: the model returned an empty description.")
        project.store_person_part(image_id, PersonPart(
            kind="person", backend=answer.backend or asker.backend,
            model=answer.model or asker.model, file_size=stat.st_size,
            mtime=stat.st_mtime, text=text, position=index, box=person.box,
            gender=person.gender, input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens))
    # The window may have changed the people while the model answered: find the box again.
    fresh = project.people_layout(image_id)
    if fresh is None:
        return text
    for position, candidate in enumerate(fresh.people):
        if candidate.box == person.box:
            described = fresh.described(position, tags=tags) if layout.mode == "tags" \
                else fresh.described(position, text)
            project.edit_people(image_id, described, f"Describe {alias} again")
            break
    return text


__all__ = ["MAX_PEOPLE", "PeopleOptions", "caption_people", "describe_person_again",
           "people_options"]
