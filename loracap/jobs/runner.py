"""The captioning runner: a batch of images captioned on a ``QThreadPool``.

QtCore only, so the GUI and the headless CLI (under a ``QCoreApplication``) run the same code.
Workers are ``QRunnable`` objects paired with a signals ``QObject``; they take image ids from a
shared queue, call :func:`loracap.core.captioning.caption_image` and report plain data (ids,
strings, frozen dataclasses) back to the thread that owns the runner.

Rules (issue: "The captioning runner"):

* ``workers`` requests at most in flight (default 4) and at most ``rpm`` request starts per
  minute (default 10), enforced on the client by one shared :class:`RateLimiter`.
* Transient failures are retried (see :mod:`loracap.core.pacing`); an invalid key, a per-day
  quota, an unreachable network or an unknown model stops the whole batch after the first such
  answer, keeping everything finished.
* :meth:`CaptionRunner.cancel` stops issuing requests at once; answers still in flight are
  stored when they arrive. Each caption is committed before it is reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, QTimer, pyqtSignal, pyqtSlot

from loracap.core.captioning import Captioner, CaptionJob, ImageOutcome, caption_image
from loracap.core.errors import CancelledError, LoraCapError, TransientError
from loracap.core.pacing import RateLimiter, RetryPolicy
from loracap.core.prompts import Instructions
from loracap.core.records import CaptionMode

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs. ``rate_period_s`` is the rate window (60 s; tests shrink it)."""

    mode: CaptionMode = CaptionMode.MISSING
    image_ids: tuple[int, ...] = ()
    overwrite_protected: bool = False
    workers: int = 4
    rpm: int = 10
    rate_period_s: float = 60.0
    max_attempts: int = 5
    max_side: int = 1536
    base_delay_s: float = 1.0


@dataclass(frozen=True)
class BatchSummary:
    """How a batch ended.

    ``failed`` lists ``(image id, project path, reason)``; ``kept`` lists the ids whose caption
    was written by a person meanwhile and kept. ``stop_error`` is the error that stopped the
    batch early, or None.
    """

    total: int
    done: int
    failed: list[tuple[int, str, str]]
    skipped_protected: int
    cancelled: bool
    stop_error: LoraCapError | None
    elapsed_s: float
    kept: list[int] = field(default_factory=list)

    @property
    def not_started(self) -> int:
        """Images of the batch that were never finished (cancelled or stopped)."""
        return self.total - self.done - len(self.failed)


class _WorkerSignals(QObject):
    outcome = pyqtSignal(object)  # ImageOutcome
    retrying = pyqtSignal(int, str, float)  # image id, reason, delay in seconds
    stopped = pyqtSignal(object)  # the LoraCapError that stops the batch
    exited = pyqtSignal()


