"""Client-side rate limiting and retries."""

from __future__ import annotations

import threading
import time

import pytest

from loracap.core.errors import (
    AuthenticationError,
    CancelledError,
    ImageRejectedError,
    NetworkError,
    TransientError,
)
from loracap.core.pacing import (
    NOT_ANSWERING_LIMIT,
    AnswerWatch,
    RateLimiter,
    RetryPolicy,
    backoff_delay,
    call_with_retry,
)

FAST = RetryPolicy(max_attempts=5, base_delay_s=0.01, max_delay_s=0.05, jitter_s=0.01)


def test_limiter_allows_a_burst_then_waits_for_the_window() -> None:
    limiter = RateLimiter(3, period_s=0.5, margin_s=0.0)
    start = time.monotonic()
    for _ in range(3):
        limiter.acquire()
    assert time.monotonic() - start < 0.2  # the quota allows a burst: no even spacing
    limiter.acquire()
    assert time.monotonic() - start >= 0.5


def test_a_rate_limited_request_leaves_the_window() -> None:
    limiter = RateLimiter(2, period_s=60.0)
    limiter.acquire()
    rejected = limiter.acquire()
    limiter.rate_limited(rejected, retry_after=None)  # the server did not count it
    start = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - start < 0.5


def test_a_waiting_acquire_ends_on_cancel() -> None:
    limiter = RateLimiter(1, period_s=60.0)
    limiter.acquire()
    cancel = threading.Event()
    result: list[BaseException] = []

    def blocked() -> None:
        try:
            limiter.acquire(cancel)
        except CancelledError as exc:
            result.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # waiting for the window
    cancel.set()
    limiter.wake_all()
    thread.join(2)
    assert not thread.is_alive() and isinstance(result[0], CancelledError)


def test_server_retry_delay_holds_every_worker_back() -> None:
    limiter = RateLimiter(100, period_s=60.0)
    limiter.acquire()
    ticket = limiter.acquire()
    limiter.rate_limited(ticket, retry_after=0.3)
    start = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - start >= 0.29


def test_transient_errors_are_retried_until_success() -> None:
    calls: list[int] = []
    retries: list[tuple[int, str]] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503 UNAVAILABLE", kind="server")
        return "ok"

    result = call_with_retry(flaky, policy=FAST,
                             on_retry=lambda n, e, d: retries.append((n, e.kind)))
    assert result == "ok" and len(calls) == 3
    assert retries == [(1, "server"), (2, "server")]


def test_retry_delay_from_the_server_is_honoured() -> None:
    calls: list[float] = []

    def once_limited() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise TransientError("429", kind="server", retry_after=0.3)
        return "ok"

    assert call_with_retry(once_limited, policy=FAST) == "ok"
    assert calls[1] - calls[0] >= 0.3


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise TransientError(f"timeout {len(calls)}", kind="timeout")

    with pytest.raises(TransientError, match="timeout 5"):
        call_with_retry(always, policy=FAST)
    assert len(calls) == 5


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def bad_key() -> None:
        calls.append(1)
        raise AuthenticationError("key refused")

    with pytest.raises(AuthenticationError):
        call_with_retry(bad_key, policy=FAST)
    assert calls == [1]


