"""One-shot background work for the desktop window: scanning a folder, exporting, listing models.

QtCore only. Each job is a ``QObject`` living in the GUI thread; :meth:`start` hands a
``QRunnable`` to a ``QThreadPool`` (the global one unless a pool is given). The runnable reports
through a separate signals ``QObject`` created in the GUI thread, so every signal of a job is
delivered in the GUI thread (queued). Results cross threads as plain data: lists of frozen
dataclasses, strings, ints.

Lifetime: a running task (runnable + signals object) is kept referenced by this module until its
last signal has been delivered in the GUI thread, then its signals object is deleted there with
``deleteLater``. A job may therefore be destroyed (its dialog closed) while its task still runs:
the task finishes on its own and its results are dropped.

Every job emits exactly one of its ending signals (``finished`` / ``failed`` / ``cancelled``).
A failure's message is the ``str()`` of the core's :class:`~loracap.core.errors.LoraCapError`,
a sentence fit to show as it is.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal, pyqtSlot

from loracap.core.checks import Finding, check_project
from loracap.core.errors import CancelledError, LoraCapError
from loracap.core.exports import ExportOptions, TrainerFormat, export_project
from loracap.core.image_rows import BLOCK, ImageRows
from loracap.core.tags import TagCounter
from loracap.core.text import path_label_changes

if TYPE_CHECKING:
    # Not imported at run time: the desktop window imports this module at startup, and the
    # project (SQLAlchemy) and the scan (Pillow) are loaded only when first used.
    from loracap.core.project import Project
    from loracap.core.scan import ScannedFile

log = logging.getLogger(__name__)

#: Shortest interval between two progress signals, in seconds (at most ~20 per second).
PROGRESS_INTERVAL_S = 0.05

#: Timeout of the model-list request, in seconds.
MODEL_LIST_TIMEOUT_S = 15.0


class _TaskSignals(QObject):
    """Signals of one running task; created in (and deleted from) the GUI thread."""

    progress = pyqtSignal(int, object)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()
    done = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.done.connect(self._release)

    @pyqtSlot()
    def _release(self) -> None:
        """Runs in the GUI thread after every other signal of the task has been delivered."""
        _LIVE.pop(self, None)
        self.deleteLater()


#: Tasks that have started and whose ``done`` has not yet been delivered, by signals object.
_LIVE: dict[_TaskSignals, _Task] = {}

Work = Callable[["_Task"], Any]


class _Task(QRunnable):
    """Runs ``work(task)`` once on a pool thread and reports how it ended.

    ``work`` may emit ``task.signals.progress`` and should watch ``task.cancel``. It ends with
    a value (``succeeded``), :class:`CancelledError` or a set ``cancel`` event (``cancelled``),
    or another exception (``failed`` with a message; unexpected ones are logged with their
    traceback, never shown).
    """

    def __init__(self, work: Work, what: str, cancel: threading.Event | None = None) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.signals = _TaskSignals()
        self.cancel = cancel if cancel is not None else threading.Event()
        self.exited = threading.Event()
        self._work = work
        self._what = what

    def run(self) -> None:
        signals = self.signals
        try:
            result = self._work(self)
        except CancelledError:
            signals.cancelled.emit()
        except LoraCapError as exc:
            log.info("%s failed: %s", self._what, exc)
            signals.failed.emit(str(exc))
        except Exception as exc:  # a bug must reach the user as a message, not kill a thread
            log.exception("Unexpected error while %s", self._what)
            signals.failed.emit(f"Unexpected error while {self._what}: {exc}")
        else:
            if self.cancel.is_set():
                signals.cancelled.emit()
            else:
                signals.succeeded.emit(result)
        finally:
            self.exited.set()
            signals.done.emit()


class _Throttle:
    """Lets a call through at most once per ``interval`` seconds (the first always passes)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_S) -> None:
        self._interval = interval
        self._last = -1e9

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            return True
        return False


