"""The captioning runner against the fake Gemini server, through the real google-genai client."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core import pacing
from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.errors import AuthenticationError, NetworkError, QuotaExhaustedError
from loracap.core.project import CaptionMode, Project, Provenance
from loracap.core.prompts import Profile, build_instructions
from loracap.core.scan import scan_folder
from loracap.jobs.runner import WAIT_RATE_LIMIT, BatchOptions, BatchSummary, CaptionRunner
from tests.fakes.gemini_server import FakeGeminiServer, RecordedRequest, Reply
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 6, size=(320, 240))
    proj = Project.create(folder / "hall.loraproj", trigger="hall")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


def run_batch(qtbot, project: Project, server: FakeGeminiServer, *, key: str = "test-key",
              timeout_s: float = 10.0, base_url: str | None = None, profile: Profile =
              Profile.SPACE, start_hook=None, **options) -> tuple[BatchSummary, CaptionRunner,
                                                                  dict[str, list]]:
    options.setdefault("base_delay_s", 0.01)
    captioner = GeminiCaptioner(key, timeout_s=timeout_s, base_url=base_url or server.base_url)
    runner = CaptionRunner(project, captioner, build_instructions(profile),
                           BatchOptions(**options))
    seen: dict[str, list] = {"captioned": [], "failed": [], "progress": [], "retrying": [],
                             "waiting": [], "events": []}
    runner.captioned.connect(lambda i, b: seen["captioned"].append((i, b)))
    runner.failed.connect(lambda i, r: seen["failed"].append((i, r)))
    runner.progress.connect(lambda *a: seen["progress"].append(a))
    runner.retrying.connect(lambda *a: seen["retrying"].append(a))
    runner.waiting.connect(lambda *a: seen["waiting"].append(a))
    # Progress and waiting in the order they came, with the time they came.
    runner.progress.connect(lambda *a: seen["events"].append((time.monotonic(), "progress", a)))
    runner.waiting.connect(lambda *a: seen["events"].append((time.monotonic(), "waiting", a)))
    if start_hook:
        start_hook(runner, seen)
    with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
        runner.start()
    runner.wait()
    captioner.close()
    return blocker.args[0], runner, seen


def captions(project: Project) -> dict[str, str]:
    return {rec.path: rec.caption.body for rec in project.images() if rec.caption}


def test_every_image_is_captioned_and_stored(qtbot, project: Project,
                                             server: FakeGeminiServer) -> None:
    summary, _, seen = run_batch(qtbot, project, server)
    assert (summary.total, summary.done, summary.failed, summary.stop_error) == (6, 6, [], None)
    stored = captions(project)
    assert len(stored) == 6 and len(set(stored.values())) == 6  # one caption per image
    assert all(rec.caption.provenance is Provenance.GENERATED  # type: ignore[union-attr]
               for rec in project.images())
    assert sorted(b for _, b in seen["captioned"]) == sorted(stored.values())
    assert seen["progress"][-1][:3] == (6, 0, 6)
    request = server.generate_requests[0]
    assert request.image[:2] == b"\xff\xd8"  # JPEG bytes were sent
    assert request.api_key == "test-key"


def test_concurrency_never_exceeds_the_worker_count(qtbot, project: Project,
                                                    server: FakeGeminiServer) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(request: RecordedRequest) -> Reply:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return Reply.caption(f"room {len(request.image)}")

    server.responder = slow
    summary, _, _ = run_batch(qtbot, project, server, workers=2, rpm=1000)
    assert summary.done == 6
    assert state["max"] == 2


def test_requests_per_minute_are_enforced_on_the_client(qtbot, project: Project,
                                                        server: FakeGeminiServer) -> None:
    summary, _, _ = run_batch(qtbot, project, server, workers=4, rpm=3, rate_period_s=1.0)
    assert summary.done == 6
    arrivals = sorted(r.arrived for r in server.generate_requests)
    # Any three consecutive starts after the first three wait for the window to move on.
    assert arrivals[3] - arrivals[0] >= 1.0
    assert arrivals[5] - arrivals[2] >= 1.0


def test_limit_above_the_real_quota_absorbs_429s(qtbot, project: Project) -> None:
    with FakeGeminiServer(rpm_limit=2, window_s=1.0) as server:
        summary, _, _ = run_batch(qtbot, project, server, workers=4, rpm=100,
                                  rate_period_s=1.0)
        assert server.rate_limited_count > 0
    assert summary.done == 6 and summary.failed == []


def test_per_day_quota_stops_the_batch_and_keeps_finished_work(
    qtbot, project: Project
) -> None:
    with FakeGeminiServer(daily_limit=3) as server:
        summary, _, _ = run_batch(qtbot, project, server, workers=1)
    assert isinstance(summary.stop_error, QuotaExhaustedError)
    assert "daily quota is used up" in str(summary.stop_error)
    assert summary.done == 3 and len(captions(project)) == 3
    assert summary.stop_error.exit_code == 4
    # The images the quota stop left are uncaptioned, not failed: the next run takes them.
    assert project.stats().failed == 0 and summary.failed == []
    assert all(rec.last_error == "" for rec in project.images())
    assert len(project.select_for_captioning(CaptionMode.MISSING)[0]) == 3


def test_invalid_key_stops_after_the_first_answer(qtbot, project: Project,
                                                  server: FakeGeminiServer) -> None:
    summary, _, _ = run_batch(qtbot, project, server, key="bad-key", workers=1)
    assert isinstance(summary.stop_error, AuthenticationError)
    assert len(server.generate_requests) == 1
    assert summary.done == 0 and captions(project) == {}


def test_a_stopped_batch_marks_no_image_failed(qtbot, project: Project,
                                               server: FakeGeminiServer) -> None:
    server.latency_s = 0.2  # several requests in flight when the key is refused
    summary, _, seen = run_batch(qtbot, project, server, key="bad-key", workers=3)
    assert isinstance(summary.stop_error, AuthenticationError)
    assert seen["failed"] == [] and summary.failed == []
    assert summary.not_started == 6
    stats = project.stats()
    assert (stats.captioned, stats.failed) == (0, 0)
    assert [rec.last_error for rec in project.images()] == [""] * 6
    assert project.select_for_captioning(CaptionMode.FAILED) == ([], [])
    # With a good key the same images are captioned: nothing was lost or marked.
    summary, _, _ = run_batch(qtbot, project, server)
    assert (summary.total, summary.done) == (6, 6)


def test_an_earlier_failure_stays_as_it_was_after_a_stop(qtbot, project: Project,
                                                         server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.blocked("SAFETY"))
    first, _, _ = run_batch(qtbot, project, server, workers=1, mode=CaptionMode.ALL)
    failed_id = first.failed[0][0]
    reason = project.image(failed_id).last_error
    summary, _, _ = run_batch(qtbot, project, server, key="bad-key", mode=CaptionMode.FAILED)
    assert isinstance(summary.stop_error, AuthenticationError)
    assert project.image(failed_id).last_error == reason  # not replaced by the key error


def test_a_blocked_image_fails_with_its_reason_and_the_batch_goes_on(
    qtbot, project: Project, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.blocked("SAFETY"))
    summary, _, seen = run_batch(qtbot, project, server, workers=1)
    assert summary.done == 5 and len(summary.failed) == 1 and summary.stop_error is None
    failed_id, reason = seen["failed"][0]
    assert "SAFETY" in reason
    assert project.image(failed_id).failed
    # "only failed" takes exactly that image again.
    summary, _, _ = run_batch(qtbot, project, server, mode=CaptionMode.FAILED)
    assert summary.total == 1 and summary.done == 1
    assert project.stats().captioned == 6


def test_server_errors_are_retried(qtbot, project: Project, server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.server_error(503), Reply.server_error(500),
                         Reply.server_error(502))
    summary, _, seen = run_batch(qtbot, project, server, workers=1)
    assert summary.done == 6 and summary.failed == []
    assert len(seen["retrying"]) == 3
    assert len(server.generate_requests) == 9


def test_timeouts_are_retried_then_fail_the_image(qtbot, project: Project,
                                                  server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.hang(5), Reply.hang(5))
    summary, _, seen = run_batch(qtbot, project, server, workers=1, timeout_s=1.0,
                                 max_attempts=2)
    assert summary.done == 5 and len(summary.failed) == 1
    assert "did not answer" in seen["failed"][0][1]


def test_unreachable_service_stops_the_batch(qtbot, project: Project,
                                             server: FakeGeminiServer) -> None:
    closed = FakeGeminiServer().start()
    url = closed.base_url
    closed.stop()
    summary, _, _ = run_batch(qtbot, project, server, base_url=url, workers=2, max_attempts=2)
    assert isinstance(summary.stop_error, NetworkError)
    assert summary.done == 0
    assert project.stats().failed == 0


def test_cancel_stops_new_requests_and_keeps_answers_in_flight(
    qtbot, project: Project, server: FakeGeminiServer
) -> None:
    server.latency_s = 0.3

    def cancel_after_first(runner: CaptionRunner, _seen: dict) -> None:
        runner.captioned.connect(lambda *_: runner.cancel())

    summary, _, _ = run_batch(qtbot, project, server, workers=2, start_hook=cancel_after_first)
    assert summary.cancelled and summary.not_started > 0
    # Every request that reached the server ended as a stored caption.
    assert len(server.generate_requests) == summary.done == len(captions(project))


def test_a_caption_edited_during_the_request_is_kept(qtbot, project: Project,
                                                     server: FakeGeminiServer) -> None:
    first = project.images()[0]

    def edit_meanwhile(request: RecordedRequest) -> Reply:
        if len(server.generate_requests) == 1:
            project.edit_caption(first.id, "a person's words")
        return Reply.caption(f"generated {len(request.image)}")

    server.responder = edit_meanwhile
    summary, _, _ = run_batch(qtbot, project, server, workers=1, mode=CaptionMode.ALL)
    assert summary.done == 6 and summary.kept == [first.id]
    rec = project.image(first.id)
    assert rec.caption and rec.caption.body == "a person's words"
    assert rec.caption.provenance is Provenance.MANUAL


def test_protected_captions_are_skipped_unless_overwrite(qtbot, project: Project,
                                                         server: FakeGeminiServer) -> None:
    first = project.images()[0]
    project.edit_caption(first.id, "mine")
    summary, _, _ = run_batch(qtbot, project, server, mode=CaptionMode.ALL)
    assert summary.total == 5 and summary.skipped_protected == 1
    assert project.image(first.id).caption.body == "mine"  # type: ignore[union-attr]
    summary, _, _ = run_batch(qtbot, project, server, mode=CaptionMode.ALL,
                              overwrite_protected=True)
    assert (summary.total, summary.done, summary.kept) == (6, 6, []), summary
    assert project.image(first.id).caption.provenance is Provenance.GENERATED  # type: ignore
    assert "mine" in [v.body for v in project.history(first.id)]


def test_nothing_to_do_still_finishes(qtbot, project: Project, server: FakeGeminiServer) -> None:
    run_batch(qtbot, project, server)
    summary, _, _ = run_batch(qtbot, project, server)  # only missing: none left
    assert summary.total == 0 and summary.done == 0 and not server.generate_requests[6:]


def test_a_wait_for_the_rate_limit_is_reported_with_a_countdown(
    qtbot, project: Project, server: FakeGeminiServer
) -> None:
    # The server answers the first request with a per-minute 429 asking for 3.5 s: every
    # worker is held back that long.
    server.queue_replies(Reply.rate_limited(retry_delay_s=3.5))
    started = time.monotonic()
    summary, _, seen = run_batch(qtbot, project, server, workers=2, rpm=1000)
    assert summary.done == 6 and summary.failed == []
    waits = [args for _, kind, args in seen["events"] if kind == "waiting"]
    limited = [seconds for seconds, reason in waits if reason == WAIT_RATE_LIMIT]
    assert 2.5 < limited[0] <= 3.5  # reported as soon as the 429 came back
    assert len(limited) >= 3  # re-emitted every second while it lasts...
    assert limited == sorted(limited, reverse=True) and limited[-1] < 1.5  # ...counting down
    assert waits[-1] == (0.0, "")  # and over before the batch ends
    assert {reason for _, reason in waits} == {WAIT_RATE_LIMIT, ""}
    # While waiting, progress is re-emitted with an estimate that includes the wait and
    # counts down with it.
    first_wait = next(t for t, kind, args in seen["events"] if kind == "waiting" and args[1])
    wait_over = next(t for t, kind, args in seen["events"]
                     if kind == "waiting" and not args[1] and t > first_wait)
    during = [(t, args) for t, kind, args in seen["events"]
              if kind == "progress" and first_wait < t < wait_over]
    assert len(during) >= 2
    for t, (done, failed, total, eta) in during:
        assert done <= 1 and (failed, total) == (0, 6)  # the other worker's first answer
        assert eta >= started + 3.5 - t - 0.5  # at least the rest of the wait
    etas = [args[3] for _, args in during]
    assert etas == sorted(etas, reverse=True)
    assert seen["progress"][-1][:3] == (6, 0, 6)


def test_a_retry_after_a_server_error_is_reported_with_its_cause(
    qtbot, project: Project, server: FakeGeminiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A seeded generator makes the backoff before the retry known: 1.69 s of at most 2 s.
    monkeypatch.setattr(pacing, "random", random.Random(0))
    delay = random.Random(0).uniform(0, 2.0)
    server.queue_replies(Reply.server_error(503))
    summary, _, seen = run_batch(qtbot, project, server, workers=1, base_delay_s=1.0)
    assert summary.done == 6 and len(seen["retrying"]) == 1
    assert seen["retrying"][0][2] == pytest.approx(delay)
    server_waits = [seconds for seconds, reason in seen["waiting"] if reason == "server"]
    assert server_waits and delay - 0.5 < server_waits[0] <= delay
    assert server_waits == sorted(server_waits, reverse=True)
    assert seen["waiting"][-1] == (0.0, "")


def test_no_wait_is_reported_when_nothing_waits(qtbot, project: Project,
                                                server: FakeGeminiServer) -> None:
    summary, _, seen = run_batch(qtbot, project, server, workers=2, rpm=1000)
    assert summary.done == 6 and seen["waiting"] == []


# --- bad answers, hanging servers, Ctrl+C -------------------------------------------------------


def test_bad_answers_fail_or_are_cleaned_and_the_batch_goes_on(qtbot, project: Project,
                                                               server: FakeGeminiServer) -> None:
    fields = {"key_objects": ["chairs"], "lighting": "daylight", "contextual_details": "quiet"}
    server.queue_replies(
        Reply.json({"room_type": "atrium \ud800", **fields}),  # a lone surrogate
        Reply.json({"room_type": "atrium\x00\x1b[2J\x1b]0;pwned\x07", **fields}),  # NUL, ESC
        Reply.caption("a chair, " * 1_200_000),  # 10.8 MB
        Reply.caption("\x00\x1b[0m"),  # nothing left: an empty answer
    )
    summary, _, seen = run_batch(qtbot, project, server, workers=1)
    assert summary.stop_error is None and summary.done == 4 and len(summary.failed) == 2
    order = [rec.path for rec in project.images()]  # captioned in this order, one worker
    stored = captions(project)
    assert stored[order[0]] == "atrium \ufffd, chairs, daylight, quiet"
    assert stored[order[1]] == "atrium, chairs, daylight, quiet"
    reasons = dict(seen["failed"])
    by_path = {rec.path: rec.id for rec in project.images()}
    assert "too long to be a caption (10,800,000 characters" in reasons[by_path[order[2]]]
    assert "empty answer" in reasons[by_path[order[3]]]
    assert project.stats().failed == 2
    for body in stored.values():
        body.encode("utf-8")
        assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in body)
    size = sum(p.stat().st_size for p in project.path.parent.glob("hall.loraproj*"))
    assert size < 2_000_000  # the 10 MB answer was not stored


def test_a_service_that_stops_answering_stops_the_batch_after_three_timeouts(
    qtbot, project: Project, server: FakeGeminiServer
) -> None:
    server.reply_always(Reply.hang(30))
    started = time.monotonic()
    summary, _, seen = run_batch(qtbot, project, server, workers=2, timeout_s=0.5, rpm=1)
    elapsed = time.monotonic() - started
    assert isinstance(summary.stop_error, NetworkError)
    assert str(summary.stop_error) == (
        "The captioning service is not answering: 3 requests in a row got no answer in time "
        "(Gemini did not answer within 0.5 s).")
    # rpm=1: retries that waited for the rate limit would take a minute each.
    assert elapsed < 15, elapsed
    assert 3 <= len(server.generate_requests) <= 4  # not 6 images x 5 attempts
    assert summary.done == 0 and summary.failed == [] and seen["failed"] == []
    assert project.stats().failed == 0  # a stop, not failures: the next run takes them all


def test_abort_drops_the_requests_waiting_for_an_answer(qtbot, project: Project,
                                                       server: FakeGeminiServer) -> None:
    server.reply_always(Reply.hang(30))
    server.queue_replies(Reply.json({"room_type": "first"}), Reply.json({"room_type": "second"}))
    aborted: list[float] = []

    def abort_when_two_hang(runner: CaptionRunner, _seen: dict) -> None:
        def check() -> None:
            if len(server.generate_requests) >= 4 and not aborted:
                time.sleep(0.2)  # both hanging requests are sent and waiting
                aborted.append(time.monotonic())
                runner.abort()

        runner.progress.connect(lambda *_: check())  # re-emitted every second while running

    summary, _, _ = run_batch(qtbot, project, server, workers=2, timeout_s=30,
                              start_hook=abort_when_two_hang)
    assert aborted and time.monotonic() - aborted[0] < 3  # not the 30 s timeout
    assert summary.cancelled and summary.stop_error is None
    assert (summary.done, summary.failed, summary.not_started) == (2, [], 4)
    assert sorted(captions(project).values()) == ["first", "second"]
    assert project.stats().failed == 0
