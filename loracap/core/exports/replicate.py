"""Replicate's FLUX LoRA trainer: one zip of images with a ``<stem>.txt`` caption beside each.

Facts from replicate/flux-fine-tuner (``train.py``, ``extract_zip``) and the ai-toolkit commit it
pins (``toolkit/data_loader.py``, ``toolkit/buckets.py``):

* the zip is extracted whole, but ``__MACOSX/`` and ``._*`` entries; each image's caption is
  the ``.txt`` of the same stem beside it; images without one are captioned by the trainer's own
  captioner; ``metadata.txt`` is extracted and ignored (written for people and other tools);
* ai-toolkit trains on ``.jpg .jpeg .png .webp`` only (BMP is converted to PNG here);
* resolution buckets use a step of 64 px: an image with sqrt(w·h) < 64 gets a 0 × 0 bucket and
  latent caching aborts the whole run, in practice any short side of 105 px or less; 128 px is
  the minimum kept here, with a margin;
* it loads with ``convert("RGB")`` (16-bit clipped, alpha dropped) and applies the EXIF
  orientation itself, so orientation needs no change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loracap.core.exports.base import Container, ExportFormat, ExportPlan, TrainerFormat

if TYPE_CHECKING:
    from loracap.core.records import ProjectSettings

#: Extensions ai-toolkit (and so Replicate's trainer) trains on.
AI_TOOLKIT_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})

#: Smallest short side, in pixels, an image may have for ai-toolkit's bucketing (see above).
AI_TOOLKIT_MIN_SHORT_SIDE = 128

#: The captions file written beside the images (the trainer ignores it).
METADATA_FILE = "metadata.txt"


class ReplicateFormat(TrainerFormat):
    """``<trigger>_training.zip`` for Replicate's FLUX LoRA trainer."""

    name = ExportFormat.REPLICATE
    title = "Replicate (FLUX LoRA trainer)"
    summary = ("A zip for Replicate's FLUX LoRA trainer: images with a .txt caption each; "
               "give the same trigger word there.")
    container = Container.ZIP
    image_extensions = AI_TOOLKIT_EXTENSIONS
    min_short_side = AI_TOOLKIT_MIN_SHORT_SIDE
    min_side_reason = "would abort Replicate training (ai-toolkit gives it a 0 × 0 bucket)"
    caption_extension = ".txt"
    reserved_names = frozenset({METADATA_FILE})

    def default_name(self, trigger: str) -> str:
        return f"{trigger}_training.zip"

    def extra_files(self, plan: ExportPlan, settings: ProjectSettings) -> dict[str, bytes]:
        return {METADATA_FILE: plan.metadata_text().encode("utf-8")}


REPLICATE = ReplicateFormat()