class _Job(QObject):
    """Common part of the jobs: start once, end once, wait (for shutdown and tests).

    Signals: ``finished(result)`` or ``failed(message)``, exactly one of them.
    """

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, pool: QThreadPool | None, parent: QObject | None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._task: _Task | None = None
        self._ended = False

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and the ending signal."""
        return self._task is not None and not self._ended

    @property
    def has_ended(self) -> bool:
        """True once the ending signal has been emitted."""
        return self._ended

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the pool thread has finished the work (signals may still be queued).

        True when it has, or when nothing was started; False on timeout.
        """
        if self._task is None:
            return True
        return self._task.exited.wait(None if timeout_ms < 0 else timeout_ms / 1000)

    def _start_task(self, work: Work, what: str, *, cancel: threading.Event | None = None,
                    progress: Callable[..., None] | None = None) -> _Task:
        if self._task is not None:
            raise RuntimeError(f"{type(self).__name__}.start() was called twice.")
        task = _Task(work, what, cancel)
        self._task = task
        if progress is not None:
            task.signals.progress.connect(progress)
        task.signals.succeeded.connect(self._on_succeeded)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        _LIVE[task.signals] = task
        pool = self._pool if self._pool is not None else QThreadPool.globalInstance()
        if pool is None:  # only after the application object is gone
            raise RuntimeError("No thread pool is available.")
        pool.start(task)
        return task

    def _end(self) -> bool:
        """Mark the job ended; False when it already was (the caller then emits nothing)."""
        if self._ended:
            return False
        self._ended = True
        return True

    @pyqtSlot(object)
    def _on_succeeded(self, result: object) -> None:
        if self._end():
            self.finished.emit(result)

    @pyqtSlot(str)
    def _on_failed(self, message: str) -> None:
        if self._end():
            self.failed.emit(message)

    @pyqtSlot()
    def _on_cancelled(self) -> None:  # only reached by jobs that can be cancelled
        self._on_failed("Cancelled.")


class _CancellableJob(_Job):
    """A job with ``cancel()``: ``cancelled`` is emitted at once (the work's result, when it
    comes, is dropped; ``on_dropped`` gets it to free what it holds)."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()

    def __init__(self, pool: QThreadPool | None, parent: QObject | None) -> None:
        super().__init__(pool, parent)
        self._cancel = threading.Event()

    @property
    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop: ``cancelled`` follows at once unless the job has already ended."""
        self._cancel.set()
        if self._end():
            self.cancelled.emit()

    def on_dropped(self, result: object) -> None:
        """Called with a result that arrived after a cancel (override to free it)."""

    @pyqtSlot(object)
    def _on_succeeded(self, result: object) -> None:
        if self._cancel.is_set() or not self._end():
            self.on_dropped(result)
            return
        self.finished.emit(result)

    @pyqtSlot(str)
    def _on_failed(self, message: str) -> None:
        if self._cancel.is_set():
            self._on_cancelled()
        elif self._end():
            self.failed.emit(message)

    @pyqtSlot()
    def _on_cancelled(self) -> None:
        if self._end():
            self.cancelled.emit()


