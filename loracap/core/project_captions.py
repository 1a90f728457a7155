"""The captions and review marks of a project's images: storing a model's caption or a failed
attempt, a person's edits (one undo step each, or one for a batch), restoring an earlier
version, the caption history, the caption a trainer reads, and the review state, rating and
note.

The safety rules of :mod:`loracap.core.project` are kept here: a protected caption
(``edited``, ``manual``, ``imported``) is replaced by generated text only with
``overwrite_protected=True``, and every version is appended to ``caption_versions`` before it
becomes current. A part of :class:`~loracap.core.project.Project` (see
:mod:`loracap.core.project_base`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import EllipsisType
from typing import Any

from sqlalchemy import Connection, Insert, Select, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session

from loracap.core.backends.base import TokenUsage
from loracap.core.errors import InputError
from loracap.core.project_base import (
    ProjectBase,
    _caption_record,
    _caption_state,
    _chunks,
    _review_state,
)
from loracap.core.records import (
    CaptionRecord,
    CaptionVersion,
    ImageRecord,
    ProjectSettings,
    Provenance,
    Review,
    readable_path,
)
from loracap.core.schema import (
    CaptionAttemptRow,
    CaptionRow,
    CaptionVersionRow,
    ImageRow,
    utcnow,
)
from loracap.core.trigger import full_caption


@dataclass(frozen=True)
class CaptionToStore:
    """A model's caption for :meth:`ProjectCaptions.store_generated_many`: the caption
    ``body`` of image ``image_id`` (without the prefix; sanitised and bounded already), made by
    ``backend``'s ``model`` with ``prompt``, at the cost of ``usage`` (None: no tokens);
    ``batch`` is the service's name of the batch job it came from (``""``: not a batch API)."""

    image_id: int
    body: str
    backend: str
    model: str
    prompt: str
    usage: TokenUsage | None = None
    batch: str = ""


