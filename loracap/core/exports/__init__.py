"""Exports: what each trainer reads, written from a project.

One shared planner (:mod:`~loracap.core.exports.planner`: selection, the trainability gate,
conversions, safe and unique names) and one writer (:mod:`~loracap.core.exports.writer`:
atomic zip or folder, read back, never over what is not an export) serve every format; a
format (:mod:`~loracap.core.exports.replicate`, …) states its trainer's rules, with their
sources. The formats by name are in :mod:`~loracap.core.exports.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable

from loracap.core.exports.base import (
    EXPORT_MARKER,
    Change,
    Container,
    Conversion,
    ExportFormat,
    ExportOptions,
    ExportPlan,
    ExportResult,
    LeftOutImage,
    PlannedImage,
    ReviewFilter,
    TrainerFormat,
)
from loracap.core.exports.metadata import METADATA as METADATA_FORMAT
from loracap.core.exports.planner import plan_export
from loracap.core.exports.registry import FORMATS, get_format
from loracap.core.exports.replicate import REPLICATE as REPLICATE_FORMAT
from loracap.core.exports.writer import (
    default_output,
    export_project,
    export_target,
    file_sha256,
    is_own_export,
)
from loracap.core.records import ImageRecord, ProjectStats, Review


def default_review_filter(images: ProjectStats | Iterable[ImageRecord]) -> ReviewFilter:
    """The review filter an export starts with: :attr:`ReviewFilter.NOT_REJECTED` once any
    valid image is marked rejected, else :attr:`ReviewFilter.ALL`.

    ``images`` is the project's :class:`ProjectStats` (``Project.stats()``) or its image
    records. The Export dialog and ``loracap export``/``run`` use it so that images a person
    rejected stay out of the dataset unless asked for.
    """
    if isinstance(images, ProjectStats):
        rejected = images.rejected > 0
    else:
        rejected = any(rec.valid and rec.review is Review.REJECTED for rec in images)
    return ReviewFilter.NOT_REJECTED if rejected else ReviewFilter.ALL


__all__ = [
    "EXPORT_MARKER", "FORMATS", "METADATA_FORMAT", "REPLICATE_FORMAT", "Change", "Container",
    "Conversion", "ExportFormat", "ExportOptions", "ExportPlan", "ExportResult", "LeftOutImage",
    "PlannedImage", "ReviewFilter", "TrainerFormat", "default_output", "default_review_filter",
    "export_project", "export_target", "file_sha256", "get_format", "is_own_export",
    "plan_export",
]
