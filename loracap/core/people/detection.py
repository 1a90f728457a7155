"""Finding the people in a photo: their boxes, their order, and the detection request.

A vision model answers the detection request (:data:`DETECTION_PROMPT`, structured output
following :data:`DETECTION_SCHEMA`) with one box per person in Gemini's native format:
``box_2d`` is ``[ymin, xmin, ymax, xmax]`` normalised to 0-1000, origin top left (Gemini API
docs, "Object detection"). The other vision backends are sent the same schema. The image sent
is EXIF-oriented (what a person sees), so the boxes are scaled by the oriented size.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from loracap.core.errors import ImageRejectedError, InputError

logger = logging.getLogger(__name__)

Gender = Literal["woman", "man", "unknown"]
"""The genders a person box carries; ``unknown`` when the model is unsure or says anything
else. Only used to choose an alias such as ``unidentified woman``."""

#: Words a model may answer instead of ``woman`` / ``man`` (lowercase, whole answer).
_WOMAN_WORDS = frozenset({"woman", "women", "female", "f", "girl", "lady", "feminine"})
_MAN_WORDS = frozenset({"man", "men", "male", "m", "boy", "gentleman", "masculine"})

#: The scale of Gemini's normalised coordinates: 0 is the top or left edge, 1000 the other.
GEMINI_SCALE = 1000


class InvalidBoxError(ValueError):
    """A box in a model's answer cannot be used: not four numbers, or empty (``ymin >= ymax``
    or ``xmin >= xmax`` once clamped to the image). The message names the box."""


@dataclass(frozen=True)
class PersonBox:
    """One person found in an image.

    ``left``, ``top``, ``right``, ``bottom`` are pixels of the EXIF-oriented image, origin top
    left; ``right`` and ``bottom`` are exclusive (as in Pillow's ``Image.crop``), so the box is
    ``right - left`` by ``bottom - top`` pixels, at least 1 by 1. ``gender`` chooses a default
    alias. ``confidence`` is a detector's score from 0 to 1, or None (a vision model gives
    none). Raises :class:`InvalidBoxError` when the box is empty or has a negative edge.
    """

    left: int
    top: int
    right: int
    bottom: int
    gender: Gender = "unknown"
    confidence: float | None = None

    def __post_init__(self) -> None:
        if self.left < 0 or self.top < 0 or self.right <= self.left or self.bottom <= self.top:
            raise InvalidBoxError(
                f"The box ({self.left}, {self.top}, {self.right}, {self.bottom}) is empty or "
                "starts outside the image.")

    @property
    def width(self) -> int:
        """Width in pixels (at least 1)."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height in pixels (at least 1)."""
        return self.bottom - self.top

    @property
    def area(self) -> int:
        """Area in square pixels."""
        return self.width * self.height

    @property
    def centre_x(self) -> float:
        """The horizontal centre in pixels (may be a half pixel)."""
        return (self.left + self.right) / 2

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)``, the box Pillow's ``crop`` takes."""
        return (self.left, self.top, self.right, self.bottom)


def normalise_gender(value: object) -> Gender:
    """``"woman"`` or ``"man"`` for a model's answer naming one (``female``, ``Girl``,
    ``" MALE "``, ``boy`` ...: :data:`_WOMAN_WORDS`, :data:`_MAN_WORDS`, case and surrounding
    spaces ignored); ``"unknown"`` for anything else, including non-strings."""
    if not isinstance(value, str):
        return "unknown"
    word = value.strip().casefold()
    if word in _WOMAN_WORDS:
        return "woman"
    if word in _MAN_WORDS:
        return "man"
    return "unknown"


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidBoxError(f"A box coordinate is not a number: {value!r:.40}.")
    return float(value)


def box_from_gemini(box_2d: object, width: int, height: int, *, gender: Gender = "unknown",
                    confidence: float | None = None) -> PersonBox:
    """The pixel box of Gemini's ``box_2d`` in an image of ``width`` x ``height`` pixels.

    ``box_2d`` is ``[ymin, xmin, ymax, xmax]`` normalised to 0-1000, origin top left (Gemini
    API docs, object detection); ``width`` and ``height`` are the image's size AFTER EXIF
    orientation (the pixels the model saw; for a photo stored sideways with orientation 6,
    the stored height). Coordinates are clamped to 0-1000; the minimum edge is rounded down and
    the maximum up (``floor(xmin * width / 1000)``, ``ceil(xmax * width / 1000)``), so the box
    covers all the model marked; a box thinner than a pixel becomes 1 pixel.

    Raises :class:`InvalidBoxError` (a ``ValueError``) when ``box_2d`` is not a list of four
    finite numbers (booleans are not numbers), when it is empty once clamped (``ymin >= ymax``
    or ``xmin >= xmax``: the model swapped them or marked nothing), or when ``width`` or
    ``height`` is not a positive integer.
    """
    _check_size(width, height)
    if not isinstance(box_2d, (list, tuple)) or len(box_2d) != 4:
        raise InvalidBoxError(
            f"A box must be four numbers [ymin, xmin, ymax, xmax], not {box_2d!r:.60}.")
    ymin, xmin, ymax, xmax = (min(max(_number(v), 0.0), GEMINI_SCALE) for v in box_2d)
    if ymin >= ymax or xmin >= xmax:
        raise InvalidBoxError(
            f"The box {list(box_2d)!r:.60} is empty: ymin must be below ymax and xmin below "
            "xmax, within 0-1000.")
    left, right = _pixel_span(xmin, xmax, width)
    top, bottom = _pixel_span(ymin, ymax, height)
    return PersonBox(left, top, right, bottom, gender, confidence)


