"""Batch API jobs in the background, for the window (issue 15): plan, submit, refresh, fetch,
cancel.

QtCore only, built like :mod:`loracap.jobs.background`: each job is a ``QObject`` in the GUI
thread whose work runs once on a pool thread (the network and every SQLite read and write);
its signals arrive in the GUI thread and carry frozen dataclasses and ids. Exactly one ending
signal is emitted: ``finished(result)``, ``failed(message)`` (the ``str()`` of the core's
:class:`~loracap.core.errors.LoraCapError`, a sentence to show as it is) or ``cancelled()``.

The work is :mod:`loracap.core.batches.flow`'s, the same functions the command line runs; a
job's service is :func:`~loracap.core.batches.flow.batch_service` of the backend, model and
server the job was submitted to, with today's key, so every service with a batch API works.

* :class:`BatchPlanJob` -- what "Send to Batch API…" would submit (images, estimate).
* :class:`BatchSubmitJob` -- prepares and submits one job; ``progress(done, total)``.
* :class:`BatchRefreshJob` -- asks the services where the open jobs are.
* :class:`BatchFetchJob` -- stores an ended job's results; ``results`` as they are stored.
* :class:`BatchCancelJob` -- asks the service to stop a job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import QObject, QThreadPool, pyqtSignal, pyqtSlot

from loracap.core.batches.base import BatchJobRecord, ItemState
from loracap.core.errors import ApiKeyMissingError, CancelledError, LoraCapError
from loracap.core.records import CaptionMode, ImageRecord
from loracap.jobs.background import _Job, _Task, _Throttle

if TYPE_CHECKING:
    # Not imported at run time: the window imports this module at startup; the project
    # (SQLAlchemy) and the services (google-genai, ...) load with the first batch job.
    from loracap.core.backends.base import BackendConfig
    from loracap.core.batches.base import BatchService
    from loracap.core.batches.flow import FetchSummary
    from loracap.core.estimate import Estimate
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: Seconds a batch service waits for one answer of its API (the window's batch timeout).
SERVICE_TIMEOUT_S = 60.0


def job_config(project: Project, job: BatchJobRecord) -> BackendConfig:
    """The backend, model and server ``job`` was submitted to, with today's key for that
    backend; nothing is sent. Raises the core's errors
    (:class:`~loracap.core.errors.ApiKeyMissingError` when no key is set, an unknown
    backend)."""
    from loracap.core.backends.registry import resolve_config

    return resolve_config(project.settings, backend=job.backend, model=job.model,
                          base_url=job.base_url or None, timeout_s=SERVICE_TIMEOUT_S)


def job_service(project: Project, job: BatchJobRecord) -> BatchService:
    """The batch service ``job`` was submitted to (:func:`job_config`). Raises the core's
    errors (no key, an unknown backend)."""
    from loracap.core.batches.flow import batch_service

    return batch_service(job_config(project, job))


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BatchChoice:
    """Images a job would take: ``image_ids``; ``protected`` images left out because a person
    wrote or edited their caption, ``busy`` ones left out because they wait in another open
    job; the ``estimate`` of sending them one by one (None for no images) and ``cost``, the
    estimate's cost at the batch discount (None when the model has no price)."""

    image_ids: tuple[int, ...]
    protected: int
    busy: int
    estimate: Estimate | None
    cost: float | None


@dataclass(frozen=True)
class BatchPlan:
    """What "Send to Batch API…" offers: the images without a caption (``missing``), and
    when images are selected, those (``selected``; ``selected_replacing`` also replaces the
    captions a person wrote, edited or imported, None when there are none)."""

    backend: str
    model: str
    max_side: int
    missing: BatchChoice
    selected: BatchChoice | None = None
    selected_replacing: BatchChoice | None = None


@dataclass(frozen=True)
class BatchJobsUpdate:
    """Every job of the project as stored now, oldest first, and what went wrong on the way
    (``problems``: one sentence each, e.g. a job whose service could not be reached).

    ``missing_keys`` (from a :class:`BatchRefreshJob` only): the backends of open jobs that
    have no API key now, each with what to say about it; their jobs were neither checked nor
    may they be fetched until a key is set."""

    jobs: tuple[BatchJobRecord, ...]
    problems: tuple[str, ...] = ()
    missing_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredResult:
    """One result of a job as stored: the image's id, its :class:`ItemState` value
    (``done``, ``kept`` or ``failed``), the caption body or the reason, and the image as
    stored now (None when it is no longer in the project)."""

    image_id: int
    state: str
    text: str
    record: ImageRecord | None