class ProjectCaptions(ProjectBase):
    """The captions and review marks of an open project file."""

    # ------------------------------------------------------------------ captions

    def _put_caption(
        self,
        session: Session,
        image_id: int,
        body: str,
        provenance: Provenance,
        *,
        backend: str | None = None,
        model: str | None = None,
        prompt: str | None = None,
        usage: TokenUsage | None = None,
        current: CaptionRow | None | EllipsisType = ...,
    ) -> None:
        """Append a version (with the tokens of the answer that made it, if any) and make it
        the image's caption. ``current``: the image's caption row (or None) when the caller has
        loaded it already; saves a query per image."""
        now = utcnow()
        session.add(
            CaptionVersionRow(
                image_id=image_id,
                body=body,
                provenance=provenance.value,
                backend=backend,
                model=model,
                prompt=prompt,
                created_at=now,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
            )
        )
        row = session.get(CaptionRow, image_id) if current is ... else current
        if row is None:
            session.add(
                CaptionRow(
                    image_id=image_id,
                    body=body,
                    provenance=provenance.value,
                    backend=backend,
                    model=model,
                    prompt=prompt,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            row.body = body
            row.provenance = provenance.value
            row.backend = backend
            row.model = model
            row.prompt = prompt
            row.updated_at = now

    def _put_caption_state(self, session: Session, image_id: int, state: list[Any] | None,
                           *, current: CaptionRow | None | EllipsisType = ...) -> None:
        if state is None:
            row = session.get(CaptionRow, image_id) if current is ... else current
            if row is not None:
                session.delete(row)
            return
        body, provenance, backend, model, prompt = state
        self._put_caption(session, image_id, body, Provenance(provenance),
                          backend=backend, model=model, prompt=prompt, current=current)

    def store_generated(
        self,
        image_id: int,
        body: str,
        *,
        backend: str,
        model: str,
        prompt: str,
        usage: TokenUsage | None = None,
        overwrite_protected: bool = False,
    ) -> bool:
        """Store a model's caption body for an image, and record the attempt as ok with the
        tokens it cost (``usage``; the version stored carries them too). Committed before it
        returns (one transaction; :meth:`store_generated_many` stores many in one).

        The check and the write happen in one transaction: if a person edited, wrote or
        imported the caption meanwhile, it is kept (and False returned) unless
        ``overwrite_protected``. The replaced text stays in the history either way. Raises
        :class:`InputError` for an unknown image.
        """
        caption = CaptionToStore(image_id, body, backend=backend, model=model, prompt=prompt,
                                   usage=usage)
        return self.store_generated_many([caption], overwrite_protected=overwrite_protected)[0]

    def store_generated_many(self, captions: Sequence[CaptionToStore], *,
                             overwrite_protected: bool = False) -> list[bool]:
        """Store many models' captions as :meth:`store_generated` stores one, in ONE
        transaction: all or nothing, committed (one sync of the file) before it returns.

        For a fast backend (a local tagger, a vLLM server), where a transaction per caption
        would cost more than the caption. Captions of the same image are stored in order (the
        last becomes current). Returns, for each caption in order, True when it became the
        image's caption, False when a person's caption was kept (the generated text then goes
        to the history only, unless ``overwrite_protected``). Raises :class:`InputError` for an
        unknown image (then nothing is stored). Statements per group, not per caption: a query
        of the current captions, then one insert of the attempts, one of the versions and at
        most one insert and one update of the captions.
        """
        if not captions:
            return []
        with self._write() as session:
            return self._store_generated_in(session, captions, overwrite_protected)

    def _store_generated_in(self, session: Session, captions: Sequence[CaptionToStore],
                            overwrite_protected: bool) -> list[bool]:
        """:meth:`store_generated_many`'s work inside the caller's transaction."""
        now = utcnow()
        attempts: list[dict[str, Any]] = []
        versions: list[dict[str, Any]] = []
        added: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        stored: list[bool] = []
        conn = session.connection()
        current = self._current_captions(conn, [c.image_id for c in captions])
        for caption in captions:
            usage = caption.usage or TokenUsage()
            tokens = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
            attempts.append({"image_id": caption.image_id, "at": now, "ok": True,
                             "error_kind": "", "error": "", "backend": caption.backend,
                             "model": caption.model, **tokens})
            versions.append({"image_id": caption.image_id, "body": caption.body,
                             "provenance": Provenance.GENERATED.value,
                             "backend": caption.backend, "model": caption.model,
                             "prompt": caption.prompt, "created_at": now,
                             "batch": caption.batch, **tokens})
            state = current[caption.image_id]
            if (state is not None and Provenance(state[0]).protected and state[1].strip()
                    and not overwrite_protected):
                stored.append(False)  # in the history, not the current caption
                continue
            values = {"body": caption.body, "provenance": Provenance.GENERATED.value,
                      "backend": caption.backend, "model": caption.model,
                      "prompt": caption.prompt, "updated_at": now}
            if state is None:
                added.append({"image_id": caption.image_id, "created_at": now, **values})
            else:
                changed.append({"key": caption.image_id, **values})
            current[caption.image_id] = (Provenance.GENERATED.value, caption.body)
            stored.append(True)
        add_attempts, add_versions, add_captions, change_captions = _store_statements()
        conn.execute(add_attempts, attempts)
        conn.execute(add_versions, versions)
        if added:  # before the updates: a later caption of the same image updates it
            conn.execute(add_captions, added)
        if changed:
            conn.execute(change_captions, changed)
        return stored

    def _current_captions(self, conn: Connection, image_ids: Sequence[int]
                          ) -> dict[int, tuple[str, str] | None]:
        """``(provenance, body)`` of each image's caption, None for an image without one;
        raises :class:`InputError` for an unknown image."""
        found: dict[int, tuple[str, str] | None] = {}
        wanted = list(dict.fromkeys(image_ids))
        for chunk in _chunks(wanted):
            for image_id, provenance, body in conn.execute(_captions_query(), {"ids": chunk}):
                found[image_id] = None if provenance is None else (provenance, body)
        for image_id in wanted:
            if image_id not in found:
                raise InputError(f"No image with id {image_id} in {self.path.name}.")
        return found

    def record_failure(
        self, image_id: int, message: str, *, kind: str = "", backend: str = "", model: str = "",
        usage: TokenUsage | None = None,
    ) -> None:
        """Record a failed captioning attempt with its error message, and the tokens it paid
        for all the same (``usage``: the parts of a multi-person caption that did answer)."""
        with self._write() as session:
            self._require_image(session, image_id)
            session.add(
                CaptionAttemptRow(
                    image_id=image_id, ok=False, error=message, error_kind=kind,
                    backend=backend or None, model=model or None,
                    input_tokens=usage.input_tokens if usage else 0,
                    output_tokens=usage.output_tokens if usage else 0,
                )
            )

    def edit_caption(self, image_id: int, body: str) -> CaptionRecord:
        """Store text a person typed as the image's caption body (one undo step).

        A generated (or already edited) caption becomes ``edited`` and keeps the backend, model
        and prompt it came from; otherwise the caption is ``manual``. Committed at once. Raises
        :class:`InputError` for an unknown image.
        """
        with self._write() as session:
            image = self._require_image(session, image_id)
            entry = self._edit_row(session, image_id, session.get(CaptionRow, image_id), body)
            if entry is not None:
                self._record_step(session, f"Edit caption of {_file_name(image.path)}", [entry])
            session.flush()
            row = session.get(CaptionRow, image_id)
            assert row is not None
            return _caption_record(row)

    def apply_edits(self, bodies: Mapping[int, str], label: str) -> list[int]:
        """Store new caption bodies for many images as ONE undo step labelled ``label``.

        ``bodies`` maps image id -> new body (e.g. the ``after`` of a batch find/replace). Each
        caption follows :meth:`edit_caption`'s rules (``edited``, or ``manual`` for text a person
        wrote or imported); bodies equal to the current one are skipped. All or nothing: one
        transaction. Returns the ids whose caption changed. Raises :class:`InputError` for an
        unknown or invalid image (then nothing is stored).
        """
        entries: list[dict[str, Any]] = []
        with self._write() as session, session.no_autoflush:
            images, captions = self._load_rows(session, list(bodies))
            for image_id, body in bodies.items():
                image = images.get(image_id)
                if image is None:
                    raise InputError(f"No image with id {image_id} in {self.path.name}.")
                if not image.valid:
                    raise InputError(f"{image.path} is not a valid image; its caption cannot "
                                     "be changed.")
                entry = self._edit_row(session, image_id, captions.get(image_id), body)
                if entry is not None:
                    entries.append(entry)
            if entries:
                self._record_step(session, label, entries)
        return [entry["image"] for entry in entries]

    def _edit_row(self, session: Session, image_id: int, current: CaptionRow | None,
                  body: str) -> dict[str, Any] | None:
        if current is not None and current.body == body:
            return None
        before = _caption_state(current)
        if current is not None and current.provenance in (
            Provenance.GENERATED.value, Provenance.EDITED.value
        ):
            after = [body, Provenance.EDITED.value, current.backend, current.model,
                     current.prompt]
        else:
            after = [body, Provenance.MANUAL.value, None, None, None]
        self._put_caption_state(session, image_id, after, current=current)
        return {"image": image_id, "before": {"caption": before}, "after": {"caption": after}}

    def restore_caption(self, image_id: int, caption: CaptionRecord | None) -> None:
        """Make ``caption`` (an earlier state) the current caption again, without an undo step.

        The body, provenance, backend, model and prompt come back exactly; ``None`` removes the
        current caption (the image becomes uncaptioned). Every text stays in the history.
        """
        state = None if caption is None else [
            caption.body, caption.provenance.value, caption.backend, caption.model,
            caption.prompt,
        ]
        with self._write() as session:
            self._require_image(session, image_id)
            self._put_caption_state(session, image_id, state)

    def restore_version(self, image_id: int, version_id: int) -> CaptionRecord:
        """Make an entry of the image's history (:meth:`history`) its current caption again.

        The version's text, provenance, model and prompt come back exactly; one undo step.
        Raises :class:`InputError` when the version does not belong to the image.
        """
        with self._write() as session:
            image = self._require_image(session, image_id)
            version = session.get(CaptionVersionRow, version_id)
            if version is None or version.image_id != image_id:
                raise InputError("That caption version is not part of this image's history.")
            current = session.get(CaptionRow, image_id)
            before = _caption_state(current)
            after = [version.body, version.provenance, version.backend, version.model,
                     version.prompt]
            if before != after:
                self._put_caption_state(session, image_id, after)
                self._record_step(
                    session, f"Restore an earlier caption of {_file_name(image.path)}",
                    [{"image": image_id, "before": {"caption": before},
                      "after": {"caption": after}}],
                )
            session.flush()
            row = session.get(CaptionRow, image_id)
            assert row is not None
            return _caption_record(row)

    def has_generated_version(self, image_id: int) -> bool:
        """True when the image's history holds a generated caption (revert is possible)."""
        with self._read() as session:
            found = session.scalar(
                select(CaptionVersionRow.id)
                .where(CaptionVersionRow.image_id == image_id)
                .where(CaptionVersionRow.provenance == Provenance.GENERATED.value)
                .limit(1)
            )
            return found is not None

    # ------------------------------------------------------------------ history

    def history(self, image_id: int) -> list[CaptionVersion]:
        """Every caption version of an image, oldest first."""
        with self._read() as session:
            rows = session.scalars(
                select(CaptionVersionRow)
                .where(CaptionVersionRow.image_id == image_id)
                .order_by(CaptionVersionRow.id)
            )
            return [
                CaptionVersion(
                    id=row.id, body=row.body, provenance=Provenance(row.provenance),
                    backend=row.backend, model=row.model, prompt=row.prompt,
                    created_at=row.created_at, input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                )
                for row in rows
            ]

    def revert_to_generated(self, image_id: int) -> CaptionRecord:
        """Make the latest generated version the current caption again (one undo step; the edit
        stays in the history). Raises :class:`InputError` when the image has never had a
        generated caption."""
        generated = [v for v in self.history(image_id) if v.provenance is Provenance.GENERATED]
        if not generated:
            raise InputError("This image has no generated caption to revert to.")
        return self.restore_version(image_id, generated[-1].id)

    def final_caption(self, record: ImageRecord, settings: ProjectSettings | None = None) -> str:
        """The caption a trainer reads: the rendered prefix plus the body; ``""`` if none."""
        settings = settings or self.settings
        if record.caption is None:
            return ""
        return full_caption(settings.prefix_template, settings.trigger, record.caption.body)

    # ------------------------------------------------------------------ review marks

    def set_review(self, image_id: int, *, review: Review | None = None,
                   rating: int | None | bool = False, note: str | None = None) -> ImageRecord:
        """Change one image's review state, rating and/or note; see :meth:`set_reviews`."""
        self.set_reviews([image_id], review=review, rating=rating, note=note)
        return self.image(image_id)

    def set_reviews(self, image_ids: Sequence[int], *, review: Review | None = None,
                    rating: int | None | bool = False, note: str | None = None,
                    label: str = "") -> list[int]:
        """Change the review state, rating (1-5; None clears it) and/or note of images.

        Arguments left out are not changed (``rating=False`` means "leave as is"). One undo
        step for all the images (``label`` or a generated one such as "Approve 3 images").
        Returns the ids that changed. Raises :class:`InputError` for a rating outside 1-5 or an
        unknown image. Committed at once.
        """
        if rating is not False and rating is not None and not 1 <= int(rating) <= 5:
            raise InputError("A rating is a whole number from 1 to 5.")
        entries: list[dict[str, Any]] = []
        with self._write() as session, session.no_autoflush:
            wanted = list(dict.fromkeys(image_ids))
            images, _captions = self._load_rows(session, wanted)
            for image_id in wanted:
                row = images.get(image_id)
                if row is None:
                    raise InputError(f"No image with id {image_id} in {self.path.name}.")
                before = _review_state(row)
                if review is not None:
                    row.review = Review(review).value
                if rating is not False:
                    row.rating = None if rating is None else int(rating)
                if note is not None:
                    row.note = note
                after = _review_state(row)
                if after != before:
                    entries.append({"image": image_id, "before": {"review": before},
                                    "after": {"review": after}})
            if entries:
                self._record_step(session, label or _review_label(
                    len(entries), review=review, rating=rating, note=note), entries)
        return [entry["image"] for entry in entries]


@cache
def _captions_query() -> Select[*tuple[Any, ...]]:
    """``(image id, provenance, body)`` of the images ``ids`` (an expanding parameter) with
    their caption, NULLs for an image without one. Made once: building a statement costs more
    than running it."""
    return (select(ImageRow.id, CaptionRow.provenance, CaptionRow.body)
            .outerjoin(CaptionRow, CaptionRow.image_id == ImageRow.id)
            .where(ImageRow.id.in_(bindparam("ids", expanding=True))))


@cache
def _store_statements() -> tuple[Insert, Insert, Insert, Update]:
    """The statements of :meth:`ProjectCaptions.store_generated_many`, made once: insert
    attempts, insert versions, insert captions, update captions (by the parameter ``key``)."""
    return (insert(CaptionAttemptRow), insert(CaptionVersionRow), insert(CaptionRow),
            update(CaptionRow).where(CaptionRow.image_id == bindparam("key")))


def _file_name(stored: str) -> str:
    return readable_path(stored.rsplit("/", 1)[-1])


def _review_label(count: int, *, review: Review | None, rating: int | None | bool,
                  note: str | None) -> str:
    images = "1 image" if count == 1 else f"{count} images"
    if review is not None:
        verb = {Review.APPROVED: "Approve", Review.REJECTED: "Reject",
                Review.UNREVIEWED: "Clear the review mark of"}[Review(review)]
        return f"{verb} {images}"
    if rating is not False:
        if rating is None:
            return f"Clear the rating of {images}"
        return f"Set the rating of {images} to {rating}"
    return f"Edit the note of {images}"