def test_cancel_ends_a_backoff_wait_at_once() -> None:
    cancel = threading.Event()

    def slow_retry() -> None:
        raise TransientError("503", kind="server", retry_after=30.0)

    threading.Timer(0.2, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(CancelledError):
        call_with_retry(slow_retry, policy=FAST, cancel=cancel)
    assert time.monotonic() - start < 5


def test_rate_limit_429_goes_through_the_limiter() -> None:
    limiter = RateLimiter(50, period_s=60.0)
    calls: list[float] = []

    def limited_once() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise TransientError("429", kind="rate_limit", retry_after=0.3)
        return "ok"

    assert call_with_retry(limited_once, policy=FAST, limiter=limiter) == "ok"
    assert calls[1] - calls[0] >= 0.3


def test_paced_429s_have_their_own_budget() -> None:
    calls: list[int] = []

    def busy_server() -> str:
        calls.append(1)
        if len(calls) <= 7:
            raise TransientError("429", kind="rate_limit", retry_after=0.01)
        return "ok"

    limiter = RateLimiter(100, period_s=60.0)
    assert call_with_retry(busy_server, policy=FAST, limiter=limiter) == "ok"
    assert len(calls) == 8  # more than max_attempts, none counted as a failure


@pytest.mark.parametrize("attempt", [1, 2, 3, 6])
def test_backoff_is_exponential_with_full_jitter(attempt: int) -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter_s=0.5)
    ceiling = min(10.0, 2.0**attempt)
    delays = [backoff_delay(policy, attempt, TransientError("x", kind="server"))
              for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the range
    delayed = backoff_delay(policy, attempt, TransientError("x", kind="server", retry_after=7))
    assert 7 <= delayed <= 7.5


def test_eta_follows_the_sliding_window() -> None:
    clock = [100.0]
    limiter = RateLimiter(3, period_s=60.0, clock=lambda: clock[0], margin_s=0.0)
    assert limiter.eta(0) == 0.0
    assert limiter.eta(3) == 0.0  # three free starts now
    for _ in range(3):
        limiter.acquire()
    clock[0] = 110.0
    assert limiter.eta(1) == pytest.approx(50.0)  # the first start leaves the window at 160
    assert limiter.eta(3) == pytest.approx(50.0)
    assert limiter.eta(4) == pytest.approx(110.0)
    assert limiter.eta(7) == pytest.approx(170.0)


def test_progress_text_reads_like_the_brief() -> None:
    from loracap.core.text import progress_text

    assert progress_text(11, 1, 32, 125) == "Captioning 12 of 32 · 1 failed · about 2 min 05 s left"
    assert progress_text(0, 0, 5, -1) == "Captioning 0 of 5"
    assert progress_text(5, 0, 5, 0) == "Captioned 5 of 5"


def test_status_counts_the_waiting_threads_and_the_seconds_to_the_next_start() -> None:
    limiter = RateLimiter(2, period_s=1.5, margin_s=0.0)
    assert limiter.status().waiting == 0 and limiter.status().next_start_s == 0.0
    limiter.acquire()
    limiter.acquire()
    threads = [threading.Thread(target=limiter.acquire) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    status = limiter.status()
    assert status.waiting == 2  # both blocked until the window moves on
    assert 1.0 < status.next_start_s <= 1.2 and not status.held_by_server
    for thread in threads:
        thread.join(5)
    status = limiter.status()
    assert status.waiting == 0 and status.next_start_s > 1.0  # the window is full again


def test_status_shows_a_server_hold() -> None:
    limiter = RateLimiter(100, period_s=60.0)
    ticket = limiter.acquire()
    limiter.rate_limited(ticket, retry_after=2.0)
    status = limiter.status()
    assert status.held_by_server and 1.8 < status.next_start_s <= 2.0
    assert status.waiting == 0


# --- timeouts: not paced, and a service that stops answering stops the batch -------------------


def test_a_timed_out_retry_is_not_held_back_by_the_rate_limit() -> None:
    # One request a minute: a retry that had to wait for the window would take 60 s.
    limiter = RateLimiter(1, period_s=60.0)
    calls: list[int] = []

    def times_out_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("Gemini did not answer within 1 s.", kind="timeout")
        return "ok"

    started = time.monotonic()
    assert call_with_retry(times_out_once, policy=FAST, limiter=limiter) == "ok"
    assert time.monotonic() - started < 5
    assert limiter.status().next_start_s > 50  # the answered request holds its start


def test_consecutive_timeouts_stop_with_not_answering() -> None:
    assert NOT_ANSWERING_LIMIT == 3
    watch = AnswerWatch()
    calls: list[int] = []

    def hangs() -> None:
        calls.append(1)
        raise TransientError("Gemini did not answer within 1 s.", kind="timeout")

    with pytest.raises(NetworkError) as caught:
        call_with_retry(hangs, policy=FAST, watch=watch)
    assert len(calls) == 3  # not max_attempts (5)
    assert str(caught.value) == ("The captioning service is not answering: 3 requests in a row "
                                 "got no answer in time (Gemini did not answer within 1 s).")


def test_the_timeout_count_is_shared_by_the_batch_and_reset_by_any_answer() -> None:
    watch = AnswerWatch(limit=3)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)

    def hangs() -> None:
        raise TransientError("no answer", kind="timeout")

    def refused() -> None:
        raise ImageRejectedError("blocked")

    with pytest.raises(TransientError):  # image 1: two timeouts, then it fails on its own
        call_with_retry(hangs, policy=policy, watch=watch)
    with pytest.raises(NetworkError):  # image 2: the third timeout in a row
        call_with_retry(hangs, policy=policy, watch=watch)

    watch = AnswerWatch(limit=3)
    with pytest.raises(TransientError):
        call_with_retry(hangs, policy=policy, watch=watch)
    with pytest.raises(ImageRejectedError):  # an answer, even a refusal: the service answers
        call_with_retry(refused, policy=policy, watch=watch)
    with pytest.raises(TransientError):  # two more timeouts: the count started again
        call_with_retry(hangs, policy=policy, watch=watch)
    assert call_with_retry(lambda: "ok", policy=policy, watch=watch) == "ok"


def test_lost_connections_neither_count_nor_reset_timeouts() -> None:
    watch = AnswerWatch(limit=2)
    policy = RetryPolicy(max_attempts=1, base_delay_s=0.01)

    def hangs() -> None:
        raise TransientError("no answer", kind="timeout")

    def refused() -> None:
        raise TransientError("refused", kind="connection")

    with pytest.raises(TransientError):
        call_with_retry(hangs, policy=policy, watch=watch)
    with pytest.raises(TransientError):
        call_with_retry(refused, policy=policy, watch=watch)
    with pytest.raises(NetworkError):
        call_with_retry(hangs, policy=policy, watch=watch)
