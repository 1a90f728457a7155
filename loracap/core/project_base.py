"""What the parts of :class:`~loracap.core.project.Project` share.

The class is put together from parts, each in its own module: the file itself (opening,
closing, migration, the lock, settings, adding a scan, exports) in :mod:`loracap.core.project`,
the images in :mod:`loracap.core.project_images`, the captions and review marks in
:mod:`loracap.core.project_captions`, the parts of multi-person captions in
:mod:`loracap.core.project_people`, the question-answer pairs in
:mod:`loracap.core.project_qa` and the undo stack in :mod:`loracap.core.project_undo`.

:class:`ProjectBase`, which every part derives from, holds the attributes and the sessions they
all use, and declares as abstract methods what one part calls in another, so each part
type-checks on its own and a :class:`~loracap.core.project.Project` missing a part cannot be
made. The row helpers below serve more than one part.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from loracap.core.errors import InputError, ProjectReadOnlyError
from loracap.core.records import CaptionRecord, ImageRecord, ProjectSettings, Provenance
from loracap.core.schema import CaptionRow, ImageRow

if TYPE_CHECKING:
    from loracap.core.project_captions import CaptionToStore


class ProjectBase(ABC):
    """The attributes, sessions and shared row queries of an open project file, and what its
    parts call in each other (see the module's description). Made only as a
    :class:`~loracap.core.project.Project`, which sets the attributes."""

    #: The project file, and the folder image paths are stored relative to.
    path: Path
    folder: Path
    #: True when opened with ``read_only=True``: :meth:`_write` refuses.
    read_only: bool
    #: The file's project format (an older one only when opened read-only).
    format_version: int
    _engine: Engine
    _write_lock: threading.RLock

    # ------------------------------------------------------------------ sessions

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        if self.read_only:
            raise ProjectReadOnlyError(f"{self.path.name} is open read-only.")
        with self._write_lock, Session(self._engine) as session, session.begin():
            yield session

    @staticmethod
    def _load_rows(session: Session, image_ids: Sequence[int]
                   ) -> tuple[dict[int, ImageRow], dict[int, CaptionRow]]:
        """The image and caption rows of many images, in a few queries (500 ids each)."""
        images: dict[int, ImageRow] = {}
        captions: dict[int, CaptionRow] = {}
        for chunk in _chunks(image_ids):
            images.update((row.id, row) for row in
                          session.scalars(select(ImageRow).where(ImageRow.id.in_(chunk))))
            captions.update((row.image_id, row) for row in session.scalars(
                select(CaptionRow).where(CaptionRow.image_id.in_(chunk))))
        return images, captions

    def _require_image(self, session: Session, image_id: int) -> ImageRow:
        """The image's row; raises :class:`InputError` for an unknown id."""
        image = session.get(ImageRow, image_id)
        if image is None:
            raise InputError(f"No image with id {image_id} in {self.path.name}.")
        return image

    # ------------------------------------------------------------------ what the parts provide

    @property
    @abstractmethod
    def settings(self) -> ProjectSettings:
        """The project's current settings (:class:`~loracap.core.project.Project`)."""

    @abstractmethod
    def image(self, image_id: int) -> ImageRecord:
        """One image by id (:class:`~loracap.core.project_images.ProjectImages`)."""

    @abstractmethod
    def resolve(self, stored: str) -> Path:
        """The absolute path of a stored image path
        (:class:`~loracap.core.project_images.ProjectImages`)."""

    @abstractmethod
    def _put_caption_state(self, session: Session, image_id: int, state: list[Any] | None,
                           *, current: CaptionRow | None | EllipsisType = ...) -> None:
        """Make a caption state the image's caption
        (:class:`~loracap.core.project_captions.ProjectCaptions`)."""

    @abstractmethod
    def _edit_row(self, session: Session, image_id: int, current: CaptionRow | None,
                  body: str) -> dict[str, Any] | None:
        """Store a person's edit of one caption; its undo entry, or None when the body is the
        current one (:class:`~loracap.core.project_captions.ProjectCaptions`)."""

    @abstractmethod
    def _store_generated_in(self, session: Session, captions: Sequence[CaptionToStore],
                            overwrite_protected: bool) -> list[bool]:
        """Store models' captions inside the caller's transaction
        (:class:`~loracap.core.project_captions.ProjectCaptions`)."""

    @abstractmethod
    def _current_captions(self, conn: Connection, image_ids: Sequence[int]
                          ) -> dict[int, tuple[str, str] | None]:
        """``(provenance, body)`` of each image's caption; raises for an unknown image
        (:class:`~loracap.core.project_captions.ProjectCaptions`)."""

    @abstractmethod
    def _people_state(self, session: Session, image_id: int) -> list[Any] | None:
        """An image's people as an undo step stores them
        (:class:`~loracap.core.project_people.ProjectPeople`)."""

    @abstractmethod
    def _put_people_state(self, session: Session, image_id: int, state: list[Any]) -> None:
        """Make a stored people state the image's people
        (:class:`~loracap.core.project_people.ProjectPeople`)."""

    @abstractmethod
    def _qa_state(self, session: Session, entry_ids: Sequence[int]) -> list[Any]:
        """Question-answer pairs as an undo step stores them, ``[[entry_id, state or None]]``
        (:class:`~loracap.core.project_qa.ProjectQA`)."""

    @abstractmethod
    def _put_qa_state(self, session: Session, image_id: int, pairs: list[Any]) -> None:
        """Make a stored state of question-answer pairs the image's
        (:class:`~loracap.core.project_qa.ProjectQA`)."""

    @abstractmethod
    def _record_step(self, session: Session, label: str, entries: list[dict[str, Any]]) -> None:
        """Push an undo step (:class:`~loracap.core.project_undo.ProjectUndo`)."""

    @abstractmethod
    def _undo_limits(self) -> tuple[int, int]:
        """``(steps, image changes)`` the undo stack keeps
        (:class:`~loracap.core.project.Project`)."""


def _caption_record(row: CaptionRow) -> CaptionRecord:
    return CaptionRecord(
        body=row.body,
        provenance=Provenance(row.provenance),
        backend=row.backend,
        model=row.model,
        prompt=row.prompt,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    """``ids`` in slices of ``size``: SQLite limits the variables of one statement."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _caption_state(row: CaptionRow | None) -> list[Any] | None:
    """A caption as stored in an undo step: ``[body, provenance, backend, model, prompt]``."""
    if row is None:
        return None
    return [row.body, row.provenance, row.backend, row.model, row.prompt]


def _review_state(row: ImageRow) -> list[Any]:
    """An image's review fields as stored in an undo step: ``[review, rating, note]``."""
    return [row.review, row.rating, row.note]
