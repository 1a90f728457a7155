"""The plain records a project hands out: frozen dataclasses and enums, no SQLAlchemy.

:class:`~loracap.core.project.Project` returns these instead of ORM objects, so they can cross
threads; the desktop window, the jobs and the exports use them as data. This module imports
nothing heavy (no SQLAlchemy, no Pillow), so code that only needs the types -- e.g. every widget
of the window at startup -- does not pay for the database layer.
:mod:`loracap.core.schema` and :mod:`loracap.core.project` re-export every name defined here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from loracap.core.trigger import render_prefix

#: A lone surrogate: how Python holds a byte of a file name that is not valid UTF-8 (PEP 383's
#: surrogate escape, U+DC80-U+DCFF) or, on Windows, an unpaired UTF-16 code unit.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def readable_path(text: str) -> str:
    """``text`` with every byte of a file name that is not valid UTF-8 shown as ``\\xHH``.

    Python reads such a name (``caf\\xe9.jpg`` saved in Latin-1 on Linux) with each bad byte
    as a lone surrogate (PEP 383), which no UTF-8 file, terminal or widget accepts. Here the
    byte ``0xE9`` becomes the four characters ``\\xe9``, and any other lone surrogate (an
    unpaired UTF-16 unit of a Windows name) ``\\udXXX``. Text without lone surrogates is
    returned unchanged.
    """
    if _LONE_SURROGATE.search(text) is None:
        return text

    def shown(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _LONE_SURROGATE.sub(shown, text)


class Provenance(StrEnum):
    """Where a caption's current text came from."""

    GENERATED = "generated"  # from a model, untouched
    EDITED = "edited"  # generated, then changed by a person
    MANUAL = "manual"  # written by a person
    IMPORTED = "imported"  # read from an existing sidecar .txt file

    @property
    def protected(self) -> bool:
        """True for text a person wrote or chose: never replaced without an explicit choice."""
        return self is not Provenance.GENERATED


class Review(StrEnum):
    """A person's verdict on an image for the dataset."""

    UNREVIEWED = "unreviewed"
    APPROVED = "approved"
    REJECTED = "rejected"


class CaptionMode(StrEnum):
    """Which images a captioning batch takes."""

    MISSING = "missing"  # valid images without a caption (the default)
    ALL = "all"  # every valid image (protected captions still need overwrite_protected)
    FAILED = "failed"  # images whose latest attempt failed and that still have no caption
    SELECTED = "selected"  # an explicit list of image ids


@dataclass(frozen=True)
class ProjectSettings:
    """The settings stored in a project file."""

    name: str
    trigger: str
    profile: str
    custom_prompt: str
    prefix_template: str
    model: str
    current_image_id: int | None = None
    tag_separator: str = ", "
    #: The default captioning backend (``gemini``, ``openai``, ``anthropic``, ``wd14``), its
    #: server's base URL (``""``: the backend's default) and the caption language's code.
    backend: str = "gemini"
    base_url: str = ""
    language: str = "en"
    #: Each backend's own settings by backend name (WD14 thresholds, whether an
    #: OpenAI-compatible server takes structured output); JSON values.
    backend_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Multi-person captions: the project's custom aliases, first person first, and the order
    #: of people (``left``: left to right; ``size``: largest first).
    aliases: tuple[str, ...] = ()
    people_order: str = "left"
    #: A local ONNX person detector's path (``""``: the vision model finds the people).
    detector: str = ""
    #: The project's own prompt presets as stored (a JSON list; :mod:`loracap.core.presets`).
    prompt_presets: str = '{"version": 1, "presets": []}'
    #: Question-answer pairs: the labels a ``label`` answer chooses from, in order, and the JSON
    #: schema (the text of a JSON object) a ``custom_format`` answer must follow, ``""`` for
    #: none.
    qa_labels: tuple[str, ...] = ()
    qa_schema: str = ""

    def options_for(self, backend: str) -> Mapping[str, Any]:
        """The settings of ``backend`` stored in the project (empty when none)."""
        return self.backend_options.get(backend, {})

    @property
    def prefix(self) -> str:
        """The rendered caption prefix, e.g. ``"photo of ide_main_hall "``."""
        return render_prefix(self.prefix_template, self.trigger)


