"""A plain folder: the images with a ``<stem>.txt`` sidecar caption beside each.

For OneTrainer and any tool that reads sidecar caption files. Facts from Nerogar/OneTrainer
(read at commit 23df383, August 2026): it reads ``.bmp .jpg .jpeg .png .tif .tiff .webp
.avif`` in any letter case (``modules/util/path_util.py``), which covers every image LoRACap
scans, so every image is copied byte for byte (16-bit and transparent ones aside: the
planner converts them, as for every format); an image's captions are the lines of the
``.txt`` of the same stem, one picked at random per step
(``modules/dataLoader/mixin/DataLoaderText2ImageMixin.py``): LoRACap writes one line. It
scales images into its buckets whatever their size, so no image is left out for its size.

The images of every sub-folder are written side by side in one folder (names made unique,
as for every format).
"""

from __future__ import annotations

from loracap.core.exports.base import Container, ExportFormat, TrainerFormat


class FolderFormat(TrainerFormat):
    """``<trigger>_dataset/``: images and ``.txt`` captions."""

    name = ExportFormat.FOLDER
    title = "Folder with .txt captions (OneTrainer, others)"
    summary = ("A plain copy of the images with a .txt caption beside each: for OneTrainer "
               "and any tool that reads sidecar caption files.")
    container = Container.FOLDER
    caption_extension = ".txt"

    def default_name(self, trigger: str) -> str:
        return f"{trigger}_dataset"


FOLDER = FolderFormat()