@dataclass(frozen=True)
class FetchDone:
    """A finished fetch: the job as stored now, what the fetch stored
    (:class:`~loracap.core.batches.flow.FetchSummary`; ``not_ready`` when the job is still
    running) and every job of the project."""

    job: BatchJobRecord
    summary: FetchSummary
    update: BatchJobsUpdate


def _all_jobs(project: Project, problems: Sequence[str] = (),
              missing_keys: Mapping[str, str] | None = None) -> BatchJobsUpdate:
    return BatchJobsUpdate(tuple(project.batch_jobs()), tuple(problems),
                           dict(missing_keys or {}))


def key_missing_text(job_ids: Sequence[int], reason: str) -> str:
    """What to say once about jobs whose backend has no key: ``"Could not check job 3: No
    Gemini API key found. … It is checked again once a key is set."``"""
    many = len(job_ids) > 1
    ids = ", ".join(str(job_id) for job_id in job_ids)
    return (f"Could not check job{'s' if many else ''} {ids}: {reason} "
            f"{'They are' if many else 'It is'} checked again once a key is set.")


# ---------------------------------------------------------------------------------- jobs


class _BatchJob(_Job):
    """A job with a ``stop()`` that asks its work to end early (it checks between steps);
    ``cancelled`` is emitted when the work did end early, ``finished`` when it got done
    anyway."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()

    def __init__(self, project: Project, pool: QThreadPool | None,
                 parent: QObject | None) -> None:
        super().__init__(pool, parent)
        self.project = project
        # Not the task's own cancel event: a task whose event is set drops its result, and a
        # job submitted while the stop was on its way must still be reported.
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the work; call once."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the work to end at its next step; what it stored stays stored."""
        self._stop.set()

    @pyqtSlot()
    def _on_cancelled(self) -> None:
        if self._end():
            self.cancelled.emit()


