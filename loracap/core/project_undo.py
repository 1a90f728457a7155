"""The undo stack of a project: each edit a person makes (a caption, a batch of captions, review
marks, the people of a multi-person image, question-answer pairs) is one step stored in the
project file, so undo and redo survive closing and reopening.

A step stores, for each image it changed, the state before and after (see
:class:`~loracap.core.schema.UndoStepRow`); undoing or redoing it leaves alone an image that
something else changed since. The stack is bounded by the limits of
:mod:`loracap.core.project` (:data:`~loracap.core.project.MAX_UNDO_STEPS`,
:data:`~loracap.core.project.MAX_UNDO_ENTRIES`); the caption history keeps every text
regardless. A part of :class:`~loracap.core.project.Project` (see
:mod:`loracap.core.project_base`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loracap.core.project_base import ProjectBase, _caption_state, _review_state
from loracap.core.project_integrity import _undo_entries
from loracap.core.records import UndoOutcome
from loracap.core.schema import UndoStepRow, utcnow


class ProjectUndo(ProjectBase):
    """Undo and redo of a person's edits, stored in the project file."""

    def _record_step(self, session: Session, label: str, entries: list[dict[str, Any]]) -> None:
        """Push an undo step (in the edit's own transaction) and trim the stack.

        A new step discards the redo branch, as in every editor.
        """
        session.execute(delete(UndoStepRow).where(UndoStepRow.undone.is_(True)))
        session.add(UndoStepRow(label=label, created_at=utcnow(), undone=False,
                                entries=_weight(entries), payload=json.dumps(entries)))
        session.flush()
        rows = session.execute(
            select(UndoStepRow.id, UndoStepRow.entries).order_by(UndoStepRow.id.desc())
        ).all()
        max_steps, max_entries = self._undo_limits()
        kept_entries = 0
        drop: list[int] = []
        for position, (step_id, count) in enumerate(rows):
            kept_entries += count
            if position > 0 and (position >= max_steps or kept_entries > max_entries):
                drop.append(step_id)
        if drop:
            session.execute(delete(UndoStepRow).where(UndoStepRow.id.in_(drop)))

    def _step(self, *, undo: bool) -> UndoOutcome | None:
        with self._write() as session, session.no_autoflush:
            query = select(UndoStepRow).where(UndoStepRow.undone.is_(not undo))
            query = query.order_by(UndoStepRow.id.desc() if undo else UndoStepRow.id)
            step = session.scalars(query.limit(1)).first()
            if step is None:
                return None
            source, target = ("after", "before") if undo else ("before", "after")
            entries = _undo_entries(self.path, step.payload)
            images, captions = self._load_rows(session, [int(e["image"]) for e in entries])
            changed: list[int] = []
            skipped: list[int] = []
            for entry in entries:
                image_id = int(entry["image"])
                image = images.get(image_id)
                current = captions.get(image_id)
                wanted = entry[target]
                now: dict[str, Any] = {}
                if "caption" in wanted:
                    now["caption"] = _caption_state(current)
                if "review" in wanted and image is not None:
                    now["review"] = _review_state(image)
                if "people" in wanted:
                    now["people"] = self._people_state(session, image_id)
                if "qa" in wanted:
                    now["qa"] = self._qa_state(session, [pair[0] for pair in wanted["qa"]])
                # Something else changed the image after this step: leave it as it is.
                if image is None or now != entry[source]:
                    skipped.append(image_id)
                    continue
                if "caption" in wanted:
                    self._put_caption_state(session, image_id, wanted["caption"],
                                            current=current)
                if "review" in wanted:
                    image.review, image.rating, image.note = wanted["review"]
                if "people" in wanted:
                    self._put_people_state(session, image_id, wanted["people"])
                if "qa" in wanted:
                    self._put_qa_state(session, image_id, wanted["qa"])
                changed.append(image_id)
            step.undone = undo
            return UndoOutcome(step.label, changed, skipped)

    def undo(self) -> UndoOutcome | None:
        """Take back the newest edit that is not undone; None when there is nothing to undo.

        Survives closing and reopening: the stack is stored in the project file. An image that
        something else changed after the step (a captioning batch, another edit) is skipped and
        reported in :attr:`UndoOutcome.skipped`, never overwritten.
        """
        return self._step(undo=True)

    def redo(self) -> UndoOutcome | None:
        """Do again the oldest undone edit; None when there is nothing to redo."""
        return self._step(undo=False)

    def undo_label(self) -> str | None:
        """The label of the step :meth:`undo` would take back, or None."""
        return self._peek(undone=False)

    def redo_label(self) -> str | None:
        """The label of the step :meth:`redo` would do again, or None."""
        return self._peek(undone=True)

    def _peek(self, *, undone: bool) -> str | None:
        order = UndoStepRow.id if undone else UndoStepRow.id.desc()
        with self._read() as session:
            return session.scalar(
                select(UndoStepRow.label).where(UndoStepRow.undone.is_(undone))
                .order_by(order).limit(1)
            )


def _weight(entries: list[dict[str, Any]]) -> int:
    """What a step counts against :data:`~loracap.core.project.MAX_UNDO_ENTRIES`: one per
    image, or per question-answer pair when the image's change holds more than one."""
    return sum(max(1, len(entry["after"].get("qa", ()))) for entry in entries)