@dataclass(frozen=True)
class PersonPart:
    """One paid part of a multi-person caption (see :class:`loracap.core.schema.PersonPartRow`):
    ``kind`` ``detection`` (``text``: the people found, a JSON list of ``{"box", "gender"}``;
    :func:`loracap.core.project_people.detected_people`), ``person`` (``position`` in
    the order, ``box`` ``(left, top, right, bottom)`` in pixels of the oriented image,
    ``gender``, ``text`` the cleaned description) or ``scene`` (``text``); made by ``backend``'s
    ``model`` from the image file of ``file_size`` bytes modified at ``mtime`` (seconds since
    the epoch), at the cost of ``input_tokens`` + ``output_tokens``."""

    kind: str
    backend: str
    model: str
    file_size: int
    mtime: float
    text: str = ""
    position: int = 0
    box: tuple[int, int, int, int] | None = None
    gender: str = "unknown"
    input_tokens: int = 0
    output_tokens: int = 0
    id: int = 0


#: The kinds of :class:`PersonPart`.
PART_KINDS = ("detection", "person", "scene")


@dataclass(frozen=True)
class ModelUsage:
    """What one backend's model was paid for in a project: ``answers`` received, with the
    ``input_tokens`` and ``output_tokens`` the service counted for them."""

    backend: str
    model: str
    answers: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class CaptionRecord:
    """An image's current caption. ``body`` excludes the prefix."""

    body: str
    provenance: Provenance
    backend: str | None
    model: str | None
    prompt: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CaptionVersion:
    """One entry of an image's caption history, oldest first when listed."""

    id: int
    body: str
    provenance: Provenance
    backend: str | None
    model: str | None
    prompt: str | None
    created_at: datetime
    #: Tokens the answer that made this version cost (0 for a person's text or when unknown).
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class UndoOutcome:
    """What :meth:`Project.undo` or :meth:`Project.redo` did.

    ``changed`` lists the images whose caption or review mark was put back; ``skipped`` the
    images left alone because something else changed them after the step (e.g. a captioning
    batch), so undoing would have thrown that change away.
    """

    label: str
    changed: list[int]
    skipped: list[int]


@dataclass(frozen=True)
class ImageRecord:
    """One image of a project, with its current caption and latest failure.

    ``path`` is as stored (POSIX, relative to the project folder when below it), made readable:
    a file name that is not valid UTF-8 shows each bad byte as ``\\xHH``
    (:func:`readable_path`; the project file keeps the exact bytes). ``abs_path`` is the exact
    file, resolved against the project folder: open the file through it, never through
    ``path``. Width and height are in pixels after EXIF orientation. ``last_error`` is the
    error of the latest attempt when that attempt failed, else ``""``. ``outside`` is True when
    the stored path is absolute or leads out of the project folder (``../notes.jpg``): such an
    image is exported only when the user allows it (``ExportOptions.allow_outside``).
    """

    id: int
    path: str
    abs_path: Path
    valid: bool
    invalid_reason: str
    width: int | None
    height: int | None
    format: str | None
    file_size: int
    mtime: float
    caption: CaptionRecord | None
    last_error: str = ""
    last_error_kind: str = ""
    review: Review = Review.UNREVIEWED
    rating: int | None = None
    note: str = ""
    outside: bool = False
    #: Multi-person captions: the people the latest detection found, None when never detected.
    people: int | None = None

    @property
    def file_name(self) -> str:
        """The image's file name without folders."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def has_caption(self) -> bool:
        """True when the image has a non-empty caption body of any provenance."""
        return self.caption is not None and bool(self.caption.body.strip())

    @property
    def failed(self) -> bool:
        """True when the latest attempt failed and the image still has no caption."""
        return bool(self.last_error) and not self.has_caption


@dataclass(frozen=True)
class ProjectStats:
    """Counts over a project, as shown by ``loracap info``."""

    images: int  # valid images
    invalid: int
    captioned: int  # valid images with a non-empty caption of any provenance
    failed: int  # valid images whose latest attempt failed and that have no caption
    missing_files: int  # valid images whose file is not on disk
    provenance: dict[str, int] = field(default_factory=dict)
    reviewed: int = 0  # valid images approved or rejected
    approved: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class ExportRecord:
    """An export LoRACap wrote for the project (:meth:`Project.exports`).

    ``path`` is as stored (POSIX, relative to the project folder when below it), ``abs_path``
    resolved; ``format`` the export format's value; ``written_at`` in UTC; ``size`` in bytes;
    ``sha256`` the file's SHA-256 as lowercase hex.
    """

    path: str
    abs_path: Path
    format: str
    written_at: datetime
    size: int
    sha256: str


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Project.add_scanned` did."""

    added: int
    invalid: int
    imported_captions: int
    already_known: int
    sidecar_errors: list[tuple[str, str]]


__all__ = [
    "AddResult", "CaptionMode", "CaptionRecord", "CaptionVersion", "ExportRecord", "ImageRecord",
    "ProjectSettings", "ProjectStats", "Provenance", "Review", "UndoOutcome", "readable_path",
]
