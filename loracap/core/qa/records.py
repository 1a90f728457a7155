"""The plain records of visual question answering: frozen dataclasses and enums, nothing heavy.

A :class:`QAImage` is one image of the project with its question-answer pairs
(:class:`QAEntry`); the exports (:mod:`loracap.core.qa.exports`) read only these, so they can
cross threads and be made in tests without a project file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class AnswerType(StrEnum):
    """What kind of answer a question asks for."""

    TEXT = "text"  # free text
    LABEL = "label"  # one of a list of labels
    CUSTOM_FORMAT = "custom_format"  # text that follows a schema (e.g. JSON)


#: The scores a person gives an answer: 0 (wrong) to 5 (perfect).
MIN_SCORE, MAX_SCORE = 0, 5


@dataclass(frozen=True)
class QAEntry:
    """One question about an image and its answer.

    ``model`` is the model that answered, ``""`` when a person wrote the answer. ``confirmed``:
    a person checked the answer. ``score``: a person's score of the answer, 0-5
    (:data:`MIN_SCORE`-:data:`MAX_SCORE`), None when not scored. ``tags``: free labels, in
    order. ``valid`` is False for an answer that failed its label list or schema: such an
    answer is never exported. ``id``: the entry's id in the project, 0 when not stored.
    """

    question: str
    answer: str
    answer_type: AnswerType = AnswerType.TEXT
    model: str = ""
    confirmed: bool = False
    score: int | None = None
    tags: tuple[str, ...] = ()
    note: str = ""
    valid: bool = True
    id: int = 0


@dataclass(frozen=True)
class QAImage:
    """An image and its question-answer pairs, in the order they are exported.

    ``path`` is the image file (absolute); ``rel_path`` the same file relative to the project's
    image folder, with ``/`` separators (``trips/a.jpg``): the name the export starts from.
    """

    image_id: int
    path: Path
    rel_path: str
    entries: tuple[QAEntry, ...] = ()
