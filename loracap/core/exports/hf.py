"""Hugging Face ``datasets``: an ``imagefolder`` that loads with
``datasets.load_dataset("imagefolder", data_dir=OUT)`` into one ``train`` split.

Layout: ``OUT/train/`` holds the images and ``metadata.jsonl``; nothing else is read by the
loader (``renames.csv`` of ``--rename`` and LoRACap's hidden marker stay at ``OUT/``).
Facts from ``datasets`` (checked with 5.2.0, ``data_files.py`` and
``packaged_modules/folder_based_builder``):

* without a ``train/`` (or other split) folder, a file name holding a split keyword (``train``,
  ``test``, ``eval``, ``val``, ``dev`` … set off by ``-._``, a space or digits, e.g.
  ``eval_room.jpg``) makes the loader guess splits from file names: images land in ``test``
  or ``validation``, the others and the metadata are dropped. A ``train/`` folder wins over
  file names, so everything in it is one ``train`` split;
* ``metadata.jsonl``: one JSON object per line; ``file_name`` is the image's path relative to
  the metadata file (no absolute path, ``..`` or ``://``); it must match the name on disk
  exactly (a name in another Unicode normalisation fails at decode time), and the planner's
  names are NFC; images not listed are dropped silently;
* the column types are those of the first 10 MB of ``metadata.jsonl``: a column that is null
  there and set further down aborts the load. So no column is ever null: an image without a
  caption has ``"text": ""`` and ``"provenance": ""`` (``""`` is also what training scripts
  accept -- diffusers' ``train_text_to_image*.py`` raise on a caption that is not a string),
  and an image without a rating has ``"rating": 0`` (ratings are 1-5; 0 is "unrated", as in
  XMP);
* the ``Image`` feature applies the EXIF orientation when it decodes (since 2.19, PR #6739),
  so orientation needs no change; it reads every format LoRACap scans, in any letter case;
  16-bit and transparent images are converted by the planner as for every trainer (diffusers'
  scripts call ``convert("RGB")``).
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from loracap.core.exports.base import (
    Container,
    ExportFormat,
    ExportOptions,
    ExportPlan,
    PlannedImage,
    TrainerFormat,
)

if TYPE_CHECKING:
    from loracap.core.records import ProjectSettings

#: The split folder: a folder named ``train`` makes every file in it the ``train`` split.
SPLIT_FOLDER = "train"

#: The metadata file ``imagefolder`` reads beside the images (its ``METADATA_FILENAMES``).
METADATA_JSONL = "metadata.jsonl"


def metadata_row(image: PlannedImage, folder: str, trigger: str) -> dict[str, object]:
    """One ``metadata.jsonl`` row: ``file_name`` (relative to the metadata file in ``folder``,
    ``/`` separators, NFC), ``text`` (the caption, ``""`` without one), ``provenance`` (of the
    caption, ``""`` without one), ``review``, ``rating`` (1-5, 0 when unrated), ``trigger``."""
    dest = PurePosixPath(image.dest)
    relative = dest.relative_to(folder) if folder else dest
    provenance = image.provenance.value if image.caption and image.provenance else ""
    return {
        "file_name": unicodedata.normalize("NFC", relative.as_posix()),
        "text": image.caption,
        "provenance": provenance,
        "review": image.review.value,
        "rating": image.rating or 0,
        "trigger": trigger,
    }


class HuggingFaceFormat(TrainerFormat):
    """``<trigger>_hf/``: ``train/`` with the images and ``metadata.jsonl``."""

    name = ExportFormat.HF
    title = "Hugging Face datasets (imagefolder)"
    summary = ('A folder for datasets.load_dataset("imagefolder", data_dir=…): one train split, '
               "captions in the text column of train/metadata.jsonl.")
    container = Container.FOLDER
    caption_extension = None  # captions live in metadata.jsonl, not in sidecar files
    # A JSON string holds line breaks safely; the text encoders read them as spaces.
    keeps_lines = True
    reserved_names = frozenset({METADATA_JSONL})

    def image_folder(self, trigger: str, options: ExportOptions) -> str:
        return SPLIT_FOLDER

    def extra_files(self, plan: ExportPlan, settings: ProjectSettings) -> dict[str, bytes]:
        folder = self.image_folder(plan.trigger, plan.options)
        lines = (json.dumps(metadata_row(image, folder, plan.trigger), ensure_ascii=False)
                 for image in plan.images)
        text = "".join(f"{line}\n" for line in lines)
        return {f"{folder}/{METADATA_JSONL}": text.encode("utf-8")}


HF = HuggingFaceFormat()
