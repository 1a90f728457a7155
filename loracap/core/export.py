"""Exports: what a trainer reads.

Formats:

* ``replicate`` -- ``<trigger>_training.zip`` for Replicate's FLUX LoRA trainer
  (replicate/flux-fine-tuner, on top of ai-toolkit). Every valid image at the zip's top level
  under its original file name, bytes unchanged; one ``<stem>.txt`` per image holding its full
  caption (the trainer looks the ``.txt`` up beside each image and ignores ``metadata.txt``);
  and ``metadata.txt`` alongside. ai-toolkit trains on ``.jpg .jpeg .png .webp`` only, so a BMP
  image is converted losslessly to PNG (reported).
* ``metadata`` -- ``metadata.txt`` alone: one full caption per line, ordered by image file name,
  UTF-8, LF line endings.

Rules kept for every format:

* Valid images without a caption stop the export (:class:`UncaptionedImagesError`) unless
  ``allow_uncaptioned``; they are then exported without a ``.txt`` (Replicate captions them
  itself). An empty caption file is never written.
* A file name used twice (two subfolders) and a stem collision (``a.jpg`` + ``a.png`` would both
  need ``a.txt``) are resolved by renaming inside the archive (``a_2.png``), compared
  case-insensitively because macOS and Windows unpack case-insensitively; every rename is
  reported. Nothing is dropped or overwritten.
* No absolute paths or ``..`` in the archive. An existing output file is replaced only with
  ``force=True``, and always atomically: a crash or a full disk never leaves half a file.
* Every export written while the project is open for writing is recorded in the project
  (path, format, size, SHA-256; project format 4). A file at the output path counts as the
  project's own previous export when a recorded export has the same path, size and SHA-256
  (:func:`is_own_export`); ``replace_own=True`` (``loracap run``) replaces only such a file
  without ``force``.
* Once any image is marked rejected, the default is to leave rejected images out
  (:func:`default_review_filter`; issue 9: a student's rejects must not slip into the zip).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loracap.core.errors import (
    ExportError,
    OutputExistsError,
    ProjectError,
    UncaptionedImagesError,
)
from loracap.core.records import ImageRecord, ProjectStats, Review

if TYPE_CHECKING:  # not imported at run time: the window's startup needs only the enums here
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: Extensions ai-toolkit (and so Replicate's trainer) trains on.
TRAINER_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})

#: Fixed timestamp for zip entries (the zip format's epoch), so an export's bytes depend only
#: on the images and captions.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class ExportFormat(StrEnum):
    """The export formats."""

    REPLICATE = "replicate"
    METADATA = "metadata"


class ReviewFilter(StrEnum):
    """Which images an export takes by their review state."""

    ALL = "all"  # every valid image
    APPROVED = "approved"  # only images marked approved
    NOT_REJECTED = "not_rejected"  # everything but the images marked rejected


@dataclass(frozen=True)
class ExportEntry:
    """One image of an export: where it comes from and the names it gets in the archive."""

    image_id: int
    source: Path
    project_path: str  # as stored in the project
    image_name: str  # file name in the archive
    caption: str  # full caption ("" when uncaptioned)
    convert_to_png: bool = False

    @property
    def caption_name(self) -> str:
        """``<stem>.txt`` of the image's archive name."""
        return f"{PurePosixPath(self.image_name).stem}.txt"


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export will write, decided before a byte is written."""

    entries: list[ExportEntry]
    uncaptioned: list[str]  # project paths of valid images without a caption
    renames: list[tuple[str, str]]  # (project path, name in the archive)
    conversions: list[tuple[str, str]]  # (project path, converted name)
    invalid_skipped: list[str] = field(default_factory=list)
    review_skipped: list[str] = field(default_factory=list)  # left out by the ReviewFilter

    def metadata_text(self) -> str:
        """The exact text of ``metadata.txt``: one caption per line, LF, trailing LF."""
        lines = [entry.caption for entry in self.entries if entry.caption]
        return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    images: int
    captions: int
    uncaptioned: list[str]
    renames: list[tuple[str, str]]
    conversions: list[tuple[str, str]]
    bytes_written: int
    review_skipped: list[str] = field(default_factory=list)
    sha256: str = ""  # of the file written, lowercase hex
    replaced_own: bool = False  # an earlier export of this project was replaced
    recorded: bool = False  # recorded in the project (it was open for writing)


def _one_line(text: str) -> str:
    """A caption as one line: line breaks and runs of whitespace become single spaces."""
    return " ".join(text.split())


def default_output(project: Project, fmt: ExportFormat) -> Path:
    """Default export path, beside the project file."""
    if fmt is ExportFormat.REPLICATE:
        return project.folder / f"{project.settings.trigger}_training.zip"
    return project.folder / "metadata.txt"


def plan_export(project: Project, *, allow_uncaptioned: bool = False, fmt: ExportFormat =
                ExportFormat.REPLICATE, review: ReviewFilter = ReviewFilter.ALL) -> ExportPlan:
    """Decide an export's entries and names.

    ``review`` leaves out images by their review state (only approved, or all but rejected);
    images left out that way are neither exported nor counted as uncaptioned.

    Raises :class:`UncaptionedImagesError` listing the valid images without a caption (unless
    ``allow_uncaptioned``) and :class:`ExportError` when image files are missing on disk.
    """
    settings = project.settings
    records = project.images()
    valid = [rec for rec in records if rec.valid]
    review_skipped = [rec.path for rec in valid if not _review_keeps(review, rec.review)]
    valid = [rec for rec in valid if _review_keeps(review, rec.review)]
    missing = [rec.path for rec in valid if not rec.abs_path.is_file()]
    if missing:
        shown = "\n  ".join(missing[:20])
        more = f"\n  … and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise ExportError(
            f"{len(missing)} image file(s) are missing on disk (moved or renamed?):\n  "
            f"{shown}{more}"
        )
    valid.sort(key=lambda rec: (rec.file_name.casefold(), rec.path.casefold(), rec.path))
    uncaptioned = [rec.path for rec in valid if not rec.has_caption]
    if uncaptioned and not allow_uncaptioned:
        shown = "\n  ".join(uncaptioned[:20])
        more = f"\n  … and {len(uncaptioned) - 20} more" if len(uncaptioned) > 20 else ""
        raise UncaptionedImagesError(
            f"{len(uncaptioned)} image(s) have no caption:\n  {shown}{more}\n"
            "Caption them (loracap caption), or export anyway with --allow-uncaptioned "
            "(Replicate then captions those images itself).",
            uncaptioned,
        )

    used_stems: set[str] = set()
    entries: list[ExportEntry] = []
    renames: list[tuple[str, str]] = []
    conversions: list[tuple[str, str]] = []
    for rec in valid:
        name = PurePosixPath(rec.file_name)
        suffix = name.suffix
        convert = fmt is ExportFormat.REPLICATE and suffix.lower() not in TRAINER_EXTENSIONS
        if convert:
            suffix = ".png"
        stem = name.stem
        candidate, n = stem, 1
        while candidate.casefold() in used_stems:
            n += 1
            candidate = f"{stem}_{n}"
        used_stems.add(candidate.casefold())
        image_name = f"{candidate}{suffix}"
        if candidate != stem:
            renames.append((rec.path, image_name))
        if convert:
            conversions.append((rec.path, image_name))
        caption = _one_line(project.final_caption(rec, settings)) if rec.has_caption else ""
        entries.append(
            ExportEntry(
                image_id=rec.id,
                source=rec.abs_path,
                project_path=rec.path,
                image_name=image_name,
                caption=caption,
                convert_to_png=convert,
            )
        )
    return ExportPlan(
        entries=entries,
        uncaptioned=uncaptioned,
        renames=renames,
        conversions=conversions,
        invalid_skipped=[rec.path for rec in records if not rec.valid],
        review_skipped=review_skipped,
    )


def default_review_filter(images: ProjectStats | Iterable[ImageRecord]) -> ReviewFilter:
    """The review filter an export starts with: :attr:`ReviewFilter.NOT_REJECTED` once any
    valid image is marked rejected, else :attr:`ReviewFilter.ALL`.

    ``images`` is the project's :class:`ProjectStats` (``Project.stats()``) or its image
    records. The Export dialog and ``loracap export``/``run`` use it so that images a person
    rejected stay out of the dataset unless asked for (issue 9).
    """
    if isinstance(images, ProjectStats):
        rejected = images.rejected > 0
    else:
        rejected = any(rec.valid and rec.review is Review.REJECTED for rec in images)
    return ReviewFilter.NOT_REJECTED if rejected else ReviewFilter.ALL


def _review_keeps(review_filter: ReviewFilter, review: Review) -> bool:
    if review_filter is ReviewFilter.APPROVED:
        return review is Review.APPROVED
    if review_filter is ReviewFilter.NOT_REJECTED:
        return review is not Review.REJECTED
    return True


def _png_bytes(source: Path) -> bytes:
    from PIL import Image  # on first use: keeps Pillow off the desktop window's startup path

    with Image.open(source) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes as lowercase hex (read in 1 MiB blocks).

    Raises :class:`OSError` when the file cannot be read.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_own_export(project: Project, path: Path) -> bool:
    """True when the file at ``path`` is an export this project wrote and nobody changed since:
    a recorded export (:meth:`Project.exports`) has the same path, size and SHA-256.

    False when there is no file (or it cannot be read), or it differs from every recorded one.
    """
    path = Path(path).absolute()
    try:
        size = path.stat().st_size
    except OSError:
        return False
    candidates = [rec for rec in project.exports(path) if rec.size == size]
    if not candidates or not path.is_file():
        return False
    try:
        digest = file_sha256(path)
    except OSError:
        return False
    return any(rec.sha256 == digest for rec in candidates)


def _atomic_write(out: Path, force: bool, write: Callable[[Path], None]) -> tuple[int, str]:
    """Write through a temporary file in the target folder, then rename it into place.

    Returns the size in bytes and the SHA-256 (hex) of what was written.
    """
    out = Path(out).absolute()
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists; use --force to replace it.")
    if not out.parent.is_dir():
        raise ExportError(f"Cannot write {out}: the folder {out.parent} does not exist.")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        digest = file_sha256(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise ExportError(f"Cannot write {out}: {reason}. Nothing was written.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out.stat().st_size, digest


def _zip_info(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def write_replicate_zip(
    plan: ExportPlan,
    out: Path,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the Replicate zip of ``plan`` to ``out`` and check it by reading it back.

    Images are stored uncompressed (they are compressed already), caption files deflated.
    Raises :class:`OutputExistsError` and :class:`ExportError` (unreadable source, full disk).
    """
    total = len(plan.entries)

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as archive:
            for done, entry in enumerate(plan.entries, start=1):
                try:
                    data = (
                        _png_bytes(entry.source)
                        if entry.convert_to_png
                        else entry.source.read_bytes()
                    )
                except OSError as exc:
                    raise ExportError(
                        f"Cannot read {entry.project_path}: {exc.strerror or exc}"
                    ) from exc
                archive.writestr(_zip_info(entry.image_name, zipfile.ZIP_STORED), data)
                if entry.caption:
                    archive.writestr(
                        _zip_info(entry.caption_name, zipfile.ZIP_DEFLATED),
                        entry.caption.encode("utf-8"),
                    )
                if progress is not None:
                    progress(done, total)
            archive.writestr(
                _zip_info("metadata.txt", zipfile.ZIP_DEFLATED),
                plan.metadata_text().encode("utf-8"),
            )
        _verify_zip(tmp, plan)

    size, digest = _atomic_write(out, force, write)
    return _result(plan, out, size, digest)


