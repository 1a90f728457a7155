"""fal.ai's LoRA trainers: one zip of images with a ``<stem>.txt`` caption beside each.

fal's trainers are closed source. What fal documents (and ``PRODUCT.md`` records): the
training input is a zip of images with captions as text files of the same name (``photo.jpg``
+ ``photo.txt``); images without one are captioned by the trainer or get the trigger word; a
literal ``[trigger]`` in a caption stands for the trigger word given to the trainer.

The rest is assumed, not known: the images follow ai-toolkit's rules (the trainer LoRACap's
other FLUX exports are checked against): ``.jpg .jpeg .png .webp`` only (BMP is converted to
PNG), pixels loaded with ``convert("RGB")`` (16-bit and transparent images are converted), and
no short side under :data:`AI_TOOLKIT_MIN_SHORT_SIDE` px. The zip holds nothing else (no
``metadata.txt``), but ``renames.csv`` with ``--rename``.
"""

from __future__ import annotations

from loracap.core.exports.base import Container, ExportFormat, TrainerFormat
from loracap.core.exports.replicate import AI_TOOLKIT_EXTENSIONS, AI_TOOLKIT_MIN_SHORT_SIDE


class FalFormat(TrainerFormat):
    """``<trigger>_fal.zip`` for fal.ai's LoRA trainers."""

    name = ExportFormat.FAL
    title = "fal.ai (LoRA trainers)"
    summary = ("A zip for fal.ai's LoRA trainers: images with a .txt caption each; captions "
               "may write the trigger word as [trigger].")
    container = Container.ZIP
    image_extensions = AI_TOOLKIT_EXTENSIONS
    min_short_side = AI_TOOLKIT_MIN_SHORT_SIDE
    min_side_reason = ("may abort fal training (ai-toolkit's limit, assumed: fal's trainer "
                       "code is not public)")
    caption_extension = ".txt"
    supports_placeholder = True

    def default_name(self, trigger: str) -> str:
        return f"{trigger}_fal.zip"


FAL = FalFormat()
