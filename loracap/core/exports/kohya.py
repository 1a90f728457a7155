"""kohya sd-scripts (and the kohya_ss GUI on top of it): ``img/<repeats>_<trigger>/`` with a
caption file beside each image, plus ``dataset.toml`` and ``meta_cap.json``.

Facts from kohya-ss/sd-scripts (read at commit 48d368f, February 2026; ``train_util`` is
``library/train_util.py``, ``config_util`` is ``library/config_util.py``):

* **Folder name.** ``--train_data_dir`` holds one folder per subset named
  ``<repeats>_<class tokens>``: the part before the first ``_`` is the repeat count, the rest
  (underscores kept) the class tokens; a folder without a leading number is ignored
  (``config_util`` 607-640, ``generate_dreambooth_subsets_config_by_subdirs``). So the export
  is ``OUT/img/<repeats>_<trigger>/`` and ``--train_data_dir OUT/img``.
* **No recursion.** A subset's images are ``glob_images(image_dir, "*")``: one glob per
  extension in that folder only (``train_util`` 1999, 2847-2857), so every image sits directly
  in the folder. The glob skips names starting with ``.``.
* **Extensions.** ``IMAGE_EXTENSIONS`` (``train_util`` 104) lists ``.png .jpg .jpeg .webp
  .bmp`` in all-lower and all-upper case only: on a case-sensitive file system
  ``Photo.Jpg`` is never found. Extensions are written in lower case.
* **Captions.** ``read_caption`` (``train_util`` 1946-1970) opens ``<path minus extension> +
  caption_extension`` as UTF-8 (a non-UTF-8 file raises), asserts the file has a line (an
  empty caption file aborts the run, 1964) and uses only the first line, stripped (1968).
  ``--caption_extension`` defaults to ``.caption`` (``train_util`` 4493; ``config_util`` 85
  for a dataset config); ``.txt`` is the other habit, so the export says which one it wrote.
  Captions here are one line and never empty: an image without a caption gets no caption file
  and kohya trains it on the class tokens, i.e. the trigger word (``train_util`` 2070-2078).
  Beware with such images: when a name has four or more ``_`` (kohya's face-crop names),
  ``read_caption`` also tries the name without its last four ``_`` parts
  (``train_util`` 1950-1953), so ``x_1_2_3_4.jpg`` without a caption would take ``x.caption``.
* **Pixels.** ``load_image`` (``train_util`` 2948-2961) opens the file with Pillow and calls
  ``convert("RGB")``; nothing applies the EXIF orientation (``get_image_size`` reads the
  stored size too, 1478). So the orientation is turned into pixels on export (only images
  whose tag is not 1 are re-encoded); 16-bit and transparent images are converted by the
  planner.
* **Smallest image.** By default a bucket is picked from predefined resolutions and the image
  is scaled to it, small images upscaled (``BucketManager.select_bucket``, ``train_util``
  286-308). With ``--bucket_no_upscale`` (the kohya_ss GUI's default) the bucket is the image
  size rounded down to ``bucket_reso_steps`` (64 by default, ``train_util`` 4605-4608): a side
  under 64 px gives a 0 px bucket side, a division by zero (345) or an empty image to encode,
  and the run aborts. :data:`KOHYA_MIN_SHORT_SIDE` is therefore 64.
* **Dataset config** (``--dataset_config``, ``docs/config_README-en.md``): TOML with
  ``[general]``, ``[[datasets]]`` and ``[[datasets.subsets]]``; a subset has ``image_dir``,
  ``num_repeats``, ``class_tokens``, ``caption_extension``; ``resolution``, ``enable_bucket``
  and the bucket options belong to a dataset or ``[general]`` (``config_util`` 183-260). A
  value in the file wins over the same option on the command line (fallback order subset,
  dataset, general, command line: ``config_util`` 439-446). ``image_dir`` is used as written
  (``os.path.isdir``, ``glob``, ``train_util`` 1973): a relative path is taken from the
  folder the trainer runs in (usually sd-scripts' own), not from the file's folder. So
  ``dataset.toml`` names the image folder by its absolute path (a preview without a target
  shows the relative one); moving the export means editing it.
* **Fine-tuning metadata** (``--in_json``, ``metadata_file``): JSON ``{image_key: {"caption":
  ...}}``. ``finetune/merge_captions_to_metadata.py`` (44) writes the file stem as key, or the
  full path with ``--full_path``, which kohya's docs advise (``docs/train_README-ja.md`` 873).
  Since v0.10.0 (c6bc632) a relative key is joined to ``image_dir`` as is (``train_util``
  2276-2284), so a bare stem no longer finds its image; before, a key was looked up with
  ``glob_images(image_dir, key)``. An absolute path works in both, so ``meta_cap.json`` keys
  are absolute paths too. Images without a caption are not listed.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loracap import __version__
from loracap.core.errors import InputError
from loracap.core.exports.base import (
    Container,
    ExportFormat,
    ExportOptions,
    ExportPlan,
    TrainerFormat,
)

if TYPE_CHECKING:
    from loracap.core.records import ProjectSettings

#: The image extensions kohya's ``IMAGE_EXTENSIONS`` lists (in lower case; it also accepts
#: them all upper case, never mixed). AVIF and JPEG XL need optional plug-ins there.
KOHYA_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})

#: Smallest short side, in pixels, kohya can train with ``--bucket_no_upscale`` (its default
#: ``bucket_reso_steps``; a smaller side gets a 0 px bucket side and aborts the run).
KOHYA_MIN_SHORT_SIDE = 64

#: Caption file extensions kohya users pass as ``--caption_extension``: kohya's default first.
CAPTION_EXTENSIONS = (".caption", ".txt")

#: The folder the images' subset folder sits in: the trainer's ``--train_data_dir``.
TRAIN_DATA_DIR = "img"

#: The dataset config for ``--dataset_config``, and the fine-tuning metadata.
DATASET_CONFIG_FILE = "dataset.toml"
METADATA_FILE = "meta_cap.json"


def normalized_caption_ext(value: str | None) -> str:
    """``.caption`` for None, else ``value`` with a leading dot added as kohya does
    (``caption`` -> ``.caption``). Raises :class:`InputError` for anything but ``.caption`` or
    ``.txt``."""
    if value is None:
        return CAPTION_EXTENSIONS[0]
    ext = value if value.startswith(".") else f".{value}"
    if ext not in CAPTION_EXTENSIONS:
        raise InputError(f"kohya caption files end in .caption (kohya's default) or .txt "
                         f"(then train with --caption_extension .txt), not {value!r}.")
    return ext


def toml_string(text: str) -> str:
    """``text`` as a TOML string: a literal ``'...'`` string when it can be one (Windows paths
    stay readable, as in kohya's docs), else a basic ``"..."`` string with escapes."""
    if "'" not in text and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return f"'{text}'"
    escaped = []
    for ch in text:
        if ch in ('"', "\\"):
            escaped.append(f"\\{ch}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04x}")
        else:
            escaped.append(ch)
    return f'"{"".join(escaped)}"'


class KohyaFormat(TrainerFormat):
    """``<trigger>_kohya/``: ``img/<repeats>_<trigger>/`` with the images and their caption
    files, ``dataset.toml`` and ``meta_cap.json`` at the top."""

    name = ExportFormat.KOHYA
    title = "kohya sd-scripts (folder)"
    summary = ("A folder for kohya sd-scripts and kohya_ss: img/<repeats>_<trigger>/ with a "
               ".caption (or .txt) file per image, dataset.toml and meta_cap.json.")
    container = Container.FOLDER
    image_extensions = KOHYA_EXTENSIONS
    min_short_side = KOHYA_MIN_SHORT_SIDE
    min_side_reason = ("would abort kohya training with --bucket_no_upscale (the kohya_ss "
                       "default): its bucket gets a side of 0 px")
    caption_extension = CAPTION_EXTENSIONS[0]
    lowercase_extensions = True
    bake_orientation = True
    options_used = frozenset({"repeats", "caption_ext"})

    def default_name(self, trigger: str) -> str:
        return f"{trigger}_kohya"

    def image_folder(self, trigger: str, options: ExportOptions) -> str:
        return f"{TRAIN_DATA_DIR}/{options.repeats}_{trigger}"

    def caption_extension_for(self, options: ExportOptions) -> str:
        return normalized_caption_ext(options.caption_ext)

    def validate(self, options: ExportOptions) -> None:
        if options.repeats < 1:
            raise InputError(f"kohya repeats must be 1 or more (kohya skips a folder with "
                             f"{options.repeats}); --repeats 10 is usual.")
        normalized_caption_ext(options.caption_ext)
        if options.rename_prefix.startswith("."):
            raise InputError("A --rename prefix for kohya cannot start with '.': kohya does "
                             "not see files whose names start with a dot.")

    def extra_files(self, plan: ExportPlan, settings: ProjectSettings) -> dict[str, bytes]:
        folder = self.image_folder(plan.trigger, plan.options)
        if plan.target is not None:
            image_dir = str(Path(plan.target, *PurePosixPath(folder).parts))
        else:
            image_dir = folder
        config = dataset_config(image_dir, plan.trigger, plan.options.repeats,
                                self.caption_extension_for(plan.options))
        captions = {
            (str(Path(image_dir, image.name)) if plan.target is not None else image.name):
                {"caption": image.caption}
            for image in plan.images if image.caption
        }
        metadata = json.dumps(captions, ensure_ascii=False, indent=2) + "\n"
        return {DATASET_CONFIG_FILE: config.encode("utf-8"),
                METADATA_FILE: metadata.encode("utf-8")}


def dataset_config(image_dir: str, trigger: str, repeats: int, caption_ext: str) -> str:
    """``dataset.toml``: one DreamBooth-style dataset with one subset, ``image_dir`` (the image
    folder, absolute when known), ``num_repeats``, ``class_tokens`` (the trigger word: the
    caption of an image without a caption file) and ``caption_extension``; buckets on, the
    resolution left to ``--resolution``. UTF-8 text, LF line endings."""
    lines = [
        f"# kohya sd-scripts dataset config, written by LoRACap {__version__}.",
        "# Train with --dataset_config pointing at this file (instead of --train_data_dir).",
        "# A value set here wins over the same option on the command line.",
        "# image_dir is an absolute path: kohya reads it from the folder the trainer runs in,",
        "# not from this file's folder. If you move this export, change image_dir.",
        "",
        "[general]",
        "enable_bucket = true  # keep each photo's aspect ratio (else cropped square)",
        "",
        "[[datasets]]",
        "# resolution = 1024  # give --resolution, or set it here (512 for SD 1.5)",
        "",
        "  [[datasets.subsets]]",
        f"  image_dir = {toml_string(image_dir)}",
        f"  num_repeats = {repeats}",
        f"  class_tokens = {toml_string(trigger)}",
        f"  caption_extension = {toml_string(caption_ext)}",
    ]
    return "\n".join(lines) + "\n"


KOHYA = KohyaFormat()
