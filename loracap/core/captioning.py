"""Captioning one image, start to finish: prepare, ask the backend (with retries), store.

This is the unit of work of a captioning batch; :mod:`loracap.jobs.runner` runs many of them on
worker threads. It is plain Python, so tests and other front ends can call it directly.

Outcomes:

* success -- the caption body is committed to the project before :func:`caption_image` returns
  (unless a person edited the caption meanwhile: then the generated text goes to the history);
  with grouped commits (:class:`CaptionGroup`, for a fast backend) it is returned pending
  instead and committed with others, always before it is reported as done;
* a per-image failure (unreadable image, safety block, empty answer, retries used up on a
  timeout or a server error) -- recorded in the project with its reason, returned as failed;
  the batch goes on;
* a batch-stopping failure (invalid key, per-day quota, network unreachable, a service that
  stopped answering, unknown model, a project file that cannot be written) -- raised for the
  runner to stop the batch. Nothing is recorded on the image: the image did not fail, the
  batch stopped, so it stays exactly as it was (uncaptioned, not failed) and the next run takes
  it again (issue 9: "Stops are not failures").

Every answer is sanitised and bounded before it is stored (:mod:`loracap.core.prompts`:
control characters and escape sequences removed, lone surrogates replaced, the profile's
length limit), whichever backend made it; an answer that cannot be made a caption fails only
its image.

The request runs on a helper thread while the worker waits for it, so that
``CaptionJob.abandon`` can end the wait at once (Ctrl+C on the command line): the request is
dropped, the image stays as it was, and the helper thread ends with the request's own timeout
(it is a daemon thread: it never holds up the exit).
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loracap.core.backends.base import Captioner, CaptionResult, TokenUsage
from loracap.core.errors import (
    CancelledError,
    CaptionError,
    ImageRejectedError,
    InputError,
    LoraCapError,
    NetworkError,
    StorageError,
    TransientError,
    UndecodableImageError,
)
from loracap.core.pacing import AnswerWatch, RateLimiter, RetryPolicy, call_with_retry
from loracap.core.prompts import Instructions, limit_length, sanitize_text

if TYPE_CHECKING:
    from loracap.core.captioning_people import PeopleOptions
    from loracap.core.prepared_decodes import PreparedDecodes
    from loracap.core.project import Project
    from loracap.core.project_captions import CaptionToStore
    from loracap.core.qa.generate import QAOptions
    from loracap.core.records import ImageRecord

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_A = TypeVar("_A")

#: How often a worker waiting for an answer looks at ``CaptionJob.abandon``, in seconds.
_ABANDON_POLL_S = 0.05

#: SQLite result codes (https://www.sqlite.org/rescode.html): the primary code is the low byte.
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
#: errno values that mean "no room": the disk, the user's quota, the file size limit.
_NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: A write that failed on a disk with less free space than this (bytes) failed for want of
#: room, whatever SQLite calls it: a caption's transaction needs a few pages of 4 KiB.
_FULL_BELOW_BYTES = 1 << 20

#: Grouped commits (:class:`CaptionGroup`; issue 15): a group is committed once this many
#: captions wait, or once the oldest has waited this many seconds.
GROUP_SIZE = 100
GROUP_WAIT_S = 0.05


@dataclass(frozen=True)
class CaptionJob:
    """Everything the workers of one batch share. All members are thread-safe.

    ``people`` set: every image gets a multi-person caption
    (:mod:`loracap.core.captioning_people`), ``instructions`` then being the single-subject
    caption of an image without people. ``qa`` set: the batch writes question-answer pairs
    (or answers a person's questions) instead of captions; the captions stay as they are.

    ``cancel`` set: no new request is sent (waits for the rate limit or a retry end at once);
    ``abandon`` set as well: requests still waiting for their answer are dropped too. ``watch``
    counts the batch's consecutive timeouts (see :class:`~loracap.core.pacing.AnswerWatch`).
    """

    project: Project
    captioner: Captioner
    instructions: Instructions
    trigger: str
    prefix: str
    limiter: RateLimiter
    policy: RetryPolicy
    cancel: threading.Event
    max_side: int = 1536
    overwrite_protected: bool = False
    abandon: threading.Event = field(default_factory=threading.Event)
    watch: AnswerWatch = field(default_factory=AnswerWatch)
    people: PeopleOptions | None = None
    #: Question-answer pairs instead of captions (:mod:`loracap.core.qa.generate`), or None.
    qa: QAOptions | None = None
    #: Grouped commits for a fast backend, or None: a generated caption is then not stored by
    #: :func:`caption_image` but returned pending (:attr:`ImageOutcome.pending`), for the
    #: caller to hand to this group, which commits it before it is reported.
    group: CaptionGroup | None = None
    #: Where the whole decodes of multi-person captions are recorded (they decode each image
    #: themselves, not through ``captioner.prepare``), so the next export skips them; or None.
    decodes: PreparedDecodes | None = None


@dataclass(frozen=True)
class PendingCaption:
    """A generated caption not committed yet (:attr:`CaptionJob.group`): what to store, and
    the path of its image as shown, for the message of a failed commit."""

    caption: CaptionToStore
    path: str


@dataclass(frozen=True)
class ImageOutcome:
    """The result of captioning one image.

    ``stored`` is False when a person's caption was kept and the generated text went to the
    history only (not known yet while ``pending``). ``error`` is the reason of a failure, ``""``
    on success. ``request_s`` is how long the last request to the backend took, in seconds
    (0.0 when none was sent), for the runner's time estimate.
    """

    image_id: int
    ok: bool
    body: str = ""
    stored: bool = False
    error: str = ""
    kind: str = ""
    request_s: float = 0.0
    #: Set when the caption is not committed yet (:attr:`CaptionJob.group`): the outcome must
    #: not be reported before :meth:`CaptionGroup.submit` has committed it.
    pending: PendingCaption | None = None


#: A caption handed to a :class:`CaptionGroup`: the pending outcome, what to call once it is
#: committed and what to call if it cannot be, and when it was handed in (``time.monotonic``).
_Handed = tuple[ImageOutcome, Callable[[ImageOutcome], None], Callable[[LoraCapError], None],
                float]


class ImageFailed(Exception):
    """Internal to captioning: the image fails with ``message`` (its reason, recorded on the
    image) of ``kind``; the batch goes on. ``invalid_reason`` set: the image's pixels do not
    decode (damage the scan's structure checks cannot see), so the image is marked invalid
    with it instead (issue 15)."""

    def __init__(self, message: str, kind: str, invalid_reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.invalid_reason = invalid_reason

    @classmethod
    def unusable(cls, exc: InputError) -> ImageFailed:
        """The failure of an image that cannot be read or decoded (``exc``)."""
        reason = exc.reason if isinstance(exc, UndecodableImageError) else ""
        return cls(str(exc), "image", reason)


@dataclass
class Attempt:
    """One image's work in progress: the job, the image's record and how long the last
    request took (seconds, for the runner's time estimate)."""

    job: CaptionJob
    record: ImageRecord
    on_retry: Callable[[int, TransientError, float], None] | None
    last_request_s: float = 0.0

    def send(self, call: Callable[[], _T], what: str = "") -> _T:
        """``call()`` (one request to the backend) under the batch's rules: the rate limiter,
        retries of transient errors, the consecutive-timeout watch, abandon on Ctrl+C.

        Raises :class:`ImageFailed` for a refused image or retries used up (``what`` -- e.g.
        ``"sksB: "`` -- starts the reason), :class:`NetworkError` when the service cannot be
        reached, and the other batch-stopping errors unchanged.
        """
        job = self.job

        def request() -> _T:
            started = time.monotonic()
            try:
                return _await(call, job.abandon)
            finally:
                self.last_request_s = time.monotonic() - started

        try:
            return call_with_retry(
                request, policy=job.policy, limiter=job.limiter, cancel=job.cancel,
                on_retry=self.on_retry, watch=job.watch,
            )
        except ImageRejectedError as exc:
            raise ImageFailed(f"{what}{exc}", "rejected") from exc
        except TransientError as exc:
            if exc.kind == "connection":
                message = (
                    f"Cannot reach the captioning service after {job.policy.max_attempts} "
                    f"attempts ({exc})."
                )
                log.info("Captioning %s stopped the batch: %s", self.record.path, message)
                raise NetworkError(message) from exc
            raise ImageFailed(
                f"{what}{exc} (gave up after {job.policy.max_attempts} attempts)", exc.kind
            ) from exc
        except CaptionError as exc:
            log.info("Captioning %s stopped the batch: %s", self.record.path, exc)
            raise

    def fail(self, failure: ImageFailed, usage: TokenUsage | None = None,
             provenance: tuple[str, str] = ("", "")) -> ImageOutcome:
        """Record the failure on the image, with the tokens paid before it failed (``usage``,
        of ``provenance``'s backend and model); the outcome that says so."""
        project, record = self.job.project, self.record
        if failure.invalid_reason:
            _saving(project, record.path,
                    lambda: project.mark_invalid(record.id, failure.invalid_reason))
        else:
            _saving(project, record.path, lambda: project.record_failure(
                record.id, failure.message, kind=failure.kind, backend=provenance[0],
                model=provenance[1], usage=usage))
        log.info("Captioning %s failed: %s", record.path, failure.message)
        return ImageOutcome(record.id, ok=False, error=failure.message, kind=failure.kind,
                            request_s=self.last_request_s)

    def store(self, body: str, result: CaptionResult, usage: TokenUsage | None = None
              ) -> ImageOutcome:
        """Store a generated caption body (already sanitised and bounded) with the provenance
        of ``result`` and the tokens paid (``usage``, default ``result.usage``); with
        :attr:`CaptionJob.group` set, return it pending instead (the caller hands it to the
        group)."""
        job, record = self.job, self.record
        project = job.project
        if job.group is not None:  # committed by the group before it is reported
            from loracap.core.project_captions import CaptionToStore

            caption = CaptionToStore(
                record.id, body, backend=result.backend, model=result.model,
                prompt=result.prompt, usage=usage if usage is not None else result.usage)
            return ImageOutcome(record.id, ok=True, body=body, request_s=self.last_request_s,
                                pending=PendingCaption(caption, record.path))
        stored = _saving(project, record.path, lambda: project.store_generated(
            record.id,
            body,
            backend=result.backend,
            model=result.model,
            prompt=result.prompt,
            usage=usage if usage is not None else result.usage,
            overwrite_protected=job.overwrite_protected,
        ))
        return ImageOutcome(record.id, ok=True, body=body, stored=stored,
                            request_s=self.last_request_s)


def caption_image(
    job: CaptionJob,
    image_id: int,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
) -> ImageOutcome:
    """Caption one image of ``job.project`` and store the result (with ``job.people`` set: a
    multi-person caption, :mod:`loracap.core.captioning_people`; with ``job.qa`` set:
    question-answer pairs, :mod:`loracap.core.qa.generate`). With ``job.group`` set, a
    generated caption is returned pending (:attr:`ImageOutcome.pending`) instead of stored:
    hand it to :meth:`CaptionGroup.submit` and report it only when the group does.

    Raises :class:`~loracap.core.errors.CancelledError` if cancelled before the request was sent
    (or abandoned while it waited for its answer), and the batch-stopping errors
    (:class:`~loracap.core.errors.AuthenticationError`,
    :class:`~loracap.core.errors.QuotaExhaustedError`, :class:`NetworkError`, other
    :class:`CaptionError`, :class:`StorageError`) without recording anything on the image.
    """
    attempt = Attempt(job, job.project.image(image_id), on_retry)
    if job.qa is not None:
        # Imported here: the module builds on this one.
        from loracap.core.qa.generate import answer_questions, generate_pairs

        return (answer_questions if job.qa.answer_only else generate_pairs)(attempt, job.qa)
    if job.people is not None:
        # Imported here: the module builds on this one.
        from loracap.core.captioning_people import caption_people

        return caption_people(attempt, job.people)
    try:
        return caption_single(attempt, job.instructions)
    except ImageFailed as failure:
        return attempt.fail(failure)


def caption_single(attempt: Attempt, instructions: Instructions) -> ImageOutcome:
    """The ordinary caption of ``attempt``'s image with ``instructions``: one request, the
    answer sanitised and bounded by the profile's limit, stored. Raises :class:`ImageFailed`
    for an image that cannot be captioned."""
    job, record = attempt.job, attempt.record
    try:
        image = job.captioner.prepare(record.abs_path, job.max_side)
    except InputError as exc:
        raise ImageFailed.unusable(exc) from exc
    result = attempt.send(lambda: job.captioner.caption(
        image, instructions, trigger=job.trigger, prefix=job.prefix))
    # The backend cleaned it already (Gemini's does); whatever the backend, no control
    # character, lone surrogate or runaway length reaches the project.
    body = limit_length(" ".join(sanitize_text(result.body).split()), instructions.limits.body)
    if not body:
        raise ImageFailed("The model returned an empty caption.", "rejected")
    return attempt.store(body, result)


class CaptionGroup:
    """Commits the captions of a fast backend (a local tagger, a vLLM server) in small groups,
    each before any of its captions is reported as done (issue 15).

    A worker hands a pending outcome (:attr:`ImageOutcome.pending`, from :func:`caption_image`
    with :attr:`CaptionJob.group` set) to :meth:`submit` and goes on with its next image. The
    group's own thread commits what was handed in, in ONE transaction
    (:meth:`~loracap.core.project.Project.store_generated_many`: one sync of the file instead
    of one per caption), as soon as ``size`` captions wait or the oldest has waited ``wait_s``
    seconds (default :data:`GROUP_SIZE`, :data:`GROUP_WAIT_S`), or at once when someone calls
    :meth:`flush`; then it calls each caption's ``report`` with its outcome (``stored`` known,
    ``pending`` None), on its own thread. So a caption reported as done is committed: a killed
    process loses only captions never reported. A commit that fails stores none of its
    captions and calls each one's ``fail`` with the error that stops the batch
    (:class:`~loracap.core.errors.StorageError` when the file cannot be written, as
    :meth:`Attempt.store` raises it).

    ``overwrite_protected`` as for :meth:`~loracap.core.project.Project.store_generated`.
    Thread-safe. Call :meth:`close` when done (it flushes first).
    """

    def __init__(self, project: Project, *, overwrite_protected: bool = False,
                 size: int = GROUP_SIZE, wait_s: float = GROUP_WAIT_S) -> None:
        self._project = project
        self._overwrite_protected = overwrite_protected
        self._size = max(1, size)
        self._wait_s = max(0.0, wait_s)
        self._cond = threading.Condition()
        # (outcome, report, fail, time.monotonic() when handed in), oldest first
        self._waiting: list[_Handed] = []
        self._handed = 0  # captions handed in so far
        self._settled = 0  # of them, committed and reported, or failed
        self._flushing = 0  # flush() calls waiting: commit without waiting for more
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, outcome: ImageOutcome, report: Callable[[ImageOutcome], None],
               fail: Callable[[LoraCapError], None]) -> None:
        """Hand in a pending outcome; returns at once. ``report(outcome)`` follows once it
        is committed, ``fail(error)`` if its group could not be. Raises ``ValueError`` for an
        outcome that is not pending and ``RuntimeError`` after :meth:`close`."""
        if outcome.pending is None:
            raise ValueError("Only a pending caption is handed to a CaptionGroup.")
        with self._cond:
            if self._closed:
                raise RuntimeError("This CaptionGroup is closed.")
            self._waiting.append((outcome, report, fail, time.monotonic()))
            self._handed += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loracap-commits",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self) -> None:
        """Commit now what waits, and return once every caption handed in before the call
        is committed and reported (or failed)."""
        with self._cond:
            target = self._handed
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._settled < target:
                    self._cond.wait()
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """:meth:`flush`, then end the group's thread. Safe to call twice."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                group = self._next_group()
            if group is None:
                return
            try:
                self._commit(group)
            finally:
                with self._cond:
                    self._settled += len(group)
                    self._cond.notify_all()

    def _next_group(self) -> list[_Handed] | None:
        """The next captions to commit, at most ``size``, once they are due; None when
        closed with nothing waiting. Called with the lock held."""
        while True:
            if self._waiting:
                left = self._waiting[0][3] + self._wait_s - time.monotonic()
                if (len(self._waiting) >= self._size or left <= 0 or self._flushing
                        or self._closed):
                    group = self._waiting[:self._size]
                    del self._waiting[:self._size]
                    return group
                self._cond.wait(left)
            elif self._closed:
                return None
            else:
                self._cond.wait()

    def _commit(self, group: list[_Handed]) -> None:
        project = self._project
        pending = [outcome.pending for outcome, *_ in group if outcome.pending is not None]
        try:
            stored = _saving(project, pending[0].path, lambda: project.store_generated_many(
                [item.caption for item in pending],
                overwrite_protected=self._overwrite_protected))
        except Exception as exc:  # reported to every caption's batch, never lost
            if isinstance(exc, LoraCapError):
                error = exc
            else:
                log.exception("Unexpected error while storing %d captions", len(group))
                error = LoraCapError(f"Unexpected error: {exc}")
            for _outcome, _report, fail, _at in group:
                _call(fail, error)
            return
        for (outcome, report, _fail, _at), kept in zip(group, stored, strict=True):
            _call(report, replace(outcome, stored=kept, pending=None))


def _call(callback: Callable[[_A], None], argument: _A) -> None:
    """``callback(argument)`` on a :class:`CaptionGroup`'s thread: an error in it is logged,
    never the end of the thread (the captions after it would wait forever)."""
    try:
        callback(argument)
    except Exception:
        log.exception("Error in a callback of a CaptionGroup")


def _await(call: Callable[[], _T], abandon: threading.Event) -> _T:
    """``call()`` run on a daemon thread; its result or exception, or :class:`CancelledError`
    as soon as ``abandon`` is set while it runs (the call is left to end on its own; what it
    returns then is dropped)."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the waiting worker as it is
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="loracap-request", daemon=True).start()
    while not done.wait(_ABANDON_POLL_S):
        if abandon.is_set():
            log.info("Dropped a request still waiting for its answer")
            raise CancelledError("Cancelled.")
    if "error" in box:
        raise box["error"]
    result: _T = box["result"]
    return result


def _saving(project: Project, path: str, write: Callable[[], _T]) -> _T:
    """``write()`` (a write of the project file for the image at ``path``); a failed write
    becomes one :class:`StorageError` sentence.

    SQLite says ``SQLITE_FULL`` ("database or disk is full") when the disk has no room, and
    ``SQLITE_IOERR`` ("disk I/O error") when a write fails otherwise (over a quota or the file
    size limit, a failing disk); SQLAlchemy wraps both in an ``OperationalError`` whose text
    holds the SQL statement and its parameters -- never shown. Other errors pass unchanged.
    """
    try:
        return write()
    except Exception as exc:
        reason = _storage_reason(exc, project.path.parent)
        if reason is None:
            raise
        detail = str(getattr(exc, "orig", None) or exc)
    # Logged and raised after the except block: no SQLAlchemy text is chained to either (a
    # log file on the same full disk prints its own error with the exception being handled).
    log.info("Could not save the caption of %s in %s: %s", path, project.path, detail)
    if reason == "full":
        raise StorageError(f"The disk is full: the caption of {path} could not be saved in "
                           f"{project.path.name}. Free some space on the disk.")
    raise StorageError(f"The project file {project.path.name} could not be written (the caption "
                       f"of {path} was not saved): {reason}; the disk may be full, over its "
                       "quota or failing.")


def _storage_reason(exc: BaseException, folder: Path) -> str | None:
    """``"full"`` when ``exc`` (or the SQLite or OS error inside it: SQLAlchemy's ``orig``, a
    cause) says there is no room, or a write failed and ``folder``'s disk has less than
    :data:`_FULL_BELOW_BYTES` free; another short reason for a failed write (``"disk I/O
    error"``, ``"File too large"``); None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            primary = code & 0xFF if isinstance(code, int) else None
            if primary == _SQLITE_FULL:
                return "full"
            if primary == _SQLITE_IOERR:
                return "full" if _nearly_full(folder) else str(current) or "disk I/O error"
            return None
        if isinstance(current, OSError) and current.errno in _NO_ROOM_ERRNOS:
            if current.errno == errno.ENOSPC or _nearly_full(folder):
                return "full"
            return current.strerror or str(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _FULL_BELOW_BYTES
    except OSError:
        return False


__all__ = ["Attempt", "CaptionGroup", "CaptionJob", "CaptionResult", "Captioner", "GROUP_SIZE",
           "GROUP_WAIT_S", "ImageFailed", "ImageOutcome", "PendingCaption", "caption_image",
           "caption_single"]