class _Worker(QRunnable):
    """Takes ids from the shared queue until it is empty, cancelled or stopped."""

    def __init__(self, job: CaptionJob, take: Callable[[], int | None]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.signals = _WorkerSignals()
        self._job = job
        self._take = take

    def _retry_reporter(self, image_id: int) -> Callable[[int, TransientError, float], None]:
        def on_retry(_attempt: int, error: TransientError, delay: float) -> None:
            self.signals.retrying.emit(image_id, str(error), delay)

        return on_retry

    def run(self) -> None:
        try:
            while not self._job.cancel.is_set():
                image_id = self._take()
                if image_id is None:
                    break

                try:
                    outcome = caption_image(self._job, image_id, self._retry_reporter(image_id))
                except CancelledError:
                    break
                except LoraCapError as exc:
                    self.signals.stopped.emit(exc)
                    break
                except Exception as exc:  # a bug must not kill the batch silently
                    log.exception("Unexpected error while captioning image %s", image_id)
                    self.signals.stopped.emit(LoraCapError(f"Unexpected error: {exc}"))
                    break
                self.signals.outcome.emit(outcome)
        finally:
            self.signals.exited.emit()


class CaptionRunner(QObject):
    """Runs one captioning batch. Create, connect the signals, call :meth:`start` once.

    Signals (all emitted in the runner's thread):

    * ``started(total)``
    * ``progress(done, failed, total, eta_s)`` -- ``eta_s`` is -1.0 while unknown
    * ``captioned(image_id, body)`` -- committed to the project
    * ``failed(image_id, reason)``
    * ``retrying(image_id, reason, delay_s)``
    * ``finished(BatchSummary)``
    """

    started = pyqtSignal(int)
    progress = pyqtSignal(int, int, int, float)
    captioned = pyqtSignal(int, str)
    failed = pyqtSignal(int, str)
    retrying = pyqtSignal(int, str, float)
    finished = pyqtSignal(object)

    def __init__(
        self,
        project: Project,
        captioner: Captioner,
        instructions: Instructions,
        options: BatchOptions | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._project = project
        self._captioner = captioner
        self._instructions = instructions
        self.options = options or BatchOptions()
        self._cancel = threading.Event()
        self._queue: deque[int] = deque()
        self._queue_lock = threading.Lock()
        self._pool = QThreadPool(self)
        self._workers: list[_Worker] = []
        self._limiter: RateLimiter | None = None
        self._running = 0
        self._total = 0
        self._skipped = 0
        self._done = 0
        self._kept: list[int] = []
        self._failed: list[tuple[int, str, str]] = []
        self._paths: dict[int, str] = {}
        self._stop_error: LoraCapError | None = None
        self._cancelled = False
        self._started_at = 0.0
        self._finished = False

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and ``finished``."""
        return self._started_at > 0 and not self._finished

    def start(self) -> None:
        """Choose the images and start the workers; ``finished`` is always emitted later."""
        opts = self.options
        ids, protected = self._project.select_for_captioning(
            opts.mode, opts.image_ids, overwrite_protected=opts.overwrite_protected
        )
        self._paths = {rec.id: rec.path for rec in self._project.images()}
        self._queue.extend(ids)
        self._total = len(ids)
        self._skipped = len(protected)
        self._started_at = time.monotonic()
        settings = self._project.settings
        self._limiter = RateLimiter(max(1, opts.rpm), opts.rate_period_s)
        job = CaptionJob(
            project=self._project,
            captioner=self._captioner,
            instructions=self._instructions,
            trigger=settings.trigger,
            prefix=settings.prefix,
            limiter=self._limiter,
            policy=RetryPolicy(max_attempts=opts.max_attempts, base_delay_s=opts.base_delay_s),
            cancel=self._cancel,
            max_side=opts.max_side,
            overwrite_protected=opts.overwrite_protected,
        )
        count = min(max(1, opts.workers), len(ids))
        self._pool.setMaxThreadCount(max(1, count))
        self.started.emit(self._total)
        self.progress.emit(0, 0, self._total, -1.0)
        if count == 0:
            QTimer.singleShot(0, self._finish)
            return
        for _ in range(count):
            worker = _Worker(job, self._take)
            worker.signals.outcome.connect(self._on_outcome)
            worker.signals.retrying.connect(self.retrying)
            worker.signals.stopped.connect(self._on_stopped)
            worker.signals.exited.connect(self._on_worker_exited)
            self._workers.append(worker)
            self._running += 1
            self._pool.start(worker)

    def cancel(self) -> None:
        """Stop issuing requests now; answers in flight are still stored when they arrive."""
        if self._finished or self._cancel.is_set():
            return
        self._cancelled = True
        self._stop()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every worker thread has exited (for shutdown and tests)."""
        return self._pool.waitForDone(timeout_ms)

    def _stop(self) -> None:
        self._cancel.set()
        if self._limiter is not None:
            self._limiter.wake_all()

    def _take(self) -> int | None:
        with self._queue_lock:
            return self._queue.popleft() if self._queue else None

    def _eta(self) -> float:
        processed = self._done + len(self._failed)
        if processed == 0:
            return -1.0
        elapsed = time.monotonic() - self._started_at
        by_speed = elapsed / processed * (self._total - processed)
        with self._queue_lock:
            queued = len(self._queue)
        by_quota = self._limiter.eta(queued) if self._limiter is not None else 0.0
        return max(by_speed, by_quota)

    @pyqtSlot(object)
    def _on_outcome(self, outcome: ImageOutcome) -> None:
        if outcome.ok:
            self._done += 1
            if not outcome.stored:
                self._kept.append(outcome.image_id)
            self.captioned.emit(outcome.image_id, outcome.body)
        else:
            path = self._paths.get(outcome.image_id, str(outcome.image_id))
            self._failed.append((outcome.image_id, path, outcome.error))
            self.failed.emit(outcome.image_id, outcome.error)
        self.progress.emit(self._done, len(self._failed), self._total, self._eta())

    @pyqtSlot(object)
    def _on_stopped(self, error: LoraCapError) -> None:
        if self._stop_error is None:
            self._stop_error = error
            log.warning("Batch stopped: %s", error)
        self._stop()

    @pyqtSlot()
    def _on_worker_exited(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._pool.waitForDone()
        # The workers (and their signal objects) stay referenced until the runner goes away:
        # this method can run inside a slot called by a worker's own signal object, and
        # deleting that object mid-call would crash.
        summary = BatchSummary(
            total=self._total,
            done=self._done,
            failed=list(self._failed),
            skipped_protected=self._skipped,
            cancelled=self._cancelled,
            stop_error=self._stop_error,
            elapsed_s=time.monotonic() - self._started_at,
            kept=list(self._kept),
        )
        self.finished.emit(summary)

