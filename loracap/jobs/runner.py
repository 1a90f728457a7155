"""The captioning runner: a batch of images captioned on a ``QThreadPool``.

QtCore only, so the GUI and the headless CLI (under a ``QCoreApplication``) run the same code.
Workers are ``QRunnable`` objects paired with a signals ``QObject``; they take image ids from a
shared queue, call :func:`loracap.core.captioning.caption_image` and report plain data (ids,
strings, frozen dataclasses) back to the thread that owns the runner.

Rules (issue: "The captioning runner"):

* ``workers`` requests at most in flight (default 4) and at most ``rpm`` request starts per
  minute (default 10; 0 for no limit, as for a local server or tagger), enforced on the client
  by one shared :class:`RateLimiter`.
* Transient failures are retried (see :mod:`loracap.core.pacing`); an invalid key, a per-day
  quota, an unreachable network, a service that stopped answering (``NOT_ANSWERING_LIMIT``
  timeouts in a row), an unknown model or a project file that cannot be written stops the whole
  batch after the first such answer, keeping everything finished. A network stop also drops
  the requests still waiting for an answer: none is coming.
* :meth:`CaptionRunner.cancel` stops issuing requests at once; answers still in flight are
  stored when they arrive. :meth:`CaptionRunner.abort` (Ctrl+C on the command line) also
  drops the requests still waiting for their answer, so the batch ends within a fraction of a
  second. Each caption is committed before it is reported: one transaction each, or for a
  fast backend (``rpm`` 0: a local tagger or server) in groups of up to 100 captions or
  50 ms (:class:`~loracap.core.captioning.CaptionGroup`; ``BatchOptions.group_commits``).
* Honest progress (issue 9): while workers are held back by the rate limiter (the client's
  per-minute limit or a server's ``retryDelay`` after a 429) or sleep before a retry, the runner
  says so through ``waiting(seconds, reason)``, and a one-second tick re-emits ``progress`` with
  a fresh estimate that includes the wait, so the estimate counts down instead of standing still.
* Preparation off the critical path (issue 15): the images are prepared (decoded, scaled,
  encoded: :meth:`Captioner.prepare`) ahead of the request slots, in the batch's order, by a
  pool of its own with one thread per core (:class:`_Preparer`), so that a slot whose answer
  arrives finds its next image ready instead of spending CPU time the network wait could have
  hidden, and the batch never decodes more photos at once than there are cores. At most
  ``workers`` + cores images wait prepared. Multi-person captions prepare their own crops.
* A captioner whose preparation decodes the whole image (``prepare_decodes_whole``) has the
  file state of each image it prepared recorded when the batch ends, so the next export does
  not decode the image again (:mod:`loracap.core.prepared_decodes`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, QTimer, pyqtSignal, pyqtSlot

from loracap.core.backends.base import Answer, CaptionResult, VisionAsker, prepare_decodes_whole
from loracap.core.captioning import (
    Captioner,
    CaptionGroup,
    CaptionJob,
    ImageOutcome,
    caption_image,
)
from loracap.core.errors import CancelledError, LoraCapError, NetworkError, TransientError
from loracap.core.pacing import RateLimiter, RetryPolicy
from loracap.core.prepared_decodes import PreparedDecodes
from loracap.core.prompts import Instructions
from loracap.core.records import CaptionMode

if TYPE_CHECKING:
    # Not at run time: the window imports this module at startup, before Pillow and SQLAlchemy.
    from loracap.core.captioning_people import PeopleOptions
    from loracap.core.project import Project
    from loracap.core.qa.generate import QAOptions

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
    #: Multi-person captions (:func:`loracap.core.captioning_people.people_options`), or None.
    people: PeopleOptions | None = None
    #: Question-answer pairs instead of captions (``mode`` and ``overwrite_protected`` then
    #: do not apply: ``qa.only`` chooses the images), or None.
    qa: QAOptions | None = None
    #: Commit generated captions in groups (:class:`~loracap.core.captioning.CaptionGroup`:
    #: every 50 ms or 100 captions, each group before its captions are reported), or one
    #: transaction each. None: grouped when ``rpm`` is 0 -- a local tagger or server, fast
    #: enough that a transaction (a sync of the file) per caption would cost more than the
    #: caption.
    group_commits: bool | None = None

    @property
    def grouped(self) -> bool:
        """True when the batch commits its captions in groups (see ``group_commits``)."""
        return self.rpm <= 0 if self.group_commits is None else self.group_commits


@dataclass(frozen=True)
class BatchSummary:
    """How a batch ended.

    ``failed`` lists ``(image id, project path, reason)``; ``kept`` lists the ids whose caption
    was written by a person meanwhile and kept. ``stop_error`` is the error that stopped the
    batch early, or None. ``in_batch_jobs`` counts the images left out because they wait for
    the result of an open batch API job (captioning them now would pay twice).
    """

    total: int
    done: int
    failed: list[tuple[int, str, str]]
    skipped_protected: int
    cancelled: bool
    stop_error: LoraCapError | None
    elapsed_s: float
    kept: list[int] = field(default_factory=list)
    in_batch_jobs: int = 0

    @property
    def not_started(self) -> int:
        """Images of the batch that were never finished (cancelled or stopped)."""
        return self.total - self.done - len(self.failed)


#: ``reason`` of ``CaptionRunner.waiting`` while the rate limiter holds the workers back (the
#: client's requests-per-minute limit, or the server's ``retryDelay`` after a 429). Other reasons
#: are the retried error's ``TransientError.kind``: ``server``, ``timeout``, ``connection``.
WAIT_RATE_LIMIT = "rate_limit"

#: Request starts per window that stand for "no limit" (``BatchOptions.rpm`` 0).
NO_RATE_LIMIT = 1_000_000

#: Milliseconds between two ticks of a running batch (countdown and estimate refresh).
TICK_MS = 1000


class _WorkerSignals(QObject):
    outcome = pyqtSignal(object)  # ImageOutcome
    # image id, reason, delay in seconds, kind, time.monotonic() when the wait began
    retrying = pyqtSignal(int, str, float, str, float)
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
            self.signals.retrying.emit(image_id, str(error), delay, error.kind, time.monotonic())

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
                group = self._job.group
                if group is not None and outcome.pending is not None:
                    # Reported by the group once committed; this worker goes on meanwhile.
                    group.submit(outcome, self.signals.outcome.emit, self.signals.stopped.emit)
                else:
                    self.signals.outcome.emit(outcome)
        finally:
            if self._job.group is not None:
                # Every caption handed in is committed and reported before this worker says
                # it exited: the batch never finishes with a caption still waiting.
                self._job.group.flush()
            self.signals.exited.emit()


#: How often a worker waiting for its image to be prepared looks at the batch's abandon event
#: (Ctrl+C), in seconds.
_PREPARED_POLL_S = 0.05


class _Slot:
    """One image's preparation: ``done`` is set once ``result`` or ``error`` is."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Preparer:
    """Prepares the images of a batch ahead of its request slots (issue 15).

    ``order`` lists the image files in the order the workers take them. Each
    :class:`_PrepareTask` of the runner's preparation pool calls :meth:`work`, which prepares the
    images of the order one after another (``prepare(path, max_side)``: the captioner's
    ``prepare``, its whole decodes recorded when it makes them), starting the
    next one while fewer than ``ahead`` prepared images wait to be taken -- or at once when a
    worker waits for an image. A worker's :meth:`take` (through :class:`_PreparedAhead`)
    returns an image's preparation, waiting while it is under way or still in line; an image
    the preparer will not prepare (not in the order, asked for twice, another ``max_side``,
    the preparer stopped) is prepared on the calling thread. What ``prepare`` raises is raised
    by :meth:`take`, so an unusable image fails exactly as before.

    :meth:`stop` ends the tasks after their current image and drops the prepared images no
    worker took; a worker still waiting for an image no task started gets
    :class:`CancelledError`, and one waiting while ``abandon`` is set gets it at once.
    Thread-safe.
    """

    def __init__(self, prepare: Callable[[Path, int], Any], order: list[Path], max_side: int,
                 ahead: int, abandon: threading.Event) -> None:
        self._prepare = prepare
        self._order = order
        self._max_side = max_side
        self._ahead = max(1, ahead)
        self._abandon = abandon
        self._positions: dict[Path, int] = {}
        for position, path in enumerate(order):
            self._positions.setdefault(path, position)
        self._cond = threading.Condition()
        self._next = 0  # position in the order of the next image to start
        self._wanted: dict[Path, _Slot] = {}  # waited for by a worker, not started yet
        self._ready: dict[Path, _Slot] = {}  # started ahead (or done), not taken yet
        self._stopped = False

    def take(self, path: Path, max_side: int) -> Any:
        """What ``prepare(path, max_side)`` returns (or raises), prepared ahead when
        the preparer has it. Raises :class:`CancelledError` when the batch stops first."""
        slot: _Slot | None = None
        if max_side == self._max_side:
            with self._cond:
                slot = self._ready.pop(path, None) or self._wanted.get(path)
                if slot is None and not self._stopped:
                    position = self._positions.get(path)
                    if position is not None and position >= self._next:
                        slot = self._wanted[path] = _Slot()
                self._cond.notify_all()
        if slot is None:
            return self._prepare(path, max_side)
        while not slot.done.wait(_PREPARED_POLL_S):
            if self._abandon.is_set():
                raise CancelledError("Cancelled.")
        if slot.error is not None:
            raise slot.error
        return slot.result

    def work(self) -> None:
        """Prepare images of the order until every one is started or :meth:`stop` is called
        (a preparation pool's task; never raises)."""
        while True:
            with self._cond:
                slot: _Slot | None = None
                while slot is None:
                    if self._stopped or self._next >= len(self._order):
                        return
                    path = self._order[self._next]
                    if self._positions[path] != self._next:  # the same file twice
                        self._next += 1
                        continue
                    slot = self._wanted.pop(path, None)
                    if slot is None and (self._wanted or len(self._ready) < self._ahead):
                        slot = self._ready[path] = _Slot()
                    if slot is None:
                        self._cond.wait()
                self._next += 1
            try:
                slot.result = self._prepare(path, self._max_side)
            except Exception as exc:  # handed to the worker that takes the image
                slot.error = exc
            slot.done.set()

    def stop(self) -> None:
        """No more images are started; the waiting workers and tasks are woken."""
        with self._cond:
            self._stopped = True
            for slot in self._wanted.values():
                slot.error = CancelledError("Cancelled.")
                slot.done.set()
            self._wanted.clear()
            self._ready.clear()
            self._cond.notify_all()


