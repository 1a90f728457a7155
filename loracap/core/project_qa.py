"""The question-answer pairs of a project's images (format 7): storing a model's pairs and
answers, a person's questions and edits (one undo step each, or one for a batch), deleting
them, every version of their text, and the counts, batches and streamed images the window, the
jobs and the exports read.

A part of :class:`~loracap.core.project.Project` (see :mod:`loracap.core.project_base`). The
rules, as for captions (:mod:`loracap.core.project_captions`):

* Every text a pair ever held is appended to ``qa_versions`` before it becomes current, with
  its provenance: ``generated`` (a model's answer, with the tokens it cost), ``edited`` (a
  person changed a model's text) or ``manual`` (a person wrote it).
* A model's answer never replaces one a person confirmed, edited or wrote unless the caller
  passes ``overwrite_confirmed=True`` (:meth:`ProjectQA.set_answer`); the refused answer is
  kept in the history all the same.
* A question is asked once per image: questions are compared with surrounding spaces removed,
  runs of spaces collapsed and case ignored (:func:`question_key`).
* An answer that failed its label list or schema is stored with ``valid`` False and the
  reason; the exports never write it. The checks themselves live where answers are made.

Undo: a person's changes (a question, an edit, a batch, a deletion) are undo steps whose image
states hold ``"qa"`` (:class:`~loracap.core.schema.UndoStepRow`); undo and redo leave alone an
image whose pairs something else (a model's new answer) changed since. A model's pairs and
answers are no undo step, as generated captions are not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from types import EllipsisType
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from loracap.core.backends.base import TokenUsage
from loracap.core.errors import InputError
from loracap.core.project_base import ProjectBase, _chunks
from loracap.core.qa.records import (
    MAX_SCORE,
    MIN_SCORE,
    AnswerType,
    QACount,
    QAEntry,
    QAImage,
    QAStats,
    QAVersion,
)
from loracap.core.records import Provenance, readable_path
from loracap.core.schema import ImageRow, QAEntryRow, QAVersionRow, utcnow

#: The fields of a pair a person edits (:meth:`ProjectQA.edit_qa`,
#: :meth:`ProjectQA.edit_qa_many`), in the order of an undo state.
EDITABLE_FIELDS = ("question", "answer", "answer_type", "confirmed", "score", "tags", "note",
                   "valid", "invalid_reason")

#: The modes of :meth:`ProjectQA.select_for_qa`.
QA_MODES = ("missing", "all", "selected")

#: Images a streamed read (:meth:`ProjectQA.qa_images`) loads at once.
STREAM_CHUNK = 500


def question_key(question: str) -> str:
    """What two questions are compared by: surrounding spaces removed, runs of whitespace made
    one space, case ignored (``casefold``). ``" What  colour?"`` and ``"what colour?"`` are
    the same question."""
    return " ".join(question.split()).casefold()


class ProjectQA(ProjectBase):
    """The question-answer pairs of an open project file."""

    # ------------------------------------------------------------------ reading

    def qa_entries(self, image_id: int) -> list[QAEntry]:
        """The pairs of an image, oldest first; ``[]`` for an image without pairs or an
        unknown id."""
        if not self._qa_stored:
            return []
        with self._read() as session:
            rows = session.scalars(select(QAEntryRow).where(QAEntryRow.image_id == image_id)
                                   .order_by(QAEntryRow.id))
            return [_entry(row) for row in rows]

    def qa_entry(self, entry_id: int) -> QAEntry:
        """One pair by id. Raises :class:`InputError` for an unknown id."""
        if not self._qa_stored:
            raise InputError(f"No question-answer pair with id {entry_id} in {self.path.name}.")
        with self._read() as session:
            return _entry(self._require_entry(session, entry_id))

    def qa_history(self, entry_id: int) -> list[QAVersion]:
        """Every version of a pair's text, oldest first; kept when the pair is deleted (undo
        brings it back). ``[]`` for an id that never existed."""
        if not self._qa_stored:
            return []
        with self._read() as session:
            rows = session.scalars(select(QAVersionRow).where(QAVersionRow.entry_id == entry_id)
                                   .order_by(QAVersionRow.id))
            return [_version(row) for row in rows]

    def qa_counts(self, image_ids: Sequence[int] | None = None) -> dict[int, QACount]:
        """The counts of each image's pairs by image id (:class:`QACount`); images without
        pairs are left out, and with ``image_ids`` only those are counted. Two queries per 500
        images."""
        if not self._qa_stored:
            return {}
        counted = select(
            QAEntryRow.image_id, func.count(), func.sum(case((QAEntryRow.confirmed, 1), else_=0)),
            func.sum(case((QAEntryRow.valid, 0), else_=1)), func.max(QAEntryRow.score),
        ).group_by(QAEntryRow.image_id)
        tagged = select(QAEntryRow.image_id, QAEntryRow.tags).where(QAEntryRow.tags != "[]")
        counts: dict[int, QACount] = {}
        tags: dict[int, set[str]] = {}
        with self._read() as session:
            for where in _where_images(QAEntryRow.image_id, image_ids):
                for image_id, total, confirmed, invalid, best in session.execute(
                        counted.where(*where)):
                    counts[image_id] = QACount(int(total), int(confirmed), int(invalid), best)
                for image_id, text in session.execute(tagged.where(*where)):
                    tags.setdefault(image_id, set()).update(json.loads(text))
        return {image_id: QACount(count.total, count.confirmed, count.invalid,
                                  count.best_score, frozenset(tags.get(image_id, ())))
                for image_id, count in counts.items()}

    def qa_stats(self) -> QAStats:
        """Counts over every pair of the project (:class:`QAStats`), from SQL aggregates."""
        if not self._qa_stored:
            return QAStats(entries=0, confirmed=0, average_score=None)
        with self._read() as session:
            entries, confirmed, average, images, invalid = session.execute(select(
                func.count(), func.sum(case((QAEntryRow.confirmed, 1), else_=0)),
                func.avg(QAEntryRow.score), func.count(QAEntryRow.image_id.distinct()),
                func.sum(case((QAEntryRow.valid, 0), else_=1)),
            )).one()
            by_type = session.execute(select(QAEntryRow.answer_type, func.count())
                                      .group_by(QAEntryRow.answer_type)).all()
        return QAStats(entries=int(entries), confirmed=int(confirmed or 0),
                       average_score=None if average is None else float(average),
                       by_answer_type={kind: int(count) for kind, count in by_type},
                       images_with_qa=int(images), invalid=int(invalid or 0))

    def qa_images(self, *, image_ids: Iterable[int] | None = None) -> Iterator[QAImage]:
        """Every valid image with at least one pair (only those of ``image_ids`` when given),
        in the order of :meth:`~loracap.core.project_images.ProjectImages.images` (stored path,
        ignoring case), each with its pairs oldest first -- invalid answers included; the
        exports leave them out.

        Streamed: the ids and paths of the images are read first, then the pairs of
        :data:`STREAM_CHUNK` images at a time, each chunk in its own short session, so the
        pairs of a large project are never in memory at once. ``rel_path`` is the image's
        stored path (:attr:`~loracap.core.records.ImageRecord.path`), ``path`` the file.
        """
        if not self._qa_stored:
            return
        wanted = None if image_ids is None else list(dict.fromkeys(image_ids))
        has_pairs = ImageRow.id.in_(select(QAEntryRow.image_id))
        images: list[tuple[int, str]] = []
        with self._read() as session:
            for where in _where_images(ImageRow.id, wanted):
                images.extend((image_id, stored) for image_id, stored in session.execute(
                    select(ImageRow.id, ImageRow.path).where(ImageRow.valid.is_(True),
                                                             has_pairs, *where)))
        images.sort(key=lambda image: _path_order(image[1]))
        for start in range(0, len(images), STREAM_CHUNK):
            chunk = images[start:start + STREAM_CHUNK]
            pairs: dict[int, list[QAEntry]] = {}
            with self._read() as session:
                rows = session.scalars(select(QAEntryRow).where(
                    QAEntryRow.image_id.in_([image_id for image_id, _ in chunk]))
                    .order_by(QAEntryRow.image_id, QAEntryRow.id))
                for row in rows:
                    pairs.setdefault(row.image_id, []).append(_entry(row))
            for image_id, stored in chunk:
                yield QAImage(image_id=image_id, path=self.resolve(stored),
                              rel_path=readable_path(stored),
                              entries=tuple(pairs.get(image_id, ())))

    def select_for_qa(self, only: str, image_ids: Sequence[int] = ()) -> list[int]:
        """The images a question-answer batch takes, in path order: ``missing`` (valid images
        without any pair), ``all`` (every valid image) or ``selected`` (those of
        ``image_ids`` that are valid). As for captioning, an image whose file is not on disk
        is never selected. Raises :class:`InputError` for another mode."""
        if only not in QA_MODES:
            raise InputError(f"Unknown question-answer batch {only!r}; choose one of "
                             f"{', '.join(QA_MODES)}.")
        query = select(ImageRow.id, ImageRow.path).where(ImageRow.valid.is_(True))
        if only == "missing" and self._qa_stored:
            query = query.where(ImageRow.id.not_in(select(QAEntryRow.image_id)))
        images: list[tuple[int, str]] = []
        with self._read() as session:
            for where in _where_images(ImageRow.id,
                                       list(image_ids) if only == "selected" else None):
                images.extend((image_id, stored) for image_id, stored in session.execute(
                    query.where(*where)))
        images.sort(key=lambda image: _path_order(image[1]))
        return [image_id for image_id, stored in images if self.resolve(stored).is_file()]

    def unanswered_qa(self, image_ids: Sequence[int] | None = None
                      ) -> dict[int, list[QAEntry]]:
        """The pairs without an answer yet (``answer == ""``: questions a person wrote), by
        image id, oldest first; only those of ``image_ids`` when given."""
        if not self._qa_stored:
            return {}
        found: dict[int, list[QAEntry]] = {}
        query = select(QAEntryRow).where(QAEntryRow.answer == "").order_by(QAEntryRow.id)
        with self._read() as session:
            for where in _where_images(QAEntryRow.image_id, image_ids):
                for row in session.scalars(query.where(*where)):
                    found.setdefault(row.image_id, []).append(_entry(row))
        return found

    @cached_property
    def _qa_stored(self) -> bool:
        """False for a file of an older format opened read-only (not migrated: no tables of
        pairs); every read then finds no pairs."""
        with self._read() as session:
            return session.execute(text(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'qa_entries'"
            )).first() is not None

    # ------------------------------------------------------------------ a model's pairs

    def add_qa(self, image_id: int, entries: Sequence[QAEntry], *,
               usage: TokenUsage | None = None) -> list[QAEntry]:
        """Store the pairs a model made for an image: each becomes a ``generated`` entry with
        the ``backend``, ``model``, ``answer_type``, ``valid`` and ``invalid_reason`` it
        carries (and its ``confirmed``, ``score``, ``tags`` and ``note``), and gets its first
        version. The answer's tokens (``usage``) are put on the first version stored, so the
        versions' tokens add up to what was paid; when nothing is stored they are not
        recorded.

        Not stored: a pair whose question is blank, asks what the image already has a pair
        for, or repeats an earlier pair of ``entries`` (:func:`question_key`). Returns what
        was stored, with ids, in order. No undo step. Raises :class:`InputError` for an
        unknown or invalid image or a field out of range (a score outside 0-5), then nothing
        is stored.
        """
        now = utcnow()
        with self._write() as session:
            self._require_valid_image(session, image_id)
            asked = {question_key(q) for q in session.scalars(
                select(QAEntryRow.question).where(QAEntryRow.image_id == image_id))}
            rows: list[QAEntryRow] = []
            for entry in entries:
                key = question_key(entry.question)
                if not key or key in asked:
                    continue
                asked.add(key)
                fields = _checked_fields({name: getattr(entry, name) for name in EDITABLE_FIELDS})
                row = QAEntryRow(image_id=image_id, provenance=Provenance.GENERATED.value,
                                 backend=entry.backend, model=entry.model, created_at=now,
                                 updated_at=now, **_stored_fields(fields))
                session.add(row)
                rows.append(row)
            session.flush()
            for index, row in enumerate(rows):
                _add_version(session, row, usage if index == 0 else None, at=now)
            return [_entry(row) for row in rows]

    def set_answer(self, entry_id: int, answer: str, *, backend: str, model: str,
                   valid: bool = True, invalid_reason: str = "",
                   usage: TokenUsage | None = None, overwrite_confirmed: bool = False) -> bool:
        """Store a model's (new) answer to a pair: it becomes a ``generated`` version (with the
        tokens it cost, ``usage``) and the pair's answer, with ``valid``/``invalid_reason`` as
        the caller checked it. A different answer than the current one clears the pair's
        confirmation and score (they judged the old answer).

        The check and the write are one transaction: a pair a person confirmed, or whose
        answer a person edited or wrote (provenance ``edited``/``manual`` with an answer), is
        left as it is and False returned, unless ``overwrite_confirmed``; the answer is kept
        in the history either way. A person's question without an answer is answered. No undo
        step. Raises :class:`InputError` for an unknown pair.
        """
        now = utcnow()
        answer = str(answer).strip()
        with self._write() as session:
            row = self._require_entry(session, entry_id)
            protected = row.confirmed or (row.provenance != Provenance.GENERATED.value
                                          and bool(row.answer))
            if protected and not overwrite_confirmed:
                session.add(_version_row(row, answer, Provenance.GENERATED, backend, model,
                                         usage, at=now))
                return False
            if answer != row.answer:
                row.confirmed, row.score = False, None
            row.answer, row.provenance = answer, Provenance.GENERATED.value
            row.backend, row.model = backend, model
            row.valid, row.invalid_reason = bool(valid), str(invalid_reason)
            row.updated_at = now
            _add_version(session, row, usage, at=now)
            return True

    # ------------------------------------------------------------------ a person's pairs

    def add_question(self, image_id: int, question: str, answer: str = "", *,
                     answer_type: AnswerType = AnswerType.TEXT, valid: bool = True,
                     invalid_reason: str = "", label: str = "Add question") -> QAEntry:
        """Store a question a person wrote about an image, with their answer or ``""`` (to be
        answered by a model later): a ``manual`` pair with its first version, as ONE undo
        step labelled ``label``. Raises :class:`InputError` for an unknown or invalid image,
        a blank question, one the image already has a pair for (:func:`question_key`), or a
        field that cannot be used."""
        fields = _checked_fields({"question": question, "answer": answer,
                                  "answer_type": answer_type, "valid": valid,
                                  "invalid_reason": invalid_reason})
        now = utcnow()
        with self._write() as session:
            self._require_valid_image(session, image_id)
            row = QAEntryRow(image_id=image_id, provenance=Provenance.MANUAL.value, backend="",
                             model="", created_at=now, updated_at=now,
                             **_stored_fields({**_DEFAULTS, **fields}))
            self._check_unique(session, row)
            session.add(row)
            session.flush()
            _add_version(session, row, None, at=now)
            self._record_step(session, label, [
                {"image": image_id, "before": {"qa": [[row.id, None]]},
                 "after": {"qa": [[row.id, _state(row)]]}}])
            return _entry(row)

    def edit_qa(self, entry_id: int, *, question: str | None = None, answer: str | None = None,
                answer_type: AnswerType | None = None, confirmed: bool | None = None,
                score: int | None | EllipsisType = ..., tags: Sequence[str] | None = None,
                note: str | None = None, valid: bool | None = None,
                invalid_reason: str | None = None, label: str) -> QAEntry:
        """Change a pair as a person, as ONE undo step labelled ``label``; arguments left out
        (None; ``...`` for ``score``) are not changed, ``score=None`` clears the score.

        A changed question or answer is a new version: ``edited`` (a model's text changed),
        or ``manual`` for a pair a person wrote. The checks of a changed answer against the
        labels or schema are the caller's: pass ``valid``/``invalid_reason`` with it.
        ``updated_at`` changes with anything; nothing changed, no step. Returns the pair.
        Raises :class:`InputError` for an unknown pair, a score outside 0-5, a blank question
        or one another pair of the image asks (:func:`question_key`)."""
        changes: dict[str, object] = {
            name: value for name, value in (
                ("question", question), ("answer", answer), ("answer_type", answer_type),
                ("confirmed", confirmed), ("tags", tags), ("note", note), ("valid", valid),
                ("invalid_reason", invalid_reason)) if value is not None}
        if score is not ...:
            changes["score"] = score
        self.edit_qa_many({entry_id: changes}, label)
        return self.qa_entry(entry_id)

    def edit_qa_many(self, changes: Mapping[int, Mapping[str, object]], label: str) -> list[int]:
        """Change many pairs as a person, as ONE undo step labelled ``label`` (a batch
        confirm or score). ``changes`` maps a pair's id to its new fields by name
        (:data:`EDITABLE_FIELDS`; ``"score": None`` clears the score), each pair as
        :meth:`edit_qa`. All or nothing: one transaction. Returns the ids of the pairs that
        changed. Raises :class:`InputError` for an unknown pair or field or a value that
        cannot be used (then nothing is stored)."""
        checked = {entry_id: _checked_fields(fields) for entry_id, fields in changes.items()}
        now = utcnow()
        steps: dict[int, dict[str, Any]] = {}
        changed: list[int] = []
        with self._write() as session:
            rows = self._require_entries(session, list(checked))
            for entry_id, fields in checked.items():
                row = rows[entry_id]
                before = _state(row)
                self._apply(session, row, fields, at=now)
                after = _state(row)
                if after == before:
                    continue
                row.updated_at = now
                step = steps.setdefault(row.image_id, {"image": row.image_id,
                                                       "before": {"qa": []}, "after": {"qa": []}})
                step["before"]["qa"].append([entry_id, before])
                step["after"]["qa"].append([entry_id, after])
                changed.append(entry_id)
            if steps:
                self._record_step(session, label, list(steps.values()))
        return changed

    def delete_qa(self, entry_ids: Iterable[int], label: str) -> int:
        """Delete pairs as ONE undo step labelled ``label``; undo brings them back with the
        same ids, and their history is kept. Returns how many were deleted. Raises
        :class:`InputError` for an unknown pair (then nothing is deleted)."""
        ids = list(dict.fromkeys(entry_ids))
        steps: dict[int, dict[str, Any]] = {}
        with self._write() as session:
            rows = self._require_entries(session, ids)
            for entry_id in ids:
                row = rows[entry_id]
                step = steps.setdefault(row.image_id, {"image": row.image_id,
                                                       "before": {"qa": []}, "after": {"qa": []}})
                step["before"]["qa"].append([entry_id, _state(row)])
                step["after"]["qa"].append([entry_id, None])
                session.delete(row)
            if steps:
                self._record_step(session, label, list(steps.values()))
        return len(ids)

    # ------------------------------------------------------------------ undo states

    def _qa_state(self, session: Session, entry_ids: Sequence[int]) -> list[Any]:
        """The pairs ``entry_ids`` as an undo step stores them: ``[[id, state or None]]``."""
        rows = {row.id: row for row in session.scalars(
            select(QAEntryRow).where(QAEntryRow.id.in_(entry_ids)))}
        return [[entry_id, _state(rows[entry_id]) if entry_id in rows else None]
                for entry_id in entry_ids]

    def _put_qa_state(self, session: Session, image_id: int, pairs: list[Any]) -> None:
        """Make the pairs of a stored undo state (:meth:`_qa_state`) the image's: remove those
        stored as None, put back the others under their ids (a changed text is a new version,
        with the state's provenance; a pair brought back keeps its history)."""
        now = utcnow()
        for entry_id, state in pairs:
            row = session.get(QAEntryRow, entry_id)
            if state is None:
                if row is not None:
                    session.delete(row)
                continue
            fields = dict(zip(EDITABLE_FIELDS, state, strict=False))
            provenance, backend, model, created = state[len(EDITABLE_FIELDS):]
            restored = row is None
            if row is None:
                row = QAEntryRow(id=entry_id, image_id=image_id,
                                 created_at=datetime.fromisoformat(created))
                session.add(row)
            text_changed = (row.question, row.answer) != (fields["question"], fields["answer"])
            for name, value in _stored_fields(fields).items():
                setattr(row, name, value)
            row.provenance, row.backend, row.model = provenance, backend, model
            row.updated_at = now
            if text_changed and not restored:
                _add_version(session, row, None, at=now)

    # ------------------------------------------------------------------ helpers

    def _apply(self, session: Session, row: QAEntryRow, fields: Mapping[str, Any], *,
               at: datetime) -> None:
        """Put a person's checked ``fields`` on ``row``; a changed question or answer becomes
        an ``edited`` (``manual`` stays ``manual``) version."""
        text = (row.question, row.answer)
        for name, value in _stored_fields(fields).items():
            setattr(row, name, value)
        if (row.question, row.answer) == text:
            return
        if question_key(row.question) != question_key(text[0]):
            self._check_unique(session, row)
        if row.provenance != Provenance.MANUAL.value:
            row.provenance = Provenance.EDITED.value
        session.flush()
        _add_version(session, row, None, at=at)

    def _check_unique(self, session: Session, row: QAEntryRow) -> None:
        """Raise :class:`InputError` when another pair of ``row``'s image asks its question."""
        key = question_key(row.question)
        others = select(QAEntryRow.question).where(QAEntryRow.image_id == row.image_id)
        if row.id is not None:
            others = others.where(QAEntryRow.id != row.id)
        if any(question_key(other) == key for other in session.scalars(others)):
            raise InputError(f"This image already has the question {row.question!r}.")

    def _require_valid_image(self, session: Session, image_id: int) -> ImageRow:
        image = self._require_image(session, image_id)
        if not image.valid:
            raise InputError(f"{readable_path(image.path)} is not a valid image; it cannot "
                             "have question-answer pairs.")
        return image

    def _require_entry(self, session: Session, entry_id: int) -> QAEntryRow:
        """A pair's row; raises :class:`InputError` for an unknown id."""
        return self._require_entries(session, [entry_id])[entry_id]

    def _require_entries(self, session: Session, entry_ids: Sequence[int]
                         ) -> dict[int, QAEntryRow]:
        """The rows of pairs by id, 500 a query; raises :class:`InputError` for an unknown
        id."""
        rows: dict[int, QAEntryRow] = {}
        for chunk in _chunks(entry_ids):
            rows.update((row.id, row) for row in session.scalars(
                select(QAEntryRow).where(QAEntryRow.id.in_(chunk))))
        for entry_id in entry_ids:
            if entry_id not in rows:
                raise InputError(f"No question-answer pair with id {entry_id} in "
                                 f"{self.path.name}.")
        return rows


# ---------------------------------------------------------------------- rows, records, states

#: A new pair's fields a caller did not give.
_DEFAULTS: dict[str, Any] = {"answer": "", "answer_type": AnswerType.TEXT, "confirmed": False,
                             "score": None, "tags": (), "note": "", "valid": True,
                             "invalid_reason": ""}


def _checked_fields(fields: Mapping[str, object]) -> dict[str, Any]:
    """``fields`` (names of :data:`EDITABLE_FIELDS`) checked and cleaned: question and answer
    without surrounding spaces, the answer type an :class:`AnswerType`, tags a tuple of
    one-line texts. Raises :class:`InputError`."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise InputError(f"Unknown field(s) of a question-answer pair: "
                         f"{', '.join(sorted(unknown))}.")
    checked: dict[str, Any] = {}
    for name, value in fields.items():
        if name in ("question", "answer", "note", "invalid_reason"):
            if not isinstance(value, str):
                raise InputError(f"The {name.replace('_', ' ')} of a pair must be text.")
            checked[name] = value.strip() if name in ("question", "answer") else value
        elif name in ("confirmed", "valid"):
            if not isinstance(value, bool):
                raise InputError(f"{name.capitalize()} is yes or no (True or False).")
            checked[name] = value
        elif name == "answer_type":
            try:
                checked[name] = AnswerType(str(value))
            except ValueError:
                raise InputError(f"Unknown answer type {value!r}; choose one of "
                                 f"{', '.join(kind.value for kind in AnswerType)}.") from None
        elif name == "score":
            if value is not None and (type(value) is not int
                                      or not MIN_SCORE <= value <= MAX_SCORE):
                raise InputError(f"A score is a whole number from {MIN_SCORE} to {MAX_SCORE}.")
            checked[name] = value
        else:
            checked[name] = _checked_tags(value)
    if "question" in checked and not checked["question"]:
        raise InputError("The question is empty.")
    return checked


def _checked_tags(value: object) -> tuple[str, ...]:
    """A pair's tags: one-line texts without surrounding spaces, in order, each once."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InputError("A pair's tags are a list of texts.")
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not tag.strip() or len(f"{tag}.".splitlines()) > 1:
            raise InputError(f"The tag {tag!r} is empty, not text or holds a line break.")
        if tag.strip() not in tags:
            tags.append(tag.strip())
    return tuple(tags)


def _stored_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Checked fields as the row's columns hold them (answer type as its value, tags as a
    JSON list)."""
    stored = dict(fields)
    if "answer_type" in stored:
        stored["answer_type"] = AnswerType(stored["answer_type"]).value
    if "tags" in stored:
        stored["tags"] = json.dumps(list(stored["tags"]), ensure_ascii=False)
    return stored


def _state(row: QAEntryRow) -> list[Any]:
    """A pair as an undo step stores it (:class:`~loracap.core.schema.UndoStepRow`):
    :data:`EDITABLE_FIELDS`, then provenance, backend, model and the creation time (ISO, UTC)."""
    return [row.question, row.answer, row.answer_type, bool(row.confirmed), row.score,
            json.loads(row.tags), row.note, bool(row.valid), row.invalid_reason,
            row.provenance, row.backend, row.model, _utc(row.created_at).isoformat()]


def _version_row(row: QAEntryRow, answer: str, provenance: Provenance, backend: str,
                 model: str, usage: TokenUsage | None, *, at: datetime) -> QAVersionRow:
    return QAVersionRow(entry_id=row.id, image_id=row.image_id, question=row.question,
                        answer=answer, provenance=provenance.value, backend=backend,
                        model=model, created_at=at,
                        input_tokens=usage.input_tokens if usage else 0,
                        output_tokens=usage.output_tokens if usage else 0)


def _add_version(session: Session, row: QAEntryRow, usage: TokenUsage | None, *,
                 at: datetime) -> None:
    """Append the pair's current text to its history (``row`` has its id)."""
    session.add(_version_row(row, row.answer, Provenance(row.provenance), row.backend,
                             row.model, usage, at=at))


def _entry(row: QAEntryRow) -> QAEntry:
    return QAEntry(
        question=row.question, answer=row.answer, answer_type=AnswerType(row.answer_type),
        model=row.model, confirmed=bool(row.confirmed), score=row.score,
        tags=tuple(json.loads(row.tags)), note=row.note, valid=bool(row.valid), id=row.id,
        image_id=row.image_id, provenance=Provenance(row.provenance), backend=row.backend,
        invalid_reason=row.invalid_reason, created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at))


def _version(row: QAVersionRow) -> QAVersion:
    return QAVersion(
        id=row.id, entry_id=row.entry_id, question=row.question, answer=row.answer,
        provenance=Provenance(row.provenance), backend=row.backend, model=row.model,
        created_at=_utc(row.created_at), input_tokens=row.input_tokens,
        output_tokens=row.output_tokens)


def _utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives it back without its zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _path_order(stored: str) -> tuple[str, str]:
    """The order of :meth:`~loracap.core.project_images.ProjectImages.images`."""
    shown = readable_path(stored)
    return shown.casefold(), shown


def _where_images(column: Any, image_ids: Sequence[int] | None) -> Iterator[tuple[Any, ...]]:
    """The ``WHERE`` conditions of a query over ``image_ids`` in chunks of 500 (SQLite limits
    the variables of a statement): one empty condition for all images."""
    if image_ids is None:
        yield ()
        return
    for chunk in _chunks(list(dict.fromkeys(image_ids))):
        yield (column.in_(chunk),)

