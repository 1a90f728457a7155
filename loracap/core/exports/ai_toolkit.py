"""ai-toolkit (ostris/ai-toolkit): a folder of images with a ``<stem>.txt`` caption beside each,
and ``config.yaml``, the dataset block to paste into an ai-toolkit job file.

Facts from ostris/ai-toolkit (read at commit 27a03a9, August 2026):

* ``toolkit/data_loader.py`` (``AiToolkitDataset``) walks ``folder_path`` recursively
  (``os.walk``), leaves out hidden folders and hidden files, and keeps the files whose
  lower-cased name ends in ``.jpg .jpeg .png .webp`` (``image_extensions``); images in a
  folder called ``_controls`` are dropped. Other files (``config.yaml``, ``renames.csv``, the
  hidden ``.loracap-export`` marker) are ignored, so they can stay beside the images.
* ``toolkit/dataloader_mixins.py`` (``load_caption``): an image's caption is the file with
  its path minus the extension plus ``caption_ext``, read whole as UTF-8; no file gives
  ``default_caption`` or an empty caption. ``toolkit/config_modules.py`` (``DatasetConfig``):
  ``caption_ext`` defaults to ``.txt`` and gets a dot when written without one.
* ``toolkit/prompt_utils.py`` (``inject_trigger_into_prompt``): ``[trigger]`` (and
  ``[name]``) in a caption become the dataset's ``trigger_word`` (else the job's,
  ``jobs/process/BaseSDTrainProcess.py``) -- or nothing when no trigger word is set, so the
  dataset block here always sets it; a caption without the trigger word gets it prepended.
* ``resolution`` may be a list: ``preprocess_dataset_raw_config`` makes one dataset per
  resolution, each image bucketed in each.
* Images load with ``exif_transpose`` then ``convert("RGB")``: orientation needs no change;
  16-bit and transparent images are converted by the planner.
* The smallest short side kept is :data:`AI_TOOLKIT_MIN_SHORT_SIDE` (the ai-toolkit commit
  Replicate pins aborts the whole run on a short side of 105 px or less; see
  :mod:`loracap.core.exports.replicate`).
* ``toolkit/config.py`` (``get_config``) replaces ``${NAME}`` anywhere in a job file, comments
  included, with an environment variable and stops when it is unset: ``config.yaml`` never
  holds one.

With ``--out PATH.zip`` the same files are written as a zip, to unpack on the machine that
trains.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from loracap.core.exports.base import Container, ExportFormat, ExportPlan, TrainerFormat
from loracap.core.exports.replicate import AI_TOOLKIT_EXTENSIONS, AI_TOOLKIT_MIN_SHORT_SIDE

if TYPE_CHECKING:
    from loracap.core.records import ProjectSettings

#: The dataset block written beside the images.
CONFIG_FILE = "config.yaml"

#: The resolutions of ai-toolkit's FLUX example jobs (``config/examples/
#: train_lora_flux_24gb.yaml``): every image is trained at each.
RESOLUTIONS = (512, 768, 1024)

#: ai-toolkit's example ``caption_dropout_rate``: the caption is left out 5 % of the steps.
CAPTION_DROPOUT_RATE = 0.05


def _quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (a JSON string is one), so that a word YAML
    would read as something else (``on``, ``no``, ``null``, ``1e3``) stays a string."""
    return json.dumps(text, ensure_ascii=False)


def dataset_block(trigger: str, folder_name: str, *, placeholder: bool) -> str:
    """``config.yaml``: a ``datasets:`` list with one ai-toolkit dataset for the export, with
    comments saying where it goes. ``folder_name`` is the export folder's default name, shown in
    ``folder_path`` for the user to complete; ``placeholder``: the captions hold
    ``[trigger]``. UTF-8 text, LF line endings."""
    folder = _quoted(f"/path/to/{folder_name}")
    captions = (["# The captions write the trigger word as [trigger]: ai-toolkit puts",
                 "# trigger_word in its place (nothing at all when trigger_word is unset)."]
                if placeholder else
                ["# The captions hold the trigger word; ai-toolkit prepends trigger_word",
                 "# to a caption that lacks it."])
    lines = [
        "# ai-toolkit dataset block, written by LoRACap for the images in this folder.",
        "# Paste the datasets: part into an ai-toolkit job file (such as",
        "# config/examples/train_lora_flux_24gb.yaml) under config > process > datasets,",
        "# replacing the example dataset there; it is indented as in those examples.",
        "# Set folder_path to where this folder is on the machine that trains",
        "# (on Windows write C:/path/to/folder, or double each backslash).",
        *captions,
        "      datasets:",
        f"        - folder_path: {folder}",
        '          caption_ext: "txt"',
        f"          trigger_word: {_quoted(trigger)}",
        f"          caption_dropout_rate: {CAPTION_DROPOUT_RATE}",
        "          shuffle_tokens: false",
        "          cache_latents_to_disk: true",
        f"          resolution: [{', '.join(str(r) for r in RESOLUTIONS)}]",
    ]
    return "\n".join(lines) + "\n"


class AiToolkitFormat(TrainerFormat):
    """``<trigger>_ai-toolkit/`` (or a zip when the output ends in ``.zip``) for ai-toolkit."""

    name = ExportFormat.AI_TOOLKIT
    title = "ai-toolkit (folder or zip)"
    summary = ("A folder for ostris' ai-toolkit: images with a .txt caption each, and "
               "config.yaml, the dataset block for your job file; a .zip name writes a zip.")
    container = Container.FOLDER
    zip_on_suffix = True
    image_extensions = AI_TOOLKIT_EXTENSIONS
    min_short_side = AI_TOOLKIT_MIN_SHORT_SIDE
    min_side_reason = "would abort an older ai-toolkit run (0 × 0 bucket) or train as a blur"
    caption_extension = ".txt"
    reserved_names = frozenset({CONFIG_FILE})
    supports_placeholder = True

    def default_name(self, trigger: str) -> str:
        return f"{trigger}_ai-toolkit"

    def extra_files(self, plan: ExportPlan, settings: ProjectSettings) -> dict[str, bytes]:
        block = dataset_block(plan.trigger, self.default_name(plan.trigger),
                              placeholder=plan.options.trigger_placeholder)
        return {CONFIG_FILE: block.encode("utf-8")}


AI_TOOLKIT = AiToolkitFormat()