class _PrepareTask(QRunnable):
    """One thread of a batch's preparation pool: :meth:`_Preparer.work`."""

    def __init__(self, preparer: _Preparer) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self._preparer = preparer

    def run(self) -> None:
        self._preparer.work()


class _PreparedAhead:
    """The batch's captioner, with :meth:`prepare` served by a :class:`_Preparer`; everything
    else is the captioner's own."""

    def __init__(self, captioner: Captioner, preparer: _Preparer) -> None:
        self.backend = captioner.backend
        self.model = captioner.model
        self.prepare_decodes_whole = prepare_decodes_whole(captioner)
        self._captioner = captioner
        self._preparer = preparer

    def prepare(self, path: Path, max_side: int) -> Any:
        """The image prepared ahead (:meth:`_Preparer.take`)."""
        return self._preparer.take(path, max_side)

    def caption(self, image: Any, instructions: Instructions, *, trigger: str, prefix: str
                ) -> CaptionResult:
        """The captioner's :meth:`~loracap.core.backends.base.Captioner.caption`."""
        return self._captioner.caption(image, instructions, trigger=trigger, prefix=prefix)

    def close(self) -> None:
        """The captioner's ``close``."""
        self._captioner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._captioner, name)


class _PreparedAheadAsker(_PreparedAhead):
    """:class:`_PreparedAhead` of a captioner that is also a :class:`VisionAsker`."""

    def ask(self, jpeg: bytes, prompt: str, *, json_schema: dict[str, Any] | None = None
            ) -> Answer:
        """The captioner's :meth:`~loracap.core.backends.base.VisionAsker.ask`."""
        asker = self._captioner
        assert isinstance(asker, VisionAsker)
        return asker.ask(jpeg, prompt, json_schema=json_schema)


