"""The shapes every export shares: the formats' rules, the options, the plan and the result.

A format is a :class:`TrainerFormat`: a small object that states what its trainer reads (file
extensions, the smallest image it can train on, caption files, folder layout, reserved names,
extra files) with the source of each rule. The planner (:mod:`loracap.core.exports.planner`)
applies these rules to a project and the writer (:mod:`loracap.core.exports.writer`) writes the
plan. A new format is a subclass in a module of its own, registered in
:mod:`loracap.core.exports.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loracap.core.records import Provenance, Review

if TYPE_CHECKING:
    from loracap.core.records import ProjectSettings


class ExportFormat(StrEnum):
    """The names of the export formats (``loracap export --format NAME``)."""

    REPLICATE = "replicate"
    AI_TOOLKIT = "ai-toolkit"
    KOHYA = "kohya"
    HF = "hf"
    FAL = "fal"
    FOLDER = "folder"
    METADATA = "metadata"


class Container(StrEnum):
    """What an export writes: one zip file, a folder of files, or one text file."""

    ZIP = "zip"
    FOLDER = "folder"
    FILE = "file"


class ReviewFilter(StrEnum):
    """Which images an export takes by their review state."""

    ALL = "all"  # every valid image
    APPROVED = "approved"  # only images marked approved
    NOT_REJECTED = "not_rejected"  # everything but the images marked rejected


def review_keeps(review_filter: ReviewFilter, review: Review) -> bool:
    """True when an image with ``review`` is exported under ``review_filter``."""
    if review_filter is ReviewFilter.APPROVED:
        return review is Review.APPROVED
    if review_filter is ReviewFilter.NOT_REJECTED:
        return review is not Review.REJECTED
    return True


class Conversion(StrEnum):
    """Why an image is re-encoded instead of copied byte for byte (its ``str`` is the reason
    shown to the user)."""

    FORMAT = "the trainer does not read this file format"
    HIGH_BIT_DEPTH = "16-bit or float pixels: the trainer would clip them to near white"
    TRANSPARENCY = "transparent: flattened onto white, as the captioner saw it"
    ORIENTATION = "EXIF orientation turned into pixels: the trainer ignores the tag"


#: File name of the marker that a folder export holds; the scan skips folders that hold it, so
#: an export inside the photo folder is never taken for more photos.
EXPORT_MARKER = ".loracap-export"


@dataclass(frozen=True)
class ExportOptions:
    """What the user chose for one export.

    ``review``: images by review mark; ``allow_uncaptioned``: export images without a caption
    (without a caption file); ``skip_untrainable``: leave out images the trainer cannot train
    on (else they stop the export); ``trigger_placeholder``: write ``[trigger]`` (ai-toolkit's
    and fal's placeholder) instead of the trigger word; ``repeats``: kohya's repeat count;
    ``caption_ext``: the caption file extension (``.caption`` or ``.txt`` for kohya; None: the
    format's own); ``rename_prefix``: name the images ``PREFIX_0001.jpg`` … in file-name order;
    ``allow_outside``: export images whose file lies outside the project folder (an absolute
    path, ``../``, or a link out of it; :meth:`~loracap.core.project.Project.is_outside`), which
    otherwise stop the export -- each is probed again and exported only if it is an image.
    """

    review: ReviewFilter = ReviewFilter.ALL
    allow_uncaptioned: bool = False
    skip_untrainable: bool = False
    trigger_placeholder: bool = False
    repeats: int = 10
    caption_ext: str | None = None
    rename_prefix: str = ""
    allow_outside: bool = False


@dataclass(frozen=True)
class PlannedImage:
    """One image of an export.

    ``dest`` and ``caption_dest`` are POSIX paths relative to the export's root (a folder or
    the zip's root), e.g. ``img/10_ide_main_hall/IMG_1.jpg``; ``caption_dest`` is None when
    the format has no caption files or the image has no caption. ``conversions`` is empty when
    the bytes are copied unchanged; else the reasons, and ``dest`` carries the new extension.
    ``provenance`` (of the caption; None without one), ``review`` and ``rating`` are the image
    record's, for formats that write them (the ``hf`` metadata.jsonl).
    """

    image_id: int
    source: Path
    project_path: str
    dest: str
    caption: str
    caption_dest: str | None
    conversions: tuple[Conversion, ...] = ()
    provenance: Provenance | None = None
    review: Review = Review.UNREVIEWED
    rating: int | None = None

    @property
    def name(self) -> str:
        """The image's file name in the export."""
        return PurePosixPath(self.dest).name


@dataclass(frozen=True)
class Change:
    """A name or pixel change the user is told about: ``path`` (as stored in the project) is
    exported as ``new_name`` because of ``reason``."""

    path: str
    new_name: str
    reason: str


@dataclass(frozen=True)
class LeftOutImage:
    """An image an export left out because its pixels do not decode (damage the scan's
    structure checks cannot see): ``path`` as stored in the project, ``reason`` a lowercase
    fragment (``"truncated or corrupt image data (…)"``); ``marked_invalid`` when the project
    (open for writing) now marks it invalid with that reason."""

    path: str
    reason: str
    marked_invalid: bool = False


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export will write, decided before a byte is written.

    ``extra_files`` maps POSIX paths relative to the root to their bytes (``metadata.txt``,
    ``config.yaml``, ``renames.csv`` …). The lists say what was left out and why.
    ``target``: the absolute path the export is written to, when known (None in a preview),
    for formats whose extra files name it (kohya's ``dataset.toml``).
    """

    format: TrainerFormat
    options: ExportOptions
    trigger: str
    images: list[PlannedImage]
    extra_files: dict[str, bytes]
    uncaptioned: list[str] = field(default_factory=list)
    renames: list[Change] = field(default_factory=list)
    conversions: list[Change] = field(default_factory=list)
    untrainable: list[Change] = field(default_factory=list)  # left out (skip_untrainable)
    invalid_skipped: list[str] = field(default_factory=list)
    review_skipped: list[str] = field(default_factory=list)
    target: Path | None = None

    def metadata_text(self) -> str:
        """``metadata.txt``: one caption per line, ordered by image file name, LF, trailing
        LF."""
        return "".join(f"{image.caption}\n" for image in self.images if image.caption)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    ``bytes_written`` is the size of the file written (for a folder, of all its files);
    ``sha256`` its fingerprint as recorded in the project: the SHA-256 of a text file, of a
    zip's central directory (:func:`~loracap.core.exports.writer.zip_fingerprint`), of a
    folder's marker file. ``undecodable``: the images left out because their pixels did not
    decode (:func:`~loracap.core.exports.writer.export_project`), in the order found.
    """

    path: Path
    format: ExportFormat
    images: int
    captions: int
    uncaptioned: list[str]
    renames: list[Change]
    conversions: list[Change]
    bytes_written: int
    untrainable: list[Change] = field(default_factory=list)
    review_skipped: list[str] = field(default_factory=list)
    sha256: str = ""
    replaced_own: bool = False  # an earlier export of this project was replaced
    recorded: bool = False  # recorded in the project (it was open for writing)
    undecodable: list[LeftOutImage] = field(default_factory=list)


class TrainerFormat:
    """The rules of one export format. Subclasses set the class attributes (each with the
    source of the rule in its docstring) and override the methods where the layout differs.

    * ``name``, ``title``, ``summary``: the format's name, its title in the Export dialog and
      one line saying which trainer reads it.
    * ``container``: zip, folder or one file; ``zip_on_suffix``: a folder format that writes a
      zip instead when the output path ends in ``.zip``.
    * ``image_extensions``: the lower-case extensions the trainer reads; other images are
      converted to PNG. None: every format LoRACap scans.
    * ``min_short_side``: the smallest short side (pixels) the trainer trains on, and
      ``min_side_reason``: what happens below it ("would abort Replicate training").
    * ``caption_extension``: the sidecar caption file's extension, or None (no sidecar files).
    * ``lowercase_extensions``: image extensions written in lower case.
    * ``bake_orientation``: EXIF orientation turned into pixels (the trainer ignores the tag).
    * ``reserved_names``: file names (compared case-insensitively) the format writes itself
      at the image folder's level; an image or caption file never takes one.
    * ``supports_placeholder``: the trainer replaces a literal ``[trigger]`` in captions.
    * ``keeps_lines``: a multi-line caption (a multi-person caption's one line per person)
      is written with its lines; otherwise its lines are joined into one with ``"; "``, for
      trainers that read only the first line (kohya) or pick one line at random (OneTrainer)
      or rewrite line breaks (ai-toolkit, Replicate).
    * ``options_used``: the format-specific :class:`ExportOptions` fields it reads.
    """

    name: ExportFormat
    title: str = ""
    summary: str = ""
    container: Container = Container.ZIP
    zip_on_suffix: bool = False
    writes_images: bool = True
    image_extensions: frozenset[str] | None = None
    min_short_side: int = 0
    min_side_reason: str = ""
    caption_extension: str | None = ".txt"
    lowercase_extensions: bool = False
    bake_orientation: bool = False
    reserved_names: frozenset[str] = frozenset()
    supports_placeholder: bool = False
    keeps_lines: bool = False
    #: Options beyond the common ones the format uses (``"repeats"``, ``"caption_ext"``).
    options_used: frozenset[str] = frozenset()

    def default_name(self, trigger: str) -> str:
        """The output's file or folder name beside the project (e.g. ``<trigger>_training.zip``).
        """
        return f"{trigger}_{self.name.value}"

    def image_folder(self, trigger: str, options: ExportOptions) -> str:
        """The folder, relative to the root, that holds the images and captions (``""``: the
        root itself)."""
        return ""

    def caption_extension_for(self, options: ExportOptions) -> str | None:
        """The caption file extension for ``options`` (the format's own unless overridden)."""
        return self.caption_extension

    def validate(self, options: ExportOptions) -> None:
        """Raise :class:`~loracap.core.errors.InputError` for options this format cannot use."""

    def extra_files(self, plan: ExportPlan, settings: ProjectSettings) -> dict[str, bytes]:
        """Files the format writes besides the images and captions (path -> bytes)."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name.value}>"