class ScanJob(_CancellableJob):
    """Scans a folder with :func:`loracap.core.scan.scan_folder` on a pool thread.

    Signals (GUI thread):

    * ``progress(count, rel_path)`` -- files listed so far and the latest one's path relative
      to the folder; at most ~20 per second, and once more with the final count before
      ``finished``.
    * ``finished(files)`` -- ``list[ScannedFile]``, valid and invalid files, in scan order.
    * ``failed(message)`` -- e.g. the folder does not exist.
    * ``cancelled()`` -- after :meth:`cancel`; ``finished`` is never emitted after a cancel.

    Exactly one of ``finished`` / ``failed`` / ``cancelled`` is emitted, after :meth:`start`.
    """

    progress = pyqtSignal(int, str)

    def __init__(self, folder: Path, parent: QObject | None = None, *,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.folder = Path(folder)

    def start(self) -> None:
        """Start the scan; call once."""
        folder = self.folder
        cancel = self._cancel

        def work(task: _Task) -> list[ScannedFile]:
            from loracap.core.scan import scan_folder  # loads Pillow: on first scan only

            throttle = _Throttle()
            last: list[tuple[int, str]] = []

            def on_file(count: int, rel_path: str) -> None:
                if throttle.ready():
                    task.signals.progress.emit(count, rel_path)
                    last.clear()
                else:
                    last[:] = [(count, rel_path)]

            files = list(scan_folder(folder, cancel=cancel, progress=on_file))
            if last:
                task.signals.progress.emit(*last[0])
            return files

        self._start_task(work, f"scanning {folder}", cancel=cancel, progress=self._on_progress)

    def cancel(self) -> None:
        """Ask the scan to stop; ``cancelled`` follows unless the job has already ended."""
        self._cancel.set()
        if self._task is None and not self._ended:
            # Never started: end now so that the rule "exactly one ending signal" still holds.
            self._ended = True
            self.cancelled.emit()

    @pyqtSlot(int, object)
    def _on_progress(self, count: int, rel_path: object) -> None:
        if not self._ended and not self._cancel.is_set():
            self.progress.emit(count, str(rel_path))

    @pyqtSlot(object)
    def _on_succeeded(self, result: object) -> None:
        # A started scan's cancel() waits for the work; a result after it ends with cancelled.
        if self._cancel.is_set():
            self._on_cancelled()
        elif self._end():
            self.finished.emit(result)


class ExportJob(_Job):
    """Runs :func:`loracap.core.exports.export_project` on a pool thread.

    ``out`` is the output (see :func:`~loracap.core.exports.export_target`); ``force``
    replaces an existing export; ``options`` are the user's choices.

    Signals (GUI thread): ``progress(done, total)`` (images written, at most ~20 per second
    plus the last one; the metadata format reports none), ``finished(ExportResult)``,
    ``failed(message)`` (e.g. :class:`~loracap.core.errors.OutputExistsError`, a full disk).
    Exactly one of ``finished`` / ``failed`` is emitted; an export cannot be cancelled (the
    output is written atomically, so stopping halfway would gain nothing).
    """

    progress = pyqtSignal(int, int)
    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, project: Project, fmt: TrainerFormat, out: Path, options: ExportOptions,
                 *, force: bool, parent: QObject | None = None,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.project = project
        self.fmt = fmt
        self.out = Path(out)
        self.options = options
        self.force = force

    def start(self) -> None:
        """Start the export; call once."""
        project, fmt, out = self.project, self.fmt, self.out
        force, options = self.force, self.options

        def work(task: _Task) -> object:
            throttle = _Throttle()

            def on_progress(done: int, total: int) -> None:
                if done >= total or throttle.ready():
                    task.signals.progress.emit(done, total)

            return export_project(project, fmt, out, options, force=force,
                                  progress=on_progress)

        self._start_task(work, f"exporting to {out}", progress=self._on_progress)

    @pyqtSlot(int, object)
    def _on_progress(self, done: int, total: Any) -> None:
        if not self._ended:
            self.progress.emit(done, int(total))



class QAExportJob(_Job):
    """Writes a project's question-answer pairs (:func:`loracap.core.qa.exports.export_qa`) on
    a pool thread, streaming the images from the project.

    Signals: ``progress(done)`` (images handled, at most ~20 per second),
    ``finished(QAExportResult)`` or ``failed(message)``; exactly one of the last two. Not
    cancellable: the output is written atomically.
    """

    progress = pyqtSignal(int)
    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, project: Project, out: Path, options: dict[str, Any], *,
                 parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.project = project
        self.out = Path(out)
        #: The keyword arguments of ``export_qa`` (``style``, ``jsonl``, ``base64_images``, …).
        self.options = dict(options)

    def start(self) -> None:
        """Start the export; call once."""
        project, out, options = self.project, self.out, self.options

        def work(task: _Task) -> object:
            from loracap.core.qa.exports import export_qa

            throttle = _Throttle()

            def on_progress(done: int) -> None:
                if throttle.ready():
                    task.signals.progress.emit(done, None)

            return export_qa(project.qa_images(), out, on_progress=on_progress, **options)

        self._start_task(work, f"exporting question-answer pairs to {out}",
                         progress=self._on_progress)

    @pyqtSlot(int, object)
    def _on_progress(self, done: int, _detail: Any) -> None:
        if not self._ended:
            self.progress.emit(done)


@dataclass(frozen=True)
class ProjectLoad:
    """What needs every row of a project, made off the GUI thread (:class:`ProjectLoadJob`):
    the grid's ``labels`` that are not the file name, by row
    (:func:`loracap.core.text.path_label_changes`), the tag ``counter`` of the captions, the
    ids of the images whose file is ``missing`` and the question-answer ``qa`` counts by image
    id."""

    labels: dict[int, str]
    counter: TagCounter
    missing: frozenset[int]
    qa: dict[int, Any]


class ProjectLoadJob(_CancellableJob):
    """Loads the rows of a large project after its first page (issue 15, "Open 100,000
    images…") on a pool thread.

    ``project`` is the open project, or the path of a project file to open first
    (:meth:`~loracap.core.project.Project.open`, whose checks read every row: the window shows
    ``first``, read straight from the file, meanwhile); the job then emits ``opened(project)``
    and the project belongs to the receiver (:attr:`unclaimed` until it says so with
    :meth:`claim`). An error opening it is ``failed(message)``.

    The rows after ``first`` (``project.image_row_parts``) are handed over in order as
    :class:`~loracap.core.image_rows.ImageRows` (``rows``) of ``chunk`` rows, then
    ``2 × chunk``, … up to ``max_chunk`` (few parts: the grid lays out every row again for
    each), then the :class:`ProjectLoad` (``finished``): labels, tag counts (split on the
    project's tag separator) and missing files, counted part by part as the rows are read.
    Cancel it when the project closes (``cancelled`` follows at once)."""

    opened = pyqtSignal(object)
    rows = pyqtSignal(object)

    def __init__(self, project: Project | Path, first: ImageRows, *,
                 chunk: int = 2 * BLOCK, max_chunk: int = 64 * BLOCK,
                 parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.project = project
        self.first = first
        self.chunk = max(1, chunk)
        self.max_chunk = max(self.chunk, max_chunk)
        self._opened: Project | None = None  # opened here, not claimed yet
        self._lock = threading.Lock()

    @property
    def unclaimed(self) -> Project | None:
        """The project this job opened, until :meth:`claim`: close it if the job's signals
        will not be received (the window closed while it opened)."""
        with self._lock:
            return self._opened

    def claim(self) -> None:
        """Say that the project of ``opened`` was received (the receiver closes it)."""
        with self._lock:
            self._opened = None

    def start(self) -> None:
        """Start; call once."""
        target, first, cancel = self.project, self.first, self._cancel
        sizes = itertools.chain(
            itertools.takewhile(lambda size: size < self.max_chunk,
                                (self.chunk << step for step in itertools.count())),
            itertools.repeat(self.max_chunk))

        def work(task: _Task) -> ProjectLoad:
            if isinstance(target, Path):
                from loracap.core.project import Project  # SQLAlchemy: loaded here, not at startup

                project = Project.open(target)
                with self._lock:
                    if cancel.is_set():  # nobody will take it: closed here
                        project.close()
                        raise CancelledError("Cancelled.")
                    self._opened = project
                task.signals.progress.emit(_OPENED, project)
            else:
                project = target
            counter = TagCounter(project.settings.tag_separator)
            missing: list[int] = []
            paths: list[Sequence[str]] = []
            parts = project.image_row_parts(len(first), first, sizes)
            try:
                for part in itertools.chain([first], parts):
                    if cancel.is_set():
                        raise CancelledError("Cancelled.")
                    if part is not first:
                        task.signals.progress.emit(0, part)
                    for body in part.counted_bodies():
                        counter.add_caption(body)
                    missing.extend(part.missing_ids())
                    paths.append(part.paths())
            finally:
                parts.close()
            if cancel.is_set():
                raise CancelledError("Cancelled.")
            labels = path_label_changes(_Joined(paths))
            return ProjectLoad(labels, counter, frozenset(missing), dict(project.qa_counts()))

        what = f"loading {target.name if isinstance(target, Path) else target.path.name}"
        self._start_task(work, what, cancel=self._cancel, progress=self._on_progress)

    @pyqtSlot(int, object)
    def _on_progress(self, kind: int, value: Any) -> None:
        if self._ended:
            return
        if kind == _OPENED:
            self.opened.emit(value)
        else:
            self.rows.emit(value)


#: The progress of :class:`ProjectLoadJob` that hands over the project it opened.
_OPENED = -1


class _Joined(Sequence[str]):
    """Sequences one after the other, as one (the paths of a project's parts)."""

    def __init__(self, parts: list[Sequence[str]]) -> None:
        self._parts = parts
        self._starts = list(itertools.accumulate((len(part) for part in parts), initial=0))

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        part = bisect.bisect_right(self._starts, index) - 1
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._parts[part][index - self._starts[part]]

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._parts)


class ModelListJob(_Job):
    """Fetches the names of the Gemini models that can caption, on a pool thread.

    Uses ``GeminiCaptioner(api_key, timeout_s=15).list_models()`` (the endpoint comes from
    ``GOOGLE_GEMINI_BASE_URL`` when set). Signals: ``finished(list[str])`` in the server's
    order, or ``failed(message)`` (invalid key, no connection, ...). Exactly one is emitted.
    """

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, api_key: str, parent: QObject | None = None, *,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self._api_key = api_key

    def start(self) -> None:
        """Start the request; call once."""
        api_key = self._api_key

        def work(_task: _Task) -> list[str]:
            from loracap.core.backends.gemini import GeminiCaptioner  # heavy: imported when needed

            with GeminiCaptioner(api_key, timeout_s=MODEL_LIST_TIMEOUT_S) as captioner:
                return captioner.list_models()

        self._start_task(work, "listing the Gemini models")


class CheckJob(_Job):
    """Runs the dataset check (:func:`loracap.core.checks.check_project`) on a pool thread.

    ``near_duplicates=False`` skips the near-duplicate search, so no image file is opened.

    Signals (GUI thread):

    * ``progress(done, total)`` -- images checked so far of the project's valid images; at most
      ~20 per second, and always the last one (``done == total``) before ``finished``. A project
      without valid images reports no progress.
    * ``finished(findings)`` -- ``list[Finding]``, sorted by path, then kind.
    * ``failed(message)`` -- e.g. the project file could not be read.
    * ``cancelled()`` -- after :meth:`cancel`; ``finished`` is never emitted after a cancel.

    Exactly one of ``finished`` / ``failed`` / ``cancelled`` is emitted, after :meth:`start`
    (or at once when :meth:`cancel` comes before :meth:`start`). Cancelling takes effect after
    the image being checked, so the pool thread stops within one image.
    """

    progress = pyqtSignal(int, int)
    finished = pyqtSignal(object)
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()

    def __init__(self, project: Project, *, near_duplicates: bool = True,
                 parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.project = project
        self.near_duplicates = near_duplicates
        self._cancel = threading.Event()

    def start(self) -> None:
        """Start the check; call once."""
        project, near, cancel = self.project, self.near_duplicates, self._cancel

        def work(task: _Task) -> list[Finding]:
            throttle = _Throttle()

            def on_progress(done: int, total: int) -> None:
                if cancel.is_set():
                    raise CancelledError("The dataset check was cancelled.")
                if done >= total or throttle.ready():
                    task.signals.progress.emit(done, total)

            return check_project(project, near_duplicates=near, progress=on_progress)

        self._start_task(work, f"checking {project.path.name}", cancel=cancel,
                         progress=self._on_progress)

    def cancel(self) -> None:
        """Ask the check to stop; ``cancelled`` follows unless the job has already ended."""
        self._cancel.set()
        if self._task is None and not self._ended:
            # Never started: end now so that the rule "exactly one ending signal" still holds.
            self._ended = True
            self.cancelled.emit()

    @property
    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._cancel.is_set()

    @pyqtSlot(int, object)
    def _on_progress(self, done: int, total: Any) -> None:
        if not self._ended and not self._cancel.is_set():
            self.progress.emit(done, int(total))

    @pyqtSlot(object)
    def _on_succeeded(self, result: object) -> None:
        if self._cancel.is_set():
            self._on_cancelled()
        elif self._end():
            self.finished.emit(result)

    @pyqtSlot(str)
    def _on_failed(self, message: str) -> None:
        if self._cancel.is_set():
            self._on_cancelled()
        elif self._end():
            self.failed.emit(message)

    @pyqtSlot()
    def _on_cancelled(self) -> None:
        if self._end():
            self.cancelled.emit()


__all__ = ["CheckJob", "ExportJob", "ModelListJob", "PROGRESS_INTERVAL_S", "ScanJob"]