class BatchPlanJob(_Job):
    """Chooses the images "Send to Batch API…" would submit with ``config`` and estimates
    their cost (:func:`plan_batch`). Signals: ``finished(BatchPlan)`` or ``failed``."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, project: Project, config: BackendConfig, selected: Sequence[int],
                 *, max_side: int, parent: QObject | None = None,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.project = project
        self.config = config
        self.selected = tuple(selected)
        self.max_side = max_side

    def start(self) -> None:
        """Start; call once."""
        project, config, selected, max_side = (self.project, self.config, self.selected,
                                               self.max_side)
        self._start_task(lambda _task: plan_batch(project, config, selected, max_side),
                         "choosing the images of a batch job")


def plan_batch(project: Project, config: BackendConfig, selected: Sequence[int],
               max_side: int) -> BatchPlan:
    """The :class:`BatchPlan` of sending ``project``'s images with ``config``: the images
    without a caption, and the ``selected`` ones (ids) if any."""
    from loracap.core.batches.flow import choose_images
    from loracap.core.estimate import estimate_for_images

    def choice(mode: CaptionMode, ids: Sequence[int] = (), overwrite: bool = False
               ) -> BatchChoice:
        chosen, protected, busy = choose_images(project, mode, ids,
                                                overwrite_protected=overwrite)
        if not chosen:
            return BatchChoice((), protected, busy, None, None)
        estimate, cost = estimate_for_images(project, config, chosen, max_side, batch=True)
        return BatchChoice(tuple(chosen), protected, busy, estimate, cost)

    missing = choice(CaptionMode.MISSING)
    if not selected:
        return BatchPlan(config.backend, config.model, max_side, missing)
    chosen = choice(CaptionMode.SELECTED, selected)
    replacing = choice(CaptionMode.SELECTED, selected, overwrite=True) if chosen.protected \
        else None
    return BatchPlan(config.backend, config.model, max_side, missing, chosen, replacing)


class BatchSubmitJob(_BatchJob):
    """Prepares ``image_ids`` and submits them as one job
    (:func:`~loracap.core.batches.flow.submit_batch`) with the project's caption settings.

    Signals: ``progress(done, total)`` (images prepared, at most ~20 per second and the last
    one), ``finished(BatchJobRecord)``, ``failed(message)`` (a refused key, found before any
    image is prepared: no job is stored; a job too large: stored as failed, "not submitted"),
    ``cancelled()`` (stopped while preparing: nothing was sent). A stop after the
    preparation, while the job is being sent, cannot take it back: ``finished`` follows.
    """

    progress = pyqtSignal(int, int)

    def __init__(self, project: Project, config: BackendConfig, image_ids: Sequence[int], *,
                 max_side: int, overwrite_protected: bool = False,
                 parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(project, pool, parent)
        self.config = config
        self.image_ids = tuple(image_ids)
        self.max_side = max_side
        self.overwrite_protected = overwrite_protected

    def start(self) -> None:
        """Start; call once."""
        project, config, image_ids, stop = self.project, self.config, self.image_ids, \
            self._stop
        max_side, overwrite = self.max_side, self.overwrite_protected

        def work(task: _Task) -> BatchJobRecord:
            from loracap.core.batches.flow import (
                batch_service,
                batch_settings,
                check_batchable,
                submit_batch,
            )

            check_batchable(project)
            settings = batch_settings(project, max_side=max_side,
                                      overwrite_protected=overwrite)
            throttle = _Throttle()

            def on_prepared(done: int, total: int) -> None:
                if done >= total or throttle.ready():
                    task.signals.progress.emit(done, total)

            service = batch_service(config)
            try:
                return submit_batch(project, service, image_ids, settings,
                                    base_url=config.base_url, on_prepared=on_prepared,
                                    cancel=stop)
            finally:
                service.close()

        self._start_task(work, "submitting a batch job", progress=self._on_progress)

    @pyqtSlot(int, object)
    def _on_progress(self, done: int, total: Any) -> None:
        if not self._ended:
            self.progress.emit(done, int(total))


class BatchRefreshJob(_BatchJob):
    """Asks the service of each open job where it is and stores it
    (:func:`~loracap.core.batches.flow.refresh_job`; a job whose submission was interrupted
    is looked for by its name there). A job that cannot be asked (no network) is left as
    stored and said in ``problems``; the others go on. The key of each backend with open jobs
    (ended ones too: their fetch needs it) is looked up on this machine first: a backend
    without one is in ``missing_keys`` and its jobs are not asked about. Signals:
    ``finished(BatchJobsUpdate)`` (every job of the project), ``failed(message)`` (the
    project cannot be read)."""

    def start(self) -> None:
        """Start; call once."""
        project, stop = self.project, self._stop

        def work(_task: _Task) -> BatchJobsUpdate:
            from loracap.core.batches.flow import batch_service, refresh_job

            problems: list[str] = []
            no_key: dict[str, tuple[list[int], str]] = {}  # backend: job ids, the reason
            for job in project.batch_jobs(open_only=True):
                if stop.is_set():
                    break
                if job.backend in no_key:
                    no_key[job.backend][0].append(job.id)
                    continue
                try:
                    config = job_config(project, job)
                    if job.state.ended:
                        continue  # fetched next, with this key
                    service = batch_service(config)
                    try:
                        refresh_job(project, service, job)
                    finally:
                        service.close()
                except ApiKeyMissingError as exc:
                    log.info("No key to check batch %s: %s", job.name, exc)
                    no_key[job.backend] = ([job.id], str(exc))
                except LoraCapError as exc:
                    log.info("Could not check batch %s: %s", job.name, exc)
                    if not job.state.ended:  # an ended job's fetch says it
                        problems.append(f"Could not check job {job.id}: {exc}")
            return _all_jobs(project, problems, {
                backend: key_missing_text(ids, reason)
                for backend, (ids, reason) in no_key.items()})

        self._start_task(work, "checking the batch jobs")


class BatchFetchJob(_BatchJob):
    """Stores the results of job ``job_id`` (:func:`~loracap.core.batches.flow.fetch_results`:
    refreshed first; nothing when it is still running), each as it is read.

    Signals: ``results(list[StoredResult])`` -- the results stored since the last such signal,
    with their images as stored now (at most ~20 per second, and the last ones before the
    end); ``finished(FetchDone)``; ``failed(message)`` (the service or the network; what was
    stored stays stored and the next fetch goes on from there); ``cancelled()`` after
    :meth:`stop` (the same: nothing stored is lost).
    """

    results = pyqtSignal(object)

    def __init__(self, project: Project, job_id: int, parent: QObject | None = None, *,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(project, pool, parent)
        self.job_id = job_id

    def start(self) -> None:
        """Start; call once."""
        project, job_id, stop = self.project, self.job_id, self._stop

        def work(task: _Task) -> FetchDone:
            from loracap.core.batches.flow import fetch_results

            throttle = _Throttle()
            pending: list[tuple[int, str, str]] = []

            def send() -> None:
                if not pending:
                    return
                records = {rec.id: rec for rec in
                           project.images_by_id([image_id for image_id, _, _ in pending])}
                task.signals.progress.emit(len(pending), [
                    StoredResult(image_id, state, text, records.get(image_id))
                    for image_id, state, text in pending])
                pending.clear()

            def on_result(image_id: int, state: str, text: str) -> None:
                pending.append((image_id, state, text))
                if throttle.ready():
                    send()
                if stop.is_set():
                    send()
                    raise CancelledError("Stopped fetching; what was fetched is stored.")

            job = project.batch_job(job_id)
            service = job_service(project, job)
            try:
                summary = fetch_results(project, service, job, on_result=on_result)
            finally:
                send()
                service.close()
            return FetchDone(project.batch_job(job_id), summary, _all_jobs(project))

        self._start_task(work, f"fetching batch job {job_id}", progress=self._on_results)

    @pyqtSlot(int, object)
    def _on_results(self, _count: int, results: object) -> None:
        # Delivered even after a stop: these results are stored, the window shows them.
        self.results.emit(results)


class BatchCancelJob(_BatchJob):
    """Asks the service to stop job ``job_id`` (:func:`~loracap.core.batches.flow.cancel_job`;
    an ended job is left as it is). A job whose submission was interrupted is looked for at
    the service first; not found, it is forgotten here, as ``loracap batch cancel`` does, and
    its images are free for the next run. Signals: ``finished(BatchJobsUpdate)`` or
    ``failed(message)``."""

    def __init__(self, project: Project, job_id: int, parent: QObject | None = None, *,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(project, pool, parent)
        self.job_id = job_id

    def start(self) -> None:
        """Start; call once."""
        project, job_id = self.project, self.job_id

        def work(_task: _Task) -> BatchJobsUpdate:
            from loracap.core.batches.base import JobState
            from loracap.core.batches.flow import NOT_SUBMITTED, cancel_job, refresh_job

            job = project.batch_job(job_id)
            if job.fetched or job.state.ended:
                return _all_jobs(project)
            service = job_service(project, job)
            try:
                if not job.remote_id:  # an interrupted submission: look for it first
                    job = refresh_job(project, service, job)
                if job.remote_id:
                    cancel_job(project, service, job)
            finally:
                service.close()
            if not job.remote_id:
                project.update_batch_job(job.id, state=JobState.FAILED,
                                         error="forgotten: LoRACap stopped while submitting it")
                project.close_batch_job(job.id, NOT_SUBMITTED)
            return _all_jobs(project)

        self._start_task(work, f"cancelling batch job {job_id}")


def waiting_images(jobs: Sequence[BatchJobRecord]) -> int:
    """Images of ``jobs`` still waiting for a result."""
    return sum(job.counts.get(ItemState.WAITING.value, 0) for job in jobs)


__all__ = ["BatchCancelJob", "BatchChoice", "BatchFetchJob", "BatchJobsUpdate", "BatchPlan",
           "BatchPlanJob", "BatchRefreshJob", "BatchSubmitJob", "FetchDone", "StoredResult",
           "job_config", "job_service", "key_missing_text", "plan_batch", "waiting_images"]
