"""Client-side rate limiting and retries for captioning requests.

* :class:`RateLimiter` keeps at most ``max_requests`` request starts inside any sliding window
  of ``period_s`` seconds. That is how Gemini's per-minute quotas count, so with the limit set to
  the real quota a batch runs at the fastest schedule the quota allows (31 images at 20
  requests/minute: 20 at once, 11 a minute later -- about 61 s -- rather than one every 3 s).
  When the server still answers 429 (the limit was set above the real quota), the limiter holds
  every worker back for the server's ``retryDelay``.
* :func:`call_with_retry` retries :class:`~loracap.core.errors.TransientError` with exponential
  backoff and full jitter (through ``tenacity``), honouring the server's ``RetryInfo.retryDelay``,
  up to ``RetryPolicy.max_attempts`` attempts. A per-minute 429 that says how long to wait is the
  server pacing the client, not a failure of the request: those retries have their own, larger
  budget (``max_rate_limit_retries``), so a limit set above the real quota costs time, never an
  image. Other errors pass through at once.
* Timeouts are not paced like requests the server counted: a request that got no answer in
  time gives its start back to the limiter, so a hanging service does not make the retries
  wait for rate-limit slots (if the server did count it, the 429 that may follow is absorbed as
  above). :class:`AnswerWatch` counts the consecutive timeouts of a whole batch; at
  :data:`NOT_ANSWERING_LIMIT` the batch stops with "the captioning service is not answering"
  (a :class:`~loracap.core.errors.NetworkError`, as when the network is unreachable) instead
  of retrying every image.

Both are plain Python and thread-safe; ``cancel`` events make every wait end at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from loracap.core.errors import CancelledError, CaptionError, NetworkError, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Safety margin added to the window, in seconds: request start times here and arrival times
#: at the server differ by network latency, so a window that frees here a moment early would
#: earn a 429 there.
WINDOW_MARGIN_S = 0.25

#: Consecutive requests of a batch that may get no answer in time before the batch stops with
#: "the captioning service is not answering". Three: with the default four workers, a service
#: that stopped answering stops the batch about one timeout after it stopped (it used to retry
#: every image, paced: 14 minutes for 30 images), while a slow request now and then (a large
#: image, a busy moment) never does -- any answer in between starts the count again.
NOT_ANSWERING_LIMIT = 3


@dataclass(frozen=True)
class LimiterStatus:
    """A snapshot of a :class:`RateLimiter`.

    ``waiting`` counts the threads blocked in :meth:`RateLimiter.acquire` (a thread whose start
    is allowed at once is counted only for that instant); ``next_start_s`` is the number of
    seconds until the next start is allowed, 0.0 when one is allowed now; ``held_by_server`` is
    True while a server's ``retryDelay`` after a 429 holds every start back.
    """

    waiting: int
    next_start_s: float
    held_by_server: bool


class RateLimiter:
    """At most ``max_requests`` starts in any ``period_s``-second sliding window.

    :meth:`acquire` blocks until a start is allowed and returns a ticket (the start time);
    pass it to :meth:`rate_limited` when the server answered 429, so the limiter stops counting
    it and holds everyone back for the server's delay.
    """

    def __init__(
        self,
        max_requests: int,
        period_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin_s: float = WINDOW_MARGIN_S,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.max_requests = max_requests
        self.period_s = period_s
        self._clock = clock
        self._margin = min(margin_s, period_s * 0.05)
        self._starts: deque[float] = deque()
        self._not_before = 0.0
        self._waiting = 0
        self._cond = threading.Condition()

    def _prune(self, now: float) -> None:
        horizon = now - self.period_s - self._margin
        while self._starts and self._starts[0] <= horizon:
            self._starts.popleft()

    def _delay(self, now: float) -> float:
        self._prune(now)
        delay = max(0.0, self._not_before - now)
        if len(self._starts) >= self.max_requests:
            oldest = self._starts[len(self._starts) - self.max_requests]
            delay = max(delay, oldest + self.period_s + self._margin - now)
        return delay

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Wait for a free start and take it; returns the ticket.

        Raises :class:`CancelledError` as soon as ``cancel`` is set.
        """
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise CancelledError("Cancelled.")
                    now = self._clock()
                    delay = self._delay(now)
                    if delay <= 0:
                        self._starts.append(now)
                        return now
                    # Wake at least every 0.1 s to notice a cancel set without wake_all().
                    self._cond.wait(min(delay, 0.1))
            finally:
                self._waiting -= 1

    def status(self) -> LimiterStatus:
        """How many threads wait in :meth:`acquire` now, and the seconds until the next start
        is allowed (0.0 when one is allowed now) -- for an honest progress display."""
        with self._cond:
            now = self._clock()
            delay = self._delay(now)
            return LimiterStatus(
                waiting=self._waiting,
                next_start_s=delay,
                held_by_server=self._not_before > now,
            )

    def eta(self, count: int) -> float:
        """Seconds from now until ``count`` more starts could all have happened (0 for none).

        For a progress estimate: in a saturated sliding window, start ``i`` happens one period
        after start ``i - max_requests``, so only the first window is simulated.
        """
        if count <= 0:
            return 0.0
        with self._cond:
            now = self._clock()
            self._prune(now)
            times = list(self._starts)
            first: list[float] = []
            for _ in range(min(count, self.max_requests)):
                start = max(now, self._not_before)
                if len(times) >= self.max_requests:
                    start = max(start, times[-self.max_requests] + self.period_s + self._margin)
                times.append(start)
                first.append(start)
            last = count - 1
            windows, index = divmod(last, self.max_requests)
            return first[index] + windows * (self.period_s + self._margin) - now

    def rate_limited(self, ticket: float, retry_after: float | None) -> None:
        """The request started at ``ticket`` got a per-minute 429.

        The request is taken out of the window (the server did not count it) and nobody starts
        before ``retry_after`` seconds from now.
        """
        with self._cond:
            self._remove(ticket)
            if retry_after is not None and retry_after > 0:
                self._not_before = max(self._not_before, self._clock() + retry_after)
            self._cond.notify_all()

    def release(self, ticket: float) -> None:
        """Take the start ``ticket`` out of the window: its request got no answer in time, so
        its retry is not held back by it."""
        with self._cond:
            self._remove(ticket)
            self._cond.notify_all()

    def _remove(self, ticket: float) -> None:
        try:
            self._starts.remove(ticket)
        except ValueError:
            pass

    def wake_all(self) -> None:
        """Wake every waiting thread (call after setting a cancel event)."""
        with self._cond:
            self._cond.notify_all()


