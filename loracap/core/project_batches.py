"""The batch API jobs of a project (format 8): each job submitted to a service's batch API, its
images with the key that matches a result to each, and what became of them.

A job is stored before it is sent (state ``submitting``), so a stop during the upload still
leaves a trace of what may have reached the service; once the service accepts it, its name
there is stored. Results are stored as they are fetched: each caption in the same transaction
as its image's item, so a result is stored once however often the fetch is repeated or
interrupted (issue 15: "each caption is saved as it is fetched … a cancelled or expired job
keeps everything already fetched").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from loracap.core.backends.base import TokenUsage
from loracap.core.batches.base import BatchJobRecord, ItemState, JobState
from loracap.core.errors import InputError
from loracap.core.project_base import ProjectBase
from loracap.core.project_captions import CaptionToStore
from loracap.core.schema import BatchItemRow, BatchJobRow, CaptionAttemptRow, utcnow

#: Shown for an image of a job that ended without a result for it.
_NO_RESULT = "the batch job ended without a result for this image"


@dataclass(frozen=True)
class BatchOutcome:
    """What to store for one result of a job: the image's ``key`` and either a ``caption``
    (sanitised and bounded already; its ``image_id`` is the key's) or the ``error`` (``kind``
    as a caption attempt's), with the tokens the answer cost (``usage``)."""

    key: str
    caption: CaptionToStore | None = None
    error: str = ""
    kind: str = ""
    usage: TokenUsage | None = None


class ProjectBatches(ProjectBase):
    """The batch API jobs of an open project file."""

    def _require_batches(self) -> None:
        if self.format_version < 8:
            raise InputError(
                f"{self.path.name} is in an older project format opened read-only; it has no "
                "batch jobs. Open it for writing to upgrade it.")

    def add_batch_job(self, *, backend: str, model: str, base_url: str, settings: str,
                      items: Sequence[tuple[int, str]]) -> int:
        """Store a job about to be submitted (state ``submitting``) with its images, each
        ``(image id, key)``; returns the job's id. Raises :class:`InputError` for an unknown
        image or a key used twice."""
        keys = [key for _, key in items]
        if len(set(keys)) != len(keys):
            raise InputError("A batch job's keys must differ.")
        now = utcnow()
        with self._write() as session:
            job = BatchJobRow(backend=backend, model=model, base_url=base_url, remote_id="",
                              state=JobState.SUBMITTING.value, settings=settings,
                              requests=len(items), created_at=now, updated_at=now)
            session.add(job)
            session.flush()
            self._current_captions(session.connection(), [image_id for image_id, _ in items])
            if items:
                session.execute(insert(BatchItemRow), [
                    {"job_id": job.id, "image_id": image_id, "key": key,
                     "state": ItemState.WAITING.value} for image_id, key in items])
            return int(job.id)

    def set_batch_submitted(self, job_id: int, *, remote_id: str, state: JobState,
                            remote_state: str = "", input_file: str = "") -> None:
        """Store the service's name of a submitted job and where it is."""
        with self._write() as session:
            job = self._job_row(session, job_id)
            job.remote_id, job.input_file = remote_id, input_file
            job.state, job.remote_state = state.value, remote_state
            job.updated_at = utcnow()

    def update_batch_job(self, job_id: int, *, state: JobState, remote_state: str = "",
                         error: str = "") -> None:
        """Store where a job is now (its ``error``: the service's reason for a failure)."""
        with self._write() as session:
            job = self._job_row(session, job_id)
            now = utcnow()
            if state.ended and job.ended_at is None:
                job.ended_at = now
            job.state, job.remote_state, job.error = state.value, remote_state, error
            job.updated_at = now

    def store_batch_outcomes(self, job_id: int, outcomes: Sequence[BatchOutcome]) -> list[str]:
        """Store results of a job in one transaction: each caption (provenance ``generated``,
        the job's ``remote_id`` as its batch; a person's caption is kept unless the job was
        submitted to replace it, the result then going to the history) or failure (a failed
        attempt with its reason), and its image's item state. A result whose key is not the
        job's, or whose image has a result stored already, is skipped (a repeated fetch).
        Returns the :class:`ItemState` value of each outcome in order (``""`` for a skipped
        one)."""
        if not outcomes:
            return []
        with self._write() as session:
            job = self._job_row(session, job_id)
            overwrite = _overwrite(job.settings)
            items = {key: (image_id, state) for image_id, key, state in session.execute(
                select(BatchItemRow.image_id, BatchItemRow.key, BatchItemRow.state)
                .where(BatchItemRow.job_id == job_id))}
            states: list[str] = []
            captions: list[tuple[int, CaptionToStore]] = []
            changes: list[tuple[int, str, str]] = []
            failures: list[dict[str, Any]] = []
            seen: set[str] = set()
            for outcome in outcomes:
                item = items.get(outcome.key)
                if item is None or item[1] != ItemState.WAITING.value or outcome.key in seen:
                    states.append("")
                    continue
                seen.add(outcome.key)
                image_id = item[0]
                if outcome.caption is not None:
                    captions.append((len(states), replace(outcome.caption, image_id=image_id)))
                    states.append(ItemState.DONE.value)
                    continue
                usage = outcome.usage or TokenUsage()
                failures.append({"image_id": image_id, "at": utcnow(), "ok": False,
                                 "error_kind": outcome.kind, "error": outcome.error,
                                 "backend": job.backend, "model": job.model,
                                 "input_tokens": usage.input_tokens,
                                 "output_tokens": usage.output_tokens})
                changes.append((image_id, ItemState.FAILED.value, outcome.error))
                states.append(ItemState.FAILED.value)
            if captions:
                stored = self._store_generated_in(
                    session, [caption for _, caption in captions], overwrite)
                for (index, caption), kept in zip(captions, stored, strict=True):
                    state = ItemState.DONE.value if kept else ItemState.KEPT.value
                    states[index] = state
                    changes.append((caption.image_id, state, ""))
            if failures:
                session.execute(insert(CaptionAttemptRow), failures)
            for image_id, state, error in changes:
                session.execute(update(BatchItemRow).where(
                    BatchItemRow.job_id == job_id, BatchItemRow.image_id == image_id
                ).values(state=state, error=error))
            job.updated_at = utcnow()
            return states

    def close_batch_job(self, job_id: int, reason: str = _NO_RESULT) -> int:
        """Mark a job fetched: every image still waiting is ``gone`` with ``reason`` (it
        stays as it was; nothing is recorded on the image). Returns how many were."""
        with self._write() as session:
            job = self._job_row(session, job_id)
            result = session.execute(update(BatchItemRow).where(
                BatchItemRow.job_id == job_id,
                BatchItemRow.state == ItemState.WAITING.value,
            ).values(state=ItemState.GONE.value, error=reason))
            job.fetched = True
            job.updated_at = utcnow()
            return int(getattr(result, "rowcount", 0) or 0)

    def batch_jobs(self, *, open_only: bool = False) -> list[BatchJobRecord]:
        """The project's batch jobs, oldest first, with the count of their images in each
        :class:`ItemState`; only those not fetched yet with ``open_only``. ``[]`` for an older
        project format opened read-only."""
        if self.format_version < 8:
            return []
        return self._job_records(open_only=open_only)

    def _job_records(self, *, open_only: bool = False, job_id: int | None = None
                     ) -> list[BatchJobRecord]:
        """The jobs (all, those not fetched, or the one ``job_id``) with their counts."""
        with self._read() as session:
            query = select(BatchJobRow).order_by(BatchJobRow.id)
            items = select(BatchItemRow.job_id, BatchItemRow.state, func.count()).group_by(
                BatchItemRow.job_id, BatchItemRow.state)
            if open_only:
                query = query.where(BatchJobRow.fetched.is_(False))
            if job_id is not None:
                query = query.where(BatchJobRow.id == job_id)
                items = items.where(BatchItemRow.job_id == job_id)
            rows = list(session.scalars(query))
            counts: dict[int, dict[str, int]] = {}
            for owner, state, count in session.execute(items):
                counts.setdefault(owner, {})[state] = int(count)
            return [_job_record(row, counts.get(row.id, {})) for row in rows]

    def batch_job(self, job_id: int) -> BatchJobRecord:
        """One job by id; raises :class:`InputError` for an unknown one."""
        self._require_batches()
        for job in self._job_records(job_id=job_id):
            return job
        raise InputError(f"No batch job {job_id} in {self.path.name} "
                         "(see `loracap batch status`).")

    def batch_items(self, job_id: int) -> dict[str, tuple[int, str]]:
        """A job's images: key -> (image id, :class:`ItemState` value)."""
        self._require_batches()
        with self._read() as session:
            return {key: (image_id, state) for image_id, key, state in session.execute(
                select(BatchItemRow.image_id, BatchItemRow.key, BatchItemRow.state)
                .where(BatchItemRow.job_id == job_id))}

    def images_in_open_batches(self) -> set[int]:
        """The images waiting for a result of a job that has not ended, or has ended with
        results not fetched yet: a new job leaves them out (no paying twice)."""
        if self.format_version < 8:
            return set()
        with self._read() as session:
            return set(session.scalars(
                select(BatchItemRow.image_id).join(BatchJobRow).where(
                    BatchJobRow.fetched.is_(False),
                    BatchJobRow.state.not_in([JobState.FAILED.value]),
                    BatchItemRow.state == ItemState.WAITING.value)))

    def batch_of_versions(self, image_id: int) -> list[str]:
        """The batch each caption version of an image came from (``""`` when none), oldest
        first, as :meth:`history` lists the versions."""
        if self.format_version < 8:
            return []
        from loracap.core.schema import CaptionVersionRow

        with self._read() as session:
            return list(session.scalars(
                select(CaptionVersionRow.batch).where(CaptionVersionRow.image_id == image_id)
                .order_by(CaptionVersionRow.id)))

    def _job_row(self, session: Session, job_id: int) -> BatchJobRow:
        job = session.get(BatchJobRow, job_id)
        if job is None:
            raise InputError(f"No batch job {job_id} in {self.path.name}.")
        return job


def _overwrite(settings: str) -> bool:
    from loracap.core.batches.base import BatchSettings

    try:
        return BatchSettings.from_json(settings).overwrite_protected
    except ValueError:
        return False


def _job_record(row: BatchJobRow, counts: dict[str, int]) -> BatchJobRecord:
    return BatchJobRecord(
        id=row.id, backend=row.backend, model=row.model, base_url=row.base_url,
        remote_id=row.remote_id, input_file=row.input_file, state=_state(row.state),
        remote_state=row.remote_state, settings=row.settings, requests=row.requests,
        fetched=bool(row.fetched), error=row.error, created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        ended_at=_utc(row.ended_at) if row.ended_at is not None else None, counts=counts)


def _state(value: str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        return JobState.FAILED


def _utc(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