def _check_size(width: object, height: object) -> None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise InvalidBoxError(f"The image size {width!r} x {height!r} is not a positive size.")


def _pixel_span(low: float, high: float, size: int) -> tuple[int, int]:
    start = min(math.floor(low * size / GEMINI_SCALE), size - 1)
    end = max(math.ceil(high * size / GEMINI_SCALE), start + 1)
    return start, min(end, size)


#: The answer the detection request asks for: Gemini ``response_json_schema``, OpenAI
#: ``response_format`` ``json_schema`` (every property required, no others).
DETECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "people": {
            "type": "array",
            "description": "Every person visible in the image, one entry each.",
            "items": {
                "type": "object",
                "properties": {
                    "box_2d": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 4,
                        "maxItems": 4,
                        "description": "[ymin, xmin, ymax, xmax] normalised to 0-1000.",
                    },
                    "gender": {
                        "type": "string",
                        "enum": ["woman", "man", "unknown"],
                        "description": "The person's apparent gender; unknown when unsure.",
                    },
                },
                "required": ["box_2d", "gender"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["people"],
    "additionalProperties": False,
}

#: The text sent with the whole (oriented) image to find the people.
DETECTION_PROMPT = """\
Find every person visible in this image, including people partly hidden or at the edges.
Answer with a JSON object with one field, "people": a list with one entry per person, each \
with "box_2d", the person's bounding box as [ymin, xmin, ymax, xmax] normalised to 0-1000, \
and "gender": "woman", "man" or "unknown" when unsure.
Include the whole visible body of each person in the box. Do not include statues, \
posters, screens or reflections. Answer {"people": []} when there is no person."""


def parse_detection(answer_json: str | Mapping[str, Any] | Sequence[Any], width: int,
                    height: int) -> list[PersonBox]:
    """The boxes of a detection answer, in the answer's order (see :func:`order_people`).

    ``answer_json`` is the model's text (a JSON object, optionally inside a Markdown
    ```` ```json ```` fence) or the parsed value: ``{"people": [{"box_2d": [...], "gender":
    "..."}, ...]}``, or a bare list of such entries (Gemini's own detection examples answer a
    list). Extra keys are ignored; ``gender`` (or else ``label``) is read with
    :func:`normalise_gender`; an entry that is not an object or whose box is missing, malformed
    or empty is dropped (logged). ``width`` x ``height`` is the oriented image size
    (:func:`box_from_gemini`). ``[]`` means no person.

    Raises :class:`ImageRejectedError` when the answer is not JSON, or neither a list nor an
    object with a ``people`` list (the image fails with that reason), and
    :class:`InvalidBoxError` for a size that is not positive.
    """
    _check_size(width, height)
    data: object = answer_json
    if isinstance(answer_json, str):
        data = _load_json(answer_json)
    entries = data.get("people") if isinstance(data, Mapping) else data
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise ImageRejectedError(
            'The answer to the request to find people was not a JSON list of people '
            '({"people": [...]}), so the people in this image are unknown. Caption it again.')
    boxes: list[PersonBox] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            logger.info("Dropped a detection entry that is not an object: %.60r", entry)
            continue
        gender = normalise_gender(entry.get("gender", entry.get("label")))
        try:
            boxes.append(box_from_gemini(entry.get("box_2d"), width, height, gender=gender))
        except InvalidBoxError as exc:
            logger.info("Dropped a detection entry: %s", exc)
    return boxes


def _load_json(text: str) -> object:
    stripped = text.strip()
    for fence in ("```", "~~~"):
        if stripped.startswith(fence) and stripped.endswith(fence) and len(stripped) > 6:
            stripped = stripped[3:-3].strip()
            first, _, rest = stripped.partition("\n")
            stripped = rest if first.strip().isalnum() and rest else stripped
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        raise ImageRejectedError(
            "The answer to the request to find people was not JSON, so the people in this "
            "image are unknown. Caption it again.") from None


OrderBy = Literal["left", "size"]
"""How :func:`order_people` orders the people (and so their aliases and lines)."""


def order_people(boxes: Sequence[PersonBox], by: OrderBy = "left") -> list[PersonBox]:
    """``boxes`` in caption order, a new list.

    ``"left"`` (the default): left to right by the box's centre x, ties by the top edge (the
    higher first), then the given order (a stable sort). ``"size"``: the largest area first,
    ties left to right as for ``"left"``. The order decides the aliases (``sksA`` is the first),
    so it must not depend on the model's answer order. Raises :class:`InputError` for any other
    ``by``.
    """
    by_left = sorted(boxes, key=lambda box: (box.centre_x, box.top))
    if by == "left":
        return by_left
    if by == "size":
        return sorted(by_left, key=lambda box: -box.area)
    raise InputError(f'People can be ordered "left" (left to right) or "size" (largest '
                     f'first), not "{str(by)[:40]}".')
