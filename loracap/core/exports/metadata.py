"""``metadata.txt`` alone: every exported caption, one per line (no images).

The same lines as the ``metadata.txt`` in the Replicate zip: ordered by image file name, UTF-8,
LF line endings, a trailing LF; images without a caption have no line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loracap.core.exports.base import Container, ExportFormat, ExportPlan, TrainerFormat

if TYPE_CHECKING:
    from loracap.core.records import ProjectSettings


class MetadataFormat(TrainerFormat):
    """One text file of captions."""

    name = ExportFormat.METADATA
    title = "metadata.txt"
    summary = "Every caption, one per line, in file-name order: for reading or other tools."
    container = Container.FILE
    writes_images = False
    caption_extension = None

    def default_name(self, trigger: str) -> str:
        return "metadata.txt"

    def extra_files(self, plan: ExportPlan, settings: ProjectSettings) -> dict[str, bytes]:
        return {"metadata.txt": plan.metadata_text().encode("utf-8")}


METADATA = MetadataFormat()