class AnswerWatch:
    """The consecutive requests of one batch that got no answer in time; thread-safe.

    :func:`call_with_retry` reports every attempt: any answer of the service (a caption, an
    error, a 429) sets the count back to zero -- the service is answering; a timeout adds one;
    a lost connection does neither (it is retried, and stops the batch on its own after
    ``RetryPolicy.max_attempts``). ``limit`` is the count that stops the batch.
    """

    def __init__(self, limit: int = NOT_ANSWERING_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def answered(self) -> None:
        """The service answered a request."""
        with self._lock:
            self._count = 0

    def timed_out(self) -> int:
        """A request got no answer in time; returns the consecutive count, this one included."""
        with self._lock:
            self._count += 1
            return self._count


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    ``max_attempts`` counts every try of one request (the first one too), except tries answered
    with a per-minute 429 (``kind == "rate_limit"``), which count against
    ``max_rate_limit_retries`` instead. Backoff before retry
    ``n`` (1-based) is a random delay in ``[0, min(max_delay_s, base_delay_s * 2**n)]`` (full
    jitter); a server ``retryDelay`` replaces it, plus up to ``jitter_s`` seconds.
    """

    max_attempts: int = 5
    max_rate_limit_retries: int = 30
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter_s: float = 0.5


def backoff_delay(policy: RetryPolicy, attempt: int, error: BaseException | None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one."""
    if isinstance(error, TransientError) and error.retry_after is not None:
        return error.retry_after + random.uniform(0, policy.jitter_s)
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2**attempt))
    return random.uniform(0, ceiling)


def call_with_retry(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    cancel: threading.Event | None = None,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
    watch: AnswerWatch | None = None,
) -> T:
    """Run ``call`` with rate limiting and retries of :class:`TransientError`.

    Each attempt first takes a start from ``limiter``; an attempt that timed out (``kind``
    ``timeout``) gives it back (:meth:`RateLimiter.release`). ``on_retry(attempt, error,
    delay_s)`` is called before each wait. Every attempt is reported to ``watch``; the timeout
    that reaches ``watch.limit`` raises :class:`NetworkError` ("the captioning service is not
    answering"), not retried. Raises the last :class:`TransientError` when the attempts run out,
    any other exception of ``call`` at once, and :class:`CancelledError` when ``cancel`` is set
    while waiting (a request already sent is not abandoned here; see
    :func:`loracap.core.captioning.caption_image`).
    """
    cancel = cancel or threading.Event()

    def sleep(seconds: float) -> None:
        if cancel.wait(seconds):
            raise CancelledError("Cancelled.")

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if (
            isinstance(error, TransientError)
            and error.kind == "rate_limit"
            and error.retry_after is not None
            and limiter is not None
        ):
            # The limiter already holds everyone back for retryDelay; add only jitter.
            return random.uniform(0, policy.jitter_s)
        return backoff_delay(policy, state.attempt_number, error)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        assert isinstance(error, TransientError)
        log.info("Attempt %d failed (%s); retrying in %.1f s", state.attempt_number, error, delay)
        if on_retry is not None:
            on_retry(state.attempt_number, error, delay)

    failures = {"rate_limit": 0, "other": 0}

    def attempt() -> T:
        ticket = limiter.acquire(cancel) if limiter else None
        try:
            result = call()
        except TransientError as error:
            if error.kind == "rate_limit":
                failures["rate_limit"] += 1
                if limiter is not None and ticket is not None:
                    limiter.rate_limited(ticket, error.retry_after)
            else:
                failures["other"] += 1
            if error.kind == "timeout":
                if limiter is not None and ticket is not None:
                    limiter.release(ticket)
                _note_timeout(watch, error)
            elif error.kind != "connection" and watch is not None:
                watch.answered()
            raise
        except CaptionError:
            if watch is not None:
                watch.answered()
            raise
        if watch is not None:
            watch.answered()
        return result

    def stop(_state: tenacity.RetryCallState) -> bool:
        return (
            failures["other"] >= policy.max_attempts
            or failures["rate_limit"] > policy.max_rate_limit_retries
        )

    retrying = tenacity.Retrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception_type(TransientError),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)


def _note_timeout(watch: AnswerWatch | None, error: TransientError) -> None:
    """Count a timeout; raise :class:`NetworkError` when it is the one that reaches the limit."""
    if watch is None:
        return
    if watch.timed_out() >= watch.limit:  # several workers may pass the limit at once
        raise NetworkError(
            f"The captioning service is not answering: {watch.limit} requests in a row got no "
            f"answer in time ({str(error).rstrip('.')})."
        ) from error
