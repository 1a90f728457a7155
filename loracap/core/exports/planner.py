"""The planner every format shares: which images, under which names, converted or copied.

:func:`plan_export` decides everything before a byte is written:

* **Selection**: valid images, by review mark (:class:`ReviewFilter`); images without a
  caption stop the export (:class:`UncaptionedImagesError`) unless allowed; images the trainer
  cannot train on -- a short side below the format's minimum -- stop it too
  (:class:`UntrainableImagesError`) unless ``skip_untrainable`` leaves them out, reported.
  Nothing left to export is :class:`NothingToExportError`. An image whose file lies outside
  the project folder (a crafted or hand-edited project file can name ``../notes.jpg`` or an
  absolute path) stops the export with :class:`OutsideImagesError` -- listed, so the user sees
  what the file asks for -- unless ``allow_outside``; even then it is probed again and
  exported only if it is an image.
* **Pixels**: an image the trainer would misread (a format it does not read, 16-bit or float
  pixels, transparency, an EXIF orientation it ignores) is converted
  (:mod:`loracap.core.exports.pixels`); every conversion is reported with its new name. An
  image whose header or alpha channel does not decode stops the plan
  (:class:`UndecodableImagesError`, all of them listed);
  :func:`~loracap.core.exports.writer.export_project` then leaves them out as invalid.
* **Names**: file names are made safe on every system (NFC, no path separators, control or
  Windows-reserved characters, no ``..``); two images never share a caption file (``a.jpg``
  and ``a.png`` both need ``a.txt``; compared case-insensitively, as macOS and Windows unpack),
  and no image or caption file takes a name the format writes itself (``metadata.jpg`` would
  need ``metadata.txt``): the later one is renamed ``a_2.png``. ``rename_prefix`` names every
  image ``PREFIX_0001.jpg`` … in file-name order instead, with ``renames.csv`` beside them.
  Every rename is reported.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from loracap.core.errors import (
    ExportError,
    InputError,
    NothingToExportError,
    OutsideImagesError,
    UncaptionedImagesError,
    UndecodableImageError,
    UntrainableImagesError,
)
from loracap.core.exports.base import (
    Change,
    Conversion,
    ExportOptions,
    ExportPlan,
    PlannedImage,
    TrainerFormat,
    review_keeps,
)
from loracap.core.exports.pixels import conversions_for, converted_suffix, probe_pixels
from loracap.core.prompts import Profile
from loracap.core.trigger import full_caption

if TYPE_CHECKING:
    from pathlib import Path

    from loracap.core.project import Project
    from loracap.core.records import ImageRecord, ProjectSettings

#: ai-toolkit's and fal's literal placeholder for the trigger word in captions.
TRIGGER_PLACEHOLDER = "[trigger]"

#: The file of ``rename_prefix`` exports: old project path -> new name.
RENAMES_FILE = "renames.csv"

#: Characters no file name may hold on Windows, macOS or Linux, and path separators.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*\u202a-\u202e\u2066-\u2069]')

#: Windows device names, which no file may be called whatever its extension ("NUL.tar.gz"),
#: spaces before the dot, or superscript digit ("COM¹"); the characters of ``_UNSAFE`` also
#: take C1 control characters and the bidirectional overrides that make a name read as another.
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in "123456789¹²³"}
    | {f"lpt{i}" for i in "123456789¹²³"})

#: How many image paths an error message lists before "… and N more".
_LISTED = 20


class UndecodableImagesError(ExportError):
    """Images whose pixels do not decode, found while planning or writing an export:
    ``failures`` maps each one's image id to ``(path in the project, reason)``.
    :func:`~loracap.core.exports.writer.export_project` marks them invalid and exports the
    others."""

    def __init__(self, failures: Mapping[int, tuple[str, str]]) -> None:
        lines = [f"{path} ({reason})" for path, reason in failures.values()]
        super().__init__(
            f"{len(lines)} image(s) cannot be decoded: their data is cut off or damaged:\n"
            f"{_listing(lines)}\nExporting leaves them out and marks them invalid; replace "
            "them with good copies to export them.")
        self.failures = dict(failures)


def safe_stem(stem: str) -> str:
    """``stem`` made a file name every system accepts: NFC, unsafe characters as ``_``, no
    trailing dots or spaces, not a Windows device name, never empty or ``..``."""
    text = unicodedata.normalize("NFC", stem)
    text = _UNSAFE.sub("_", text).rstrip(". ")
    if not text or set(text) <= {"."}:
        text = "image"
    if text.split(".")[0].rstrip(" ").casefold() in _WINDOWS_DEVICES:
        text = f"_{text}"
    return text


def _listing(paths: list[str]) -> str:
    shown = "\n  ".join(paths[:_LISTED])
    more = f"\n  … and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return f"  {shown}{more}"


def _one_line(text: str) -> str:
    """A caption as one line: line breaks and runs of whitespace become single spaces
    (kohya sd-scripts reads only the first line of a caption file)."""
    return " ".join(text.split())


def caption_for(record: ImageRecord, settings: ProjectSettings, *, placeholder: bool,
                keep_lines: bool = False) -> str:
    """The exported caption of ``record``: the prefix and the body, with the trigger word
    written as ``[trigger]`` when ``placeholder`` (whole words only), on one line. The lines
    of a multi-person caption (one per person, then the scene) are kept when ``keep_lines``,
    else joined with ``"; "`` (:func:`join_lines`); in other profiles a line break is a
    space."""
    if record.caption is None or not record.has_caption:
        return ""
    trigger = settings.trigger
    body = record.caption.body
    if placeholder:
        body = re.sub(rf"(?<![\w]){re.escape(trigger)}(?![\w])", TRIGGER_PLACEHOLDER, body)
        trigger = TRIGGER_PLACEHOLDER
    lines = [_one_line(line) for line in body.splitlines() if line.strip()]
    if settings.profile == Profile.MULTI_PERSON.value:
        text = "\n".join(lines) if keep_lines else join_lines(lines)
    else:  # a line break a person typed is a space, as it always was
        text = " ".join(lines)
    caption = full_caption(settings.prefix_template, trigger, text)
    return "\n".join(_one_line(line) for line in caption.splitlines())


def join_lines(lines: list[str]) -> str:
    """The lines of a caption as one line: joined with ``"; "``, a line's final period dropped
    before the separator (``sksA: A woman; sksB: A man; Scene: An office.``)."""
    if len(lines) < 2:
        return " ".join(lines)
    return "; ".join([line.removesuffix(".").rstrip() for line in lines[:-1]] + lines[-1:])


def plan_export(project: Project, fmt: TrainerFormat, options: ExportOptions | None = None,
                *, target: Path | None = None,
                undecodable: Mapping[int, str] | None = None) -> ExportPlan:
    """Decide an export of ``project`` in format ``fmt``, to be written to ``target`` (an
    absolute path; None when not known yet, as in a preview). ``undecodable``: ids of images
    whose pixels were found not to decode (id -> reason), left out as invalid images are
    (for a project open read-only, which cannot mark them invalid).

    Raises :class:`ExportError` when image files are missing on disk,
    :class:`UncaptionedImagesError` (unless ``options.allow_uncaptioned``),
    :class:`UntrainableImagesError` (unless ``options.skip_untrainable``),
    :class:`UndecodableImagesError` for images whose header or alpha channel does not decode,
    :class:`NothingToExportError` when no image is left, and
    :class:`~loracap.core.errors.InputError` for options the format cannot use.
    """
    options = options or ExportOptions()
    left_out = undecodable or {}
    fmt.validate(options)
    if options.trigger_placeholder and not fmt.supports_placeholder:
        raise InputError(f"The {fmt.name.value} format has no trigger placeholder; "
                         "leave out --trigger-placeholder.")
    settings = project.settings
    records = project.images()
    valid = [rec for rec in records if rec.valid and rec.id not in left_out]
    review_skipped = [rec.path for rec in valid if not review_keeps(options.review, rec.review)]
    chosen = [rec for rec in valid if review_keeps(options.review, rec.review)]
    _check_outside([rec for rec in chosen if project.is_outside(rec)], options)
    missing = [rec.path for rec in chosen if not rec.abs_path.is_file()]
    if missing:
        raise ExportError(f"{len(missing)} image file(s) are missing on disk (moved or "
                          f"renamed?):\n{_listing(missing)}")
    chosen.sort(key=lambda rec: (rec.file_name.casefold(), rec.path.casefold(), rec.path))
    uncaptioned = [rec.path for rec in chosen if not rec.has_caption]
    if uncaptioned and not options.allow_uncaptioned:
        raise UncaptionedImagesError(
            f"{len(uncaptioned)} image(s) have no caption:\n{_listing(uncaptioned)}\n"
            "Caption them (loracap caption), or export anyway with --allow-uncaptioned "
            "(Replicate then captions those images itself).", uncaptioned)

    untrainable = _untrainable(fmt, chosen)
    if untrainable and not options.skip_untrainable:
        lines = [f"{change.path} ({change.reason.split(':', 1)[0]})" for change in untrainable]
        raise UntrainableImagesError(
            f"{len(untrainable)} image(s) are too small for {fmt.title or fmt.name.value}: a "
            f"short side under {fmt.min_short_side} px {fmt.min_side_reason}:\n"
            f"{_listing(lines)}\nLeave them out with --skip-untrainable (Export dialog: "
            "“Leave out the images the trainer cannot use”), or replace them with larger "
            "photos.",
            [change.path for change in untrainable])
    skipped = {change.path for change in untrainable}
    chosen = [rec for rec in chosen if rec.path not in skipped]
    if not chosen:
        raise NothingToExportError(_nothing_message(
            records, review_skipped, untrainable,
            sum(rec.valid and rec.id in left_out for rec in records)))

    folder = fmt.image_folder(settings.trigger, options)
    caption_ext = fmt.caption_extension_for(options)
    images, renames, conversions = _place(fmt, chosen, settings, options, folder, caption_ext)
    plan = ExportPlan(
        format=fmt, options=options, trigger=settings.trigger, images=images, extra_files={},
        uncaptioned=uncaptioned, renames=renames, conversions=conversions,
        untrainable=untrainable,
        invalid_skipped=[rec.path for rec in records if not rec.valid or rec.id in left_out],
        review_skipped=review_skipped, target=target,
    )
    extras = dict(fmt.extra_files(plan, settings))
    if options.rename_prefix:
        extras[RENAMES_FILE] = _renames_csv(images)
    plan.extra_files.update(extras)
    return plan


def _check_outside(records: list[ImageRecord], options: ExportOptions) -> None:
    """Stop on images outside the project folder unless ``options.allow_outside``; allowed,
    each must still be an image now (probed again: the project file's word is not taken)."""
    if not records:
        return
    paths = [rec.path for rec in records]
    if not options.allow_outside:
        raise OutsideImagesError(
            f"{len(paths)} image(s) are outside the project folder:\n{_listing(paths)}\n"
            "The project file names them, but they are not in its folder. Export them only if "
            "you added them yourself: --allow-outside (Export dialog: “Export images outside "
            "the project folder”); or mark them rejected to leave them out.", paths)
    from loracap.core.imaging import probe_image  # Pillow: loaded with the first export

    not_images = [(rec.path, probe_image(rec.abs_path)) for rec in records]
    lines = [f"{path} ({info.reason})" for path, info in not_images if not info.valid]
    if lines:
        raise OutsideImagesError(
            f"{len(lines)} file(s) outside the project folder are not usable images, so they "
            f"are never exported:\n{_listing(lines)}\nMark them rejected to leave them out.",
            [path for path, info in not_images if not info.valid])


def _untrainable(fmt: TrainerFormat, records: list[ImageRecord]) -> list[Change]:
    """Images whose short side is under the format's minimum (sizes as stored by the scan,
    after EXIF orientation: the short side is the same either way)."""
    if not fmt.min_short_side or not fmt.writes_images:
        return []
    found = []
    for rec in records:
        short = min(rec.width or 0, rec.height or 0)
        if short < fmt.min_short_side:
            found.append(Change(rec.path, rec.file_name,
                                f"{rec.width} × {rec.height} px: {fmt.min_side_reason}"))
    return found


def _nothing_message(records: list[ImageRecord], review_skipped: list[str],
                     untrainable: list[Change], undecodable: int = 0) -> str:
    if not records:
        return "The project has no images; nothing to export."
    reasons = []
    if review_skipped:
        reasons.append(f"{len(review_skipped)} left out by their review mark")
    if untrainable:
        reasons.append(f"{len(untrainable)} too small for the trainer")
    invalid = sum(not rec.valid for rec in records) + undecodable
    if invalid:
        reasons.append(f"{invalid} invalid")
    detail = f" ({', '.join(reasons)})" if reasons else ""
    return f"No image is left to export{detail}; nothing was written."


def _place(fmt: TrainerFormat, records: list[ImageRecord], settings: ProjectSettings,
           options: ExportOptions, folder: str, caption_ext: str | None,
           ) -> tuple[list[PlannedImage], list[Change], list[Change]]:
    """Names, conversions and captions of the chosen images, in order. Raises
    :class:`UndecodableImagesError` listing every image whose pixels could not be probed."""
    reserved = {name.casefold() for name in fmt.reserved_names}
    used: set[str] = set()
    digits = max(4, len(str(len(records))))
    images: list[PlannedImage] = []
    renames: list[Change] = []
    conversions: list[Change] = []
    undecodable: dict[int, tuple[str, str]] = {}
    for number, rec in enumerate(records, start=1):
        original = PurePosixPath(rec.file_name)
        suffix = original.suffix
        found: tuple[Conversion, ...] = ()
        if fmt.writes_images:
            format_ok = fmt.image_extensions is None or suffix.lower() in fmt.image_extensions
            try:
                traits = probe_pixels(rec.abs_path)
            except UndecodableImageError as exc:
                undecodable[rec.id] = (rec.path, exc.reason)
                continue
            found = conversions_for(traits, format_ok=format_ok,
                                    bake_orientation=fmt.bake_orientation)
            if found:
                suffix = converted_suffix(suffix, found)
        if fmt.lowercase_extensions:
            suffix = suffix.lower()
        wanted = (f"{safe_stem(options.rename_prefix)}_{number:0{digits}d}"
                  if options.rename_prefix else safe_stem(original.stem))
        stem, n = wanted, 1
        while _taken(stem, suffix, caption_ext, used, reserved):
            n += 1
            stem = f"{wanted}_{n}"
        used.add(unicodedata.normalize("NFC", stem).casefold())
        name = f"{stem}{suffix}"
        if name != rec.file_name and fmt.writes_images:
            if options.rename_prefix:
                reason = "renamed as asked"
            elif stem != safe_stem(original.stem):
                reason = "the name was taken"
            elif stem != original.stem:
                reason = "not a safe file name on every system"
            else:
                reason = ""
            if reason:
                renames.append(Change(rec.path, name, reason))
        if found:
            conversions.append(Change(rec.path, name, "; ".join(str(c) for c in found)))
        caption = caption_for(rec, settings, placeholder=options.trigger_placeholder,
                              keep_lines=fmt.keeps_lines)
        dest = f"{folder}/{name}" if folder else name
        caption_dest = None
        if caption and caption_ext:
            caption_name = f"{stem}{caption_ext}"
            caption_dest = f"{folder}/{caption_name}" if folder else caption_name
        images.append(PlannedImage(
            image_id=rec.id, source=rec.abs_path, project_path=rec.path, dest=dest,
            caption=caption, caption_dest=caption_dest, conversions=found,
            provenance=rec.caption.provenance if rec.caption is not None else None,
            review=rec.review, rating=rec.rating))
    if undecodable:
        raise UndecodableImagesError(undecodable)
    return images, renames, conversions


def _taken(stem: str, suffix: str, caption_ext: str | None, used: set[str],
           reserved: set[str]) -> bool:
    key = unicodedata.normalize("NFC", stem).casefold()
    if key in used:
        return True
    names = {f"{key}{suffix.casefold()}"}
    if caption_ext:
        names.add(f"{key}{caption_ext.casefold()}")
    return bool(names & reserved)


def _renames_csv(images: list[PlannedImage]) -> bytes:
    """``renames.csv``: ``path,exported_as`` then one row per image (UTF-8, LF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "exported_as"])
    for image in images:
        writer.writerow([image.project_path, image.dest])
    return buffer.getvalue().encode("utf-8")
