"""The images of a project: how their paths are stored and resolved, the records the program
reads (:class:`ImageRecord`, with the current caption and the last failed attempt), relinking
after the dataset folder moved, choosing a captioning batch and the counts of images, captions
and tokens.

A part of :class:`~loracap.core.project.Project` (see :mod:`loracap.core.project_base`).
Adding the images of a scan stays with the project file
(:meth:`~loracap.core.project.Project.add_scanned`), as it completes a new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import case, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from loracap.core.errors import InputError
from loracap.core.project_base import ProjectBase, _caption_record, _chunks
from loracap.core.project_integrity import _leaves_folder
from loracap.core.project_people import detected_people
from loracap.core.records import (
    CaptionMode,
    ImageRecord,
    ModelUsage,
    ProjectStats,
    Provenance,
    Review,
    readable_path,
)
from loracap.core.schema import CaptionAttemptRow, CaptionRow, ImageRow, PersonPartRow


class ProjectImages(ProjectBase):
    """The images of an open project file: paths, records, relinking, batches and counts."""

    # ------------------------------------------------------------------ paths

    def stored_path(self, path: Path) -> str:
        """A file's path as :attr:`ImageRecord.path` shows it: POSIX, relative to the project
        folder when below it, else absolute; bytes that are not UTF-8 shown as ``\\xHH``
        (:func:`~loracap.core.records.readable_path`)."""
        return readable_path(self._stored(path))

    def _stored(self, path: Path) -> str:
        """How a path is stored: like :meth:`stored_path`, with the exact name (a lone
        surrogate for each byte that is not UTF-8; :class:`~loracap.core.schema.FsPath`)."""
        path = Path(os.path.abspath(path))
        try:
            return path.relative_to(self.folder).as_posix()
        except ValueError:
            return path.as_posix()

    def resolve(self, stored: str) -> Path:
        """The absolute path of a stored image path."""
        candidate = Path(stored)
        return candidate if candidate.is_absolute() else self.folder / candidate

    def is_outside(self, record: ImageRecord) -> bool:
        """True when reading ``record``'s file reads outside the project folder: its stored path
        is absolute or leads out (:attr:`ImageRecord.outside`), or a symbolic link on the way
        leads out. Exports check this for every image they read; it touches the disk, so the
        grid shows the cheaper :attr:`ImageRecord.outside`."""
        if record.outside:
            return True
        folder = os.path.realpath(self.folder)
        real = os.path.realpath(record.abs_path)
        try:
            return os.path.commonpath([folder, real]) != folder
        except ValueError:  # another drive on Windows
            return True

    # ------------------------------------------------------------------ records

    def images(self) -> list[ImageRecord]:
        """Every image of the project, ordered by stored path (case-insensitive)."""
        with self._read() as session:
            return self._records(session, None)

    def image(self, image_id: int) -> ImageRecord:
        """One image by id; raises :class:`InputError` if there is none."""
        with self._read() as session:
            records = self._records(session, [image_id])
        if not records:
            raise InputError(f"No image with id {image_id} in {self.path.name}.")
        return records[0]

    def images_by_id(self, image_ids: Iterable[int]) -> list[ImageRecord]:
        """The images with these ids (unknown ids are left out), ordered as :meth:`images`."""
        ids = list(dict.fromkeys(image_ids))
        records: list[ImageRecord] = []
        with self._read() as session:
            for chunk in _chunks(ids):
                records.extend(self._records(session, chunk))
        records.sort(key=lambda rec: (rec.path.casefold(), rec.path))
        return records

    def missing_images(self) -> list[ImageRecord]:
        """Valid images whose file is no longer on disk (the folder was moved or renamed)."""
        return [rec for rec in self.images() if rec.valid and not rec.abs_path.is_file()]

    def _records(self, session: Session, ids: Sequence[int] | None) -> list[ImageRecord]:
        query = select(ImageRow, CaptionRow).outerjoin(
            CaptionRow, CaptionRow.image_id == ImageRow.id
        )
        if ids is not None:
            query = query.where(ImageRow.id.in_(ids))
        latest = self._latest_attempts(session, ids)
        people = self._people_found(session, ids)
        records = []
        for image, caption in session.execute(query):
            attempt = latest.get(image.id)
            records.append(
                ImageRecord(
                    id=image.id,
                    path=readable_path(image.path),
                    abs_path=self.resolve(image.path),
                    valid=image.valid,
                    invalid_reason=image.invalid_reason,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                    file_size=image.file_size,
                    mtime=image.mtime,
                    caption=_caption_record(caption) if caption is not None else None,
                    last_error=attempt[1] if attempt and not attempt[0] else "",
                    last_error_kind=attempt[2] if attempt and not attempt[0] else "",
                    review=Review(image.review),
                    rating=image.rating,
                    note=image.note,
                    outside=_leaves_folder(image.path),
                    people=people.get(image.id),
                )
            )
        records.sort(key=lambda rec: (rec.path.casefold(), rec.path))
        return records

    @staticmethod
    def _people_found(session: Session, ids: Sequence[int] | None) -> dict[int, int]:
        """The people each image's latest detection found (multi-person captions)."""
        query = select(PersonPartRow.image_id, PersonPartRow.text).where(
            PersonPartRow.kind == "detection").order_by(PersonPartRow.id)
        if ids is not None:
            query = query.where(PersonPartRow.image_id.in_(ids))
        try:
            rows = session.execute(query).all()
        except OperationalError:  # a file of an older format, opened read-only (not migrated)
            session.rollback()
            return {}
        return {image_id: len(detected_people(text)) for image_id, text in rows}

    @staticmethod
    def _latest_attempts(
        session: Session, ids: Sequence[int] | None
    ) -> dict[int, tuple[bool, str, str]]:
        newest = select(
            CaptionAttemptRow.image_id, func.max(CaptionAttemptRow.id).label("last")
        ).group_by(CaptionAttemptRow.image_id)
        if ids is not None:
            newest = newest.where(CaptionAttemptRow.image_id.in_(ids))
        sub = newest.subquery()
        rows = session.execute(
            select(
                CaptionAttemptRow.image_id,
                CaptionAttemptRow.ok,
                CaptionAttemptRow.error,
                CaptionAttemptRow.error_kind,
            ).join(sub, CaptionAttemptRow.id == sub.c.last)
        )
        return {row.image_id: (row.ok, row.error, row.error_kind) for row in rows}

    def relink(self, new_folder: Path) -> list[ImageRecord]:
        """Point missing images at ``new_folder`` (the dataset folder was moved or renamed).

        A missing image is found in ``new_folder`` under its stored relative path, or else by a
        file name that occurs exactly once in ``new_folder``'s tree. Returns the images relinked;
        images not found stay missing. Raises :class:`InputError` if ``new_folder`` is no folder.
        """
        new_folder = Path(new_folder).absolute()
        if not new_folder.is_dir():
            raise InputError(f"{new_folder} is not a folder.")
        missing = self.missing_images()
        if not missing:
            return []
        by_name: dict[str, list[Path]] = {}
        for candidate in new_folder.rglob("*"):
            if candidate.is_file():
                by_name.setdefault(candidate.name.casefold(), []).append(candidate)
        moved: list[int] = []
        with self._read() as session:
            exact: dict[int, str] = {}  # the exact stored paths, not the readable ones
            for chunk in _chunks([rec.id for rec in missing]):
                exact.update((row.id, row.path) for row in session.execute(
                    select(ImageRow.id, ImageRow.path).where(ImageRow.id.in_(chunk))))
        for rec in missing:
            target: Path | None = None
            stored = Path(exact.get(rec.id, rec.path))
            if (not stored.is_absolute() and not rec.outside
                    and (new_folder / stored).is_file()):
                target = new_folder / stored
            else:
                matches = by_name.get(stored.name.casefold(), [])
                if len(matches) == 1:
                    target = matches[0]
            if target is None:
                continue
            with self._write() as session:
                row = session.get(ImageRow, rec.id)
                assert row is not None
                row.path = self._stored(target)
            moved.append(rec.id)
        return [self.image(image_id) for image_id in moved]

    # ------------------------------------------------------------------ batches and counts

    def select_for_captioning(
        self,
        mode: CaptionMode,
        image_ids: Sequence[int] = (),
        *,
        overwrite_protected: bool = False,
    ) -> tuple[list[int], list[int]]:
        """Choose a batch's images.

        Returns ``(to_caption, protected)``: the ids to caption, and the ids left out because
        their caption is ``edited``, ``manual`` or ``imported`` and ``overwrite_protected`` is
        False. Invalid images and images whose file is missing are never selected.
        """
        wanted = set(image_ids)
        chosen: list[int] = []
        protected: list[int] = []
        for rec in self.images():
            if not rec.valid or not rec.abs_path.is_file():
                continue
            if mode is CaptionMode.MISSING and rec.has_caption:
                continue
            if mode is CaptionMode.FAILED and not rec.failed:
                continue
            if mode is CaptionMode.SELECTED and rec.id not in wanted:
                continue
            if rec.has_caption and rec.caption and rec.caption.provenance.protected:
                if not overwrite_protected:
                    protected.append(rec.id)
                    continue
            chosen.append(rec.id)
        return chosen, protected

    def stats(self) -> ProjectStats:
        """Counts of images and captions (see :class:`ProjectStats`)."""
        images = self.images()
        valid = [rec for rec in images if rec.valid]
        provenance = {p.value: 0 for p in Provenance}
        for rec in valid:
            if rec.has_caption and rec.caption:
                provenance[rec.caption.provenance.value] += 1
        return ProjectStats(
            images=len(valid),
            invalid=len(images) - len(valid),
            captioned=sum(rec.has_caption for rec in valid),
            failed=sum(rec.failed for rec in valid),
            missing_files=sum(not rec.abs_path.is_file() for rec in valid),
            provenance=provenance,
            reviewed=sum(rec.review is not Review.UNREVIEWED for rec in valid),
            approved=sum(rec.review is Review.APPROVED for rec in valid),
            rejected=sum(rec.review is Review.REJECTED for rec in valid),
        )

    def token_usage(self) -> list[ModelUsage]:
        """The tokens every answer received so far cost, per backend and model (sorted by
        backend, then model): what the services billed, whether the caption was kept or not.
        ``answers`` counts the captions received; the tokens also include what failed attempts
        paid (the parts of a multi-person caption that answered before another part failed; a
        refusal or an error answer carries none)."""
        paid = (CaptionAttemptRow.ok.is_(True) | (CaptionAttemptRow.input_tokens > 0)
                | (CaptionAttemptRow.output_tokens > 0))
        with self._read() as session:
            rows = session.execute(
                select(CaptionAttemptRow.backend, CaptionAttemptRow.model,
                       func.sum(case((CaptionAttemptRow.ok.is_(True), 1), else_=0)),
                       func.sum(CaptionAttemptRow.input_tokens),
                       func.sum(CaptionAttemptRow.output_tokens))
                .where(paid)
                .group_by(CaptionAttemptRow.backend, CaptionAttemptRow.model)
            ).all()
        return sorted(
            (ModelUsage(backend or "", model or "", int(count), int(inp or 0), int(out or 0))
             for backend, model, count, inp, out in rows),
            key=lambda usage: (usage.backend, usage.model),
        )