def _prepared_ahead(captioner: Captioner, preparer: _Preparer) -> Captioner:
    """``captioner`` with its images prepared ahead by ``preparer`` (a :class:`VisionAsker`
    still when ``captioner`` is one)."""
    if isinstance(captioner, VisionAsker):
        return _PreparedAheadAsker(captioner, preparer)
    return _PreparedAhead(captioner, preparer)


class CaptionRunner(QObject):
    """Runs one captioning batch. Create, connect the signals, call :meth:`start` once.

    Signals (all emitted in the runner's thread):

    * ``started(total)``
    * ``progress(done, failed, total, eta_s)`` -- ``eta_s`` is -1.0 while unknown
    * ``captioned(image_id, body)`` -- committed to the project
    * ``failed(image_id, reason)``
    * ``retrying(image_id, reason, delay_s)``
    * ``waiting(seconds, reason)`` -- the batch is held back: ``reason`` is
      :data:`WAIT_RATE_LIMIT` (``seconds`` until the rate limiter allows the next request) or
      the kind of error a retry waits after (``server``, ``timeout``, ``connection``; ``seconds``
      until the soonest retry). Re-emitted every second while it lasts, so ``seconds`` counts
      down; ``waiting(0.0, "")`` once it is over (always before ``finished``).
      :func:`loracap.core.text.progress_text` turns it into words.
    * ``finished(BatchSummary)``

    While the batch runs, ``progress`` is also re-emitted every second with a fresh ``eta_s``.
    """

    started = pyqtSignal(int)
    progress = pyqtSignal(int, int, int, float)
    captioned = pyqtSignal(int, str)
    failed = pyqtSignal(int, str)
    retrying = pyqtSignal(int, str, float)
    waiting = pyqtSignal(float, str)
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
        self._abandon = threading.Event()
        self._queue: deque[int] = deque()
        self._queue_lock = threading.Lock()
        self._pool = QThreadPool(self)
        self._workers: list[_Worker] = []
        # Preparation ahead of the requests: a pool of its own, one thread per core.
        self._prepare_pool = QThreadPool(self)
        self._prepare_tasks: list[_PrepareTask] = []
        self._preparer: _Preparer | None = None
        # The file states of the images prepared by a whole decode, for the next export.
        self._decodes: PreparedDecodes | None = None
        self._limiter: RateLimiter | None = None
        self._running = 0
        self._total = 0
        self._skipped = 0
        self._in_batch_jobs = 0
        self._done = 0
        self._kept: list[int] = []
        self._failed: list[tuple[int, str, str]] = []
        self._paths: dict[int, str] = {}
        self._stop_error: LoraCapError | None = None
        self._cancelled = False
        self._started_at = 0.0
        self._finished = False
        self._workers_count = 1
        # image id -> (monotonic time the retry is due, kind of the retried error)
        self._retries: dict[int, tuple[float, str]] = {}
        self._request_time = 0.0  # seconds, summed over answered requests
        self._requests_timed = 0
        self._wait: tuple[float, str] = (0.0, "")
        self._group: CaptionGroup | None = None
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and ``finished``."""
        return self._started_at > 0 and not self._finished

    def start(self) -> None:
        """Choose the images and start the workers; ``finished`` is always emitted later."""
        opts = self.options
        protected: list[int] = []
        if opts.qa is not None and opts.qa.answer_only:  # images with a question to answer
            ids = list(self._project.unanswered_qa(list(opts.image_ids) or None))
        elif opts.qa is not None:
            ids = self._project.select_for_qa(opts.qa.only, opts.image_ids)
        else:
            ids, protected = self._project.select_for_captioning(
                opts.mode, opts.image_ids, overwrite_protected=opts.overwrite_protected
            )
            if opts.mode in (CaptionMode.MISSING, CaptionMode.FAILED):
                # Waiting for a batch API job's result: captioning them now pays twice. (A
                # person who names the images -- all, selected -- gets them captioned.)
                waiting = self._project.images_in_open_batches()
                kept_ids = [image_id for image_id in ids if image_id not in waiting]
                self._in_batch_jobs = len(ids) - len(kept_ids)
                ids = kept_ids
        records = self._project.images()
        self._paths = {rec.id: rec.path for rec in records}
        files = {rec.id: rec.abs_path for rec in records}
        self._queue.extend(ids)
        self._total = len(ids)
        self._skipped = len(protected)
        self._started_at = time.monotonic()
        settings = self._project.settings
        # rpm 0: no client-side limit (a server's 429 still holds everyone back).
        self._limiter = RateLimiter(opts.rpm if opts.rpm > 0 else NO_RATE_LIMIT,
                                    opts.rate_period_s)
        if opts.grouped:
            self._group = CaptionGroup(self._project,
                                       overwrite_protected=opts.overwrite_protected)
        count = min(max(1, opts.workers), len(ids))
        captioner = self._captioner
        batch_files = {i: files[i] for i in ids if i in files}
        # Multi-person captions decode and crop each image themselves: nothing to prepare;
        # their whole decodes are recorded through the job.
        if count and opts.people is not None:
            self._decodes = PreparedDecodes(self._project, batch_files)
        elif count:
            threads = max(1, min(os.cpu_count() or 1, len(ids)))
            prepare: Callable[[Path, int], Any] = captioner.prepare
            if prepare_decodes_whole(captioner):  # recorded: the next export skips the decode
                self._decodes = PreparedDecodes(self._project, batch_files)
                prepare = self._decodes.recording(prepare)
            self._preparer = _Preparer(prepare, list(batch_files.values()),
                                       opts.max_side, ahead=count + threads,
                                       abandon=self._abandon)
            captioner = _prepared_ahead(captioner, self._preparer)
            self._prepare_pool.setMaxThreadCount(threads)
            self._prepare_tasks = [_PrepareTask(self._preparer) for _ in range(threads)]
        job = CaptionJob(
            project=self._project,
            captioner=captioner,
            instructions=self._instructions,
            trigger=settings.trigger,
            prefix=settings.prefix,
            limiter=self._limiter,
            policy=RetryPolicy(max_attempts=opts.max_attempts, base_delay_s=opts.base_delay_s),
            cancel=self._cancel,
            max_side=opts.max_side,
            overwrite_protected=opts.overwrite_protected,
            abandon=self._abandon,
            people=opts.people,
            qa=opts.qa,
            group=self._group,
            decodes=self._decodes if opts.people is not None else None,
        )
        self._workers_count = max(1, count)
        self._pool.setMaxThreadCount(max(1, count))
        self.started.emit(self._total)
        self.progress.emit(0, 0, self._total, -1.0)
        if count == 0:
            QTimer.singleShot(0, self._finish)
            return
        for task in self._prepare_tasks:
            self._prepare_pool.start(task)
        for _ in range(count):
            worker = _Worker(job, self._take)
            worker.signals.outcome.connect(self._on_outcome)
            worker.signals.retrying.connect(self._on_retrying)
            worker.signals.stopped.connect(self._on_stopped)
            worker.signals.exited.connect(self._on_worker_exited)
            self._workers.append(worker)
            self._running += 1
            self._pool.start(worker)
        self._tick.start()

    def cancel(self) -> None:
        """Stop issuing requests now; answers in flight are still stored when they arrive."""
        if self._finished or self._cancel.is_set():
            return
        self._cancelled = True
        self._stop()

    def abort(self) -> None:
        """Stop now: no new requests, and the requests still waiting for their answer are
        dropped (their images stay as they were). ``finished`` follows as soon as every worker
        has noticed -- within a fraction of a second, unless one is storing a caption that has
        arrived, which it finishes first."""
        if self._finished:
            return
        self._abandon.set()
        self.cancel()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every worker thread has exited, and then the preparation threads (for
        shutdown and tests; ``timeout_ms`` -1: no limit, else a bound on each)."""
        if not self._pool.waitForDone(timeout_ms):
            return False
        if self._preparer is not None:
            self._preparer.stop()  # no worker is left to take what it would prepare
        return self._prepare_pool.waitForDone(timeout_ms)

    def _stop(self) -> None:
        self._cancel.set()
        if self._preparer is not None:
            self._preparer.stop()
        if self._limiter is not None:
            self._limiter.wake_all()
        self._tick.stop()
        self._retries.clear()
        self._emit_waiting(0.0, "")

    def _take(self) -> int | None:
        with self._queue_lock:
            return self._queue.popleft() if self._queue else None

    def _pending_retries(self, now: float) -> dict[int, tuple[float, str]]:
        """The retries still sleeping at ``now`` (due ones are dropped)."""
        self._retries = {i: r for i, r in self._retries.items() if r[0] > now}
        return self._retries

    def _waiting_state(self) -> tuple[float, str]:
        """``(seconds, reason)`` of what holds the batch back now, or ``(0.0, "")``."""
        if self._limiter is None or self._cancel.is_set():
            return 0.0, ""
        now = time.monotonic()
        retries = self._pending_retries(now)
        status = self._limiter.status()
        # A worker that got a 429 sleeps a moment (jitter) before it queues at the limiter:
        # count it as held back by the limit too.
        limited = any(kind == WAIT_RATE_LIMIT for _, kind in retries.values())
        if status.next_start_s > 0 and (status.waiting > 0 or limited):
            return status.next_start_s, WAIT_RATE_LIMIT
        if retries:
            due, kind = min(retries.values())
            return due - now, kind
        return 0.0, ""

    def _emit_waiting(self, seconds: float, reason: str) -> None:
        """Emit ``waiting`` while held back (every call), and once when it ends."""
        if not reason and not self._wait[1]:
            return
        self._wait = (seconds, reason) if reason else (0.0, "")
        self.waiting.emit(*self._wait)

    def _eta(self) -> float:
        """Seconds until the batch should end, -1.0 while unknown.

        The largest of three bounds, all counting down during a wait: the workers' (the
        requests left, ``workers`` at a time, each taking the mean request time so far); the
        rate limit's (when the limiter allows the last start still needed -- it knows the
        sliding window and any server ``retryDelay`` -- plus one request time); and the last
        retry still sleeping, plus one request time. Before the first answer the request time
        is unknown: -1.0, unless the batch already waits (then the wait alone).
        """
        remaining = self._total - self._done - len(self._failed)
        if remaining <= 0:
            return 0.0
        now = time.monotonic()
        retries = self._pending_retries(now)
        status = self._limiter.status() if self._limiter is not None else None
        if self._requests_timed:
            latency = self._request_time / self._requests_timed
        elif status is not None and (status.next_start_s > 0 or retries):
            latency = 0.0  # waiting before the first answer: the wait is what is known
        else:
            return -1.0
        with self._queue_lock:
            queued = len(self._queue)
        waiting = status.waiting if status is not None else 0
        starts = min(remaining, queued + waiting + len(retries))
        workers = max(1, min(self._workers_count, remaining))
        by_workers = -(-remaining // workers) * latency
        by_quota = 0.0
        if starts and self._limiter is not None:
            by_quota = self._limiter.eta(starts) + latency
        by_retry = max((due - now for due, _ in retries.values()), default=0.0)
        if retries:
            by_retry += latency
        return max(by_workers, by_quota, by_retry)

    @pyqtSlot()
    def _on_tick(self) -> None:
        if self._finished or self._cancel.is_set():
            return
        # The estimate first: a listener that writes a line when a wait begins (the command
        # line without a terminal) then shows the wait with a fresh estimate.
        self.progress.emit(self._done, len(self._failed), self._total, self._eta())
        self._emit_waiting(*self._waiting_state())

    @pyqtSlot(int, str, float, str, float)
    def _on_retrying(self, image_id: int, reason: str, delay: float, kind: str,
                     since: float) -> None:
        self.retrying.emit(image_id, reason, delay)
        if self._cancel.is_set():
            return
        self._retries[image_id] = (since + max(0.0, delay), kind)
        state = self._waiting_state()
        if state[1] and not self._wait[1]:  # a wait begins: a fresh estimate first
            self.progress.emit(self._done, len(self._failed), self._total, self._eta())
        self._emit_waiting(*state)

    @pyqtSlot(object)
    def _on_outcome(self, outcome: ImageOutcome) -> None:
        self._retries.pop(outcome.image_id, None)
        if outcome.request_s > 0:
            self._request_time += outcome.request_s
            self._requests_timed += 1
        if outcome.ok:
            self._done += 1
            if not outcome.stored:
                self._kept.append(outcome.image_id)
            self.captioned.emit(outcome.image_id, outcome.body)
        else:
            path = self._paths.get(outcome.image_id, str(outcome.image_id))
            self._failed.append((outcome.image_id, path, outcome.error))
            self.failed.emit(outcome.image_id, outcome.error)
        if not self._cancel.is_set():
            self._emit_waiting(*self._waiting_state())
        self.progress.emit(self._done, len(self._failed), self._total, self._eta())

    @pyqtSlot(object)
    def _on_stopped(self, error: LoraCapError) -> None:
        if self._stop_error is None:
            self._stop_error = error
            # INFO, not WARNING: the front end shows the stop once, with what to do.
            log.info("Batch stopped: %s", error)
        if isinstance(error, NetworkError):
            # Unreachable or not answering: the requests still out will not be answered either.
            self._abandon.set()
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
        self._tick.stop()
        self._retries.clear()
        self._emit_waiting(0.0, "")
        self._pool.waitForDone()
        if self._preparer is not None:
            self._preparer.stop()  # the tasks end after their current image
        if self._group is not None:
            self._group.close()  # nothing waits: every worker flushed it before it exited
        if self._decodes is not None:
            self._decodes.save()  # one transaction; an image prepared after it goes unrecorded
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
            in_batch_jobs=self._in_batch_jobs,
        )
        self.finished.emit(summary)

