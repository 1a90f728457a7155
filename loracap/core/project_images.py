"""The images of a project: how their paths are stored and resolved, the records the program
reads (:class:`ImageRecord`, with the current caption and the last failed attempt), relinking
after the dataset folder moved, choosing a captioning batch and the counts of images, captions
and tokens.

A part of :class:`~loracap.core.project.Project` (see :mod:`loracap.core.project_base`). The
SQL of the counts, the token usage and the missing images is
:mod:`loracap.core.project_reader`'s, which ``loracap info`` reads through without SQLAlchemy.
Adding the images of a scan stays with the project file
(:meth:`~loracap.core.project.Project.add_scanned`), as it completes a new one.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from loracap.core.errors import InputError
from loracap.core.image_rows import (
    ImageRows,
    files_present,
    iter_rows,
    path_order,
    read_rows,
)
from loracap.core.project_base import ProjectBase, _chunks
from loracap.core.project_reader import (
    images_by_id,
    missing_images,
    read_stats,
    read_token_usage,
)
from loracap.core.records import (
    CaptionMode,
    ImageRecord,
    ModelUsage,
    ProjectStats,
    readable_path,
)
from loracap.core.schema import ImageRow


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
        absolute = os.path.abspath(path)
        folder = os.fspath(self.folder)
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        if absolute.startswith(prefix):  # the common case, without pathlib's parsing (scan)
            relative = absolute[len(prefix):]
            return relative.replace(os.sep, "/") if os.sep != "/" else relative
        as_path = Path(absolute)
        try:  # pathlib's rules: on Windows a folder named in another case still contains it
            return as_path.relative_to(self.folder).as_posix()
        except ValueError:
            return as_path.as_posix()

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

    @contextmanager
    def _driver(self) -> Iterator[sqlite3.Connection]:
        """The ``sqlite3`` connection of a read session, for :mod:`loracap.core.image_rows`
        (plain driver rows, one snapshot while it is open)."""
        with self._read() as session:
            yield session.connection().connection.dbapi_connection  # type: ignore[misc]

    def images(self) -> list[ImageRecord]:
        """Every image of the project, ordered by stored path (case-insensitive): the ids
        sorted by SQLite, then one query of plain rows (images, captions, latest attempts) per
        500 images and the people found, if any (:func:`~loracap.core.image_rows.read_rows`)."""
        return list(self.image_rows())

    def image_rows(self, offset: int = 0, limit: int | None = None, *,
                   like: ImageRows | None = None) -> ImageRows:
        """The images of :meth:`images` from position ``offset`` on (0: the first), at most
        ``limit`` of them (None: all the rest), in the same order, as compact columns whose
        records are made when asked for (:class:`~loracap.core.image_rows.ImageRows`): a
        large project's first page is read without sorting every path in Python (SQLite
        picks the first ``offset + limit``). ``like``: share its table of common values.
        Raises ``ValueError`` for a negative offset or limit."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("A page starts at 0 or later and holds 0 or more images.")
        with self._driver() as conn:
            order = path_order(conn, None if limit is None else offset + limit)
            return read_rows(conn, self.folder, order[offset:], like=like)

    def image_row_parts(self, offset: int, like: ImageRows, sizes: Iterable[int]
                        ) -> Generator[ImageRows, None, None]:
        """The images of :meth:`images` from position ``offset`` on, in parts of ``sizes``
        (:func:`~loracap.core.image_rows.iter_rows`), read as they are asked for, all from one
        read of the file (one snapshot, held until the parts end or the iterator is closed).
        For the window's background load of a large project (issue 15)."""
        with self._driver() as conn:
            order = path_order(conn)
            yield from iter_rows(conn, self.folder, order[offset:], like=like, sizes=sizes)

    def images_page(self, offset: int = 0, limit: int | None = None) -> list[ImageRecord]:
        """:meth:`image_rows` as a list of records."""
        return list(self.image_rows(offset, limit))

    def image(self, image_id: int) -> ImageRecord:
        """One image by id; raises :class:`InputError` if there is none."""
        records = self.images_by_id([image_id])
        if not records:
            raise InputError(f"No image with id {image_id} in {self.path.name}.")
        return records[0]

    def images_by_id(self, image_ids: Iterable[int]) -> list[ImageRecord]:
        """The images with these ids (unknown ids are left out), ordered as :meth:`images`."""
        with self._driver() as conn:
            return images_by_id(conn, self.folder, image_ids)

    def missing_images(self) -> list[ImageRecord]:
        """Valid images whose file is no longer on disk (the folder was moved or renamed),
        ordered as :meth:`images`. Looks up every valid image's file
        (:func:`~loracap.core.image_rows.stored_files_present`);
        builds records only for the missing ones."""
        with self._driver() as conn:
            return missing_images(conn, self.folder)

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

    def mark_invalid(self, image_id: int, reason: str) -> None:
        """Mark an image invalid with ``reason`` (a lowercase sentence fragment, as the scan
        writes one): its pixels turned out not to decode where they were needed (an export),
        damage the scan's structure checks cannot see. It is then left out of captioning and
        exports like an image the scan found invalid; its caption and history are kept.
        Raises :class:`InputError` for an unknown id and
        :class:`~loracap.core.errors.ProjectReadOnlyError` on a project open read-only."""
        with self._write() as session:
            row = self._require_image(session, image_id)
            row.valid = False
            row.invalid_reason = readable_path(reason)

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
        records = [rec for rec in self.images() if rec.valid]
        present = files_present([os.fspath(rec.abs_path) for rec in records])
        for rec, on_disk in zip(records, present, strict=True):
            if not on_disk:
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
        """Counts of images and captions (see :class:`ProjectStats`).

        One SQL query counts the images by validity, caption, provenance, latest attempt and
        review mark (no record is built); ``missing_files`` looks up the file of every valid
        image (:func:`~loracap.core.image_rows.stored_files_present`: one listing per folder
        of many images)."""
        with self._driver() as conn:
            return read_stats(conn, self.folder, self.format_version)

    def token_usage(self) -> list[ModelUsage]:
        """The tokens every answer received so far cost, per backend and model (sorted by
        backend, then model): what the services billed, whether the caption was kept or not.
        ``answers`` counts the captions received; the tokens also include what failed attempts
        paid (the parts of a multi-person caption that answered before another part failed; a
        refusal or an error answer carries none)."""
        with self._driver() as conn:
            return read_token_usage(conn, self.format_version)

    # ------------------------------------------------------------------ decoded pixels

    #: The project format that added ``images.decoded_size`` and ``decoded_mtime``; a file of
    #: an older format opened read-only (not migrated) has neither column.
    _DECODED_SINCE = 8

    def decoded_states(self) -> dict[int, tuple[int, float]]:
        """The file state at which each image's pixels last decoded whole (project format 8):
        image id -> ``(size in bytes, mtime in seconds)`` of the file as it was stat'ed
        (``os.lstat``) just before that decode, for the images that have one.

        While a file still has this size and mtime, its decode need not be repeated
        (:mod:`loracap.core.exports.decoded`). A file replaced by a damaged one of the same
        size and the same mtime is not noticed: an accepted limit. Empty for a file of an
        older format opened read-only (:attr:`format_version` below 8), which has no such
        columns. One query."""
        if self.format_version < self._DECODED_SINCE:
            return {}
        with self._read() as session:
            rows = session.connection().exec_driver_sql(
                "SELECT id, decoded_size, decoded_mtime FROM images "
                "WHERE decoded_size IS NOT NULL AND decoded_mtime IS NOT NULL").all()
        return {int(image_id): (int(size), float(mtime)) for image_id, size, mtime in rows}

    def record_decoded(self, decoded: Mapping[int, tuple[int, float]],
                       cleared: Iterable[int] = ()) -> None:
        """Record, in one transaction, the file states at which images' pixels decoded whole:
        ``decoded`` maps an image id to ``(size in bytes, mtime in seconds)`` of its file as
        stat'ed before the decode (see :meth:`decoded_states`); the state of each id in
        ``cleared`` (pixels that did not decode) is removed. Unknown ids are ignored.

        Raises :class:`~loracap.core.errors.ProjectReadOnlyError` on a project open read-only
        (a file of an older format is only ever open read-only: a writable one is migrated).
        """
        rows = [(int(size), float(mtime), image_id)
                for image_id, (size, mtime) in decoded.items()]
        gone = [(image_id,) for image_id in cleared if image_id not in decoded]
        if not rows and not gone:
            return
        with self._write() as session:
            if self.format_version < self._DECODED_SINCE:  # not reached: see above
                return
            conn = session.connection()
            if rows:
                conn.exec_driver_sql(
                    "UPDATE images SET decoded_size = ?, decoded_mtime = ? WHERE id = ?", rows)
            if gone:
                conn.exec_driver_sql(
                    "UPDATE images SET decoded_size = NULL, decoded_mtime = NULL WHERE id = ?",
                    gone)