def _verify_zip(path: Path, plan: ExportPlan) -> None:
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise ExportError(f"The written zip is damaged at {bad}; nothing was exported.")
        names = set(archive.namelist())
    expected = {entry.image_name for entry in plan.entries}
    expected |= {entry.caption_name for entry in plan.entries if entry.caption}
    expected.add("metadata.txt")
    if names != expected:
        raise ExportError("The written zip does not hold the planned files; nothing was exported.")


def write_metadata_txt(plan: ExportPlan, out: Path, *, force: bool = False) -> ExportResult:
    """Write ``metadata.txt`` (see :meth:`ExportPlan.metadata_text`) to ``out``."""
    data = plan.metadata_text().encode("utf-8")

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    size, digest = _atomic_write(out, force, write)
    return _result(plan, out, size, digest)


def _result(plan: ExportPlan, out: Path, size: int, digest: str) -> ExportResult:
    return ExportResult(
        path=Path(out).absolute(),
        images=len(plan.entries),
        captions=sum(bool(entry.caption) for entry in plan.entries),
        uncaptioned=plan.uncaptioned,
        renames=plan.renames,
        conversions=plan.conversions,
        bytes_written=size,
        review_skipped=plan.review_skipped,
        sha256=digest,
    )


def export_project(
    project: Project,
    fmt: ExportFormat = ExportFormat.REPLICATE,
    out: Path | None = None,
    *,
    force: bool = False,
    allow_uncaptioned: bool = False,
    progress: Callable[[int, int], None] | None = None,
    review: ReviewFilter = ReviewFilter.ALL,
    replace_own: bool = False,
) -> ExportResult:
    """Plan and write an export in one call (what the CLI and the GUI run).

    ``out`` is the output file, or a folder to write the default file name into; None means
    beside the project (:func:`default_output`). An existing file is replaced with ``force``,
    or with ``replace_own`` when it is this project's own unchanged earlier export
    (:func:`is_own_export`); otherwise :class:`OutputExistsError`. A project open for writing
    records the export (:meth:`Project.record_export`); a read-only one cannot
    (``ExportResult.recorded`` says which).
    """
    plan = plan_export(project, allow_uncaptioned=allow_uncaptioned, fmt=fmt, review=review)
    target = export_target(project, fmt, out)
    replaced_own = False
    if target.exists() and not force:
        if not replace_own:
            raise OutputExistsError(f"{target} already exists; use --force to replace it.")
        if not is_own_export(project, target):
            raise OutputExistsError(
                f"{target} already exists and is not an export LoRACap wrote for this project "
                "(or it was changed since). Add --force to replace it, or choose another file "
                "with --out."
            )
        force = replaced_own = True
    if fmt is ExportFormat.REPLICATE:
        result = write_replicate_zip(plan, target, force=force, progress=progress)
    else:
        result = write_metadata_txt(plan, target, force=force)
    recorded = False
    if not project.read_only:
        try:
            project.record_export(result.path, fmt.value, size=result.bytes_written,
                                  sha256=result.sha256)
            recorded = True
        except ProjectError as exc:  # the file is written; only the record is missing
            log.warning("%s", exc)
    return replace(result, replaced_own=replaced_own, recorded=recorded)


def export_target(project: Project, fmt: ExportFormat, out: Path | None = None) -> Path:
    """The absolute file an export writes: ``out``, the default file name inside ``out`` when
    it is a folder, or :func:`default_output` when ``out`` is None."""
    target = default_output(project, fmt)
    if out is not None:
        out = Path(out)
        target = out / target.name if out.is_dir() else out
    return Path(os.path.abspath(target))
