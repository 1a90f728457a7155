"""The plain records of visual question answering: frozen dataclasses and enums, nothing heavy.

A :class:`QAImage` is one image of the project with its question-answer pairs
(:class:`QAEntry`); the exports (:mod:`loracap.core.qa.exports`) read only these, so they can
cross threads and be made in tests without a project file. The project file stores the pairs
and every version of their text (:mod:`loracap.core.project_qa`, project format 7) and hands
out :class:`QAEntry`, :class:`QAVersion`, :class:`QACount` and :class:`QAStats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from loracap.core.records import Provenance


class AnswerType(StrEnum):
    """What kind of answer a question asks for."""

    TEXT = "text"  # free text
    LABEL = "label"  # a JSON array of labels chosen from the project's label list
    CUSTOM_FORMAT = "custom_format"  # JSON that validates against the project's schema


#: The scores a person gives an answer: 0 (wrong) to 5 (perfect).
MIN_SCORE, MAX_SCORE = 0, 5


@dataclass(frozen=True)
class QAEntry:
    """One question about an image and its answer.

    ``answer`` is ``""`` for a question a person wrote that is not answered yet. ``model`` is
    the model that answered (``backend`` its backend's name), ``""`` when a person wrote the
    answer. ``confirmed``: a person checked the answer. ``score``: a person's score of the
    answer, 0-5 (:data:`MIN_SCORE`-:data:`MAX_SCORE`), None when not scored. ``tags``: free
    labels, in order. ``valid`` is False for an answer that failed its label list or schema
    (``invalid_reason`` says why): such an answer is stored but never exported.
    ``provenance`` says where the current text came from, as for captions (``generated``: a
    model's, untouched; ``edited``: a model's, changed by a person; ``manual``: a person's).
    ``id``: the entry's id in the project, 0 when not stored; ``image_id`` its image's id (0
    when not stored). ``created_at``/``updated_at``: UTC, timezone-aware; None when not stored.
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
    image_id: int = 0
    provenance: Provenance = Provenance.GENERATED
    backend: str = ""
    invalid_reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class QAVersion:
    """One version of a question-answer pair's text, oldest first when listed: what the
    entry ``entry_id`` held after a model answered or a person edited it.

    ``provenance`` as :attr:`QAEntry.provenance`; ``backend``/``model`` ``""`` for a person's
    text; ``created_at`` UTC, timezone-aware; ``input_tokens``/``output_tokens`` what the
    answer that made this version cost, as the service counted them (0 for a person's text or
    when unknown).
    """

    id: int
    entry_id: int
    question: str
    answer: str
    provenance: Provenance
    backend: str
    model: str
    created_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class QACount:
    """The question-answer pairs of one image: ``total`` entries, how many are ``confirmed``
    and ``invalid``, the highest score given (None when none is scored) and every tag used."""

    total: int
    confirmed: int
    invalid: int
    best_score: int | None = None
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QAStats:
    """Counts over every question-answer pair of a project: ``entries``, ``confirmed``,
    ``invalid``, the mean of the scores given (None when none is scored), the entries by
    answer type's value (``{"text": 12, "label": 3}``; types without entries left out) and
    how many images have at least one entry."""

    entries: int
    confirmed: int
    average_score: float | None
    by_answer_type: dict[str, int] = field(default_factory=dict)
    images_with_qa: int = 0
    invalid: int = 0

    def lines(self, images: int) -> list[str]:
        """The statistics as a person reads them (``loracap qa stats``, Review > Question-Answer
        Statistics), for a project of ``images`` images."""
        average = "none scored yet" if self.average_score is None \
            else f"{self.average_score:.2f} of 5"
        types = ", ".join(f"{name} {count}" for name, count in self.by_answer_type.items())
        return [
            f"Question-answer pairs: {self.entries} on {self.images_with_qa} of {images} "
            "images",
            f"Confirmed: {self.confirmed} of {self.entries}",
            f"Average score: {average}",
            f"By answer type: {types or 'none'}",
            f"Invalid answers (never exported): {self.invalid}",
        ]


@dataclass(frozen=True)
class QAImage:
    """An image and its question-answer pairs, in the order they are exported.

    ``path`` is the image file (absolute); ``rel_path`` the same file relative to the project's
    image folder, with ``/`` separators (``trips/a.jpg``): the name the export starts from
    (:attr:`~loracap.core.records.ImageRecord.path`: absolute for an image outside the project
    folder).
    """

    image_id: int
    path: Path
    rel_path: str
    entries: tuple[QAEntry, ...] = ()
