"""Captioning one image, start to finish: prepare, ask the backend (with retries), store.

This is the unit of work of a captioning batch; :mod:`loracap.jobs.runner` runs many of them on
worker threads. It is plain Python, so tests and other front ends can call it directly.

Outcomes:

* success -- the caption body is committed to the project before :func:`caption_image` returns
  (unless a person edited the caption meanwhile: then the generated text goes to the history);
* a per-image failure (unreadable image, safety block, empty answer, retries used up on a
  timeout or a server error) -- recorded in the project with its reason, returned as failed;
  the batch goes on;
* a batch-stopping failure (invalid key, per-day quota, network unreachable, unknown model) --
  raised for the runner to stop the batch. Nothing is recorded on the image: the image did not
  fail, the batch stopped, so it stays exactly as it was (uncaptioned, not failed) and the next
  run takes it again (issue 9: "Stops are not failures").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from loracap.core.errors import (
    CaptionError,
    ImageRejectedError,
    InputError,
    NetworkError,
    TransientError,
)
from loracap.core.pacing import RateLimiter, RetryPolicy, call_with_retry
from loracap.core.prompts import Instructions

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)


class CaptionResult(Protocol):
    """What a backend returns: the cleaned caption body and where it came from (read-only, so
    a frozen dataclass such as :class:`loracap.core.gemini.GeneratedCaption` fits)."""

    @property
    def body(self) -> str: ...

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def prompt(self) -> str: ...


class Captioner(Protocol):
    """A captioning backend (:class:`loracap.core.gemini.GeminiCaptioner` is the first).

    ``caption`` must be safe to call from several threads at once and raise only
    :class:`~loracap.core.errors.CaptionError` subclasses for service failures.
    """

    def caption(
        self, jpeg: bytes, instructions: Instructions, *, trigger: str, prefix: str
    ) -> CaptionResult: ...


@dataclass(frozen=True)
class CaptionJob:
    """Everything the workers of one batch share. All members are thread-safe."""

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


@dataclass(frozen=True)
class ImageOutcome:
    """The result of captioning one image.

    ``stored`` is False when a person's caption was kept and the generated text went to the
    history only. ``error`` is the reason of a failure, ``""`` on success. ``request_s`` is how
    long the last request to the backend took, in seconds (0.0 when none was sent), for the
    runner's time estimate.
    """

    image_id: int
    ok: bool
    body: str = ""
    stored: bool = False
    error: str = ""
    kind: str = ""
    request_s: float = 0.0


def caption_image(
    job: CaptionJob,
    image_id: int,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
) -> ImageOutcome:
    """Caption one image of ``job.project`` and store the result.

    Raises :class:`~loracap.core.errors.CancelledError` if cancelled before the request was sent,
    and the batch-stopping errors (:class:`~loracap.core.errors.AuthenticationError`,
    :class:`~loracap.core.errors.QuotaExhaustedError`, :class:`NetworkError`, other
    :class:`CaptionError`) without recording anything on the image.
    """
    project = job.project
    record = project.image(image_id)

    timing = {"last": 0.0}

    def fail(message: str, kind: str) -> ImageOutcome:
        project.record_failure(image_id, message, kind=kind)
        log.info("Captioning %s failed: %s", record.path, message)
        return ImageOutcome(image_id, ok=False, error=message, kind=kind,
                            request_s=timing["last"])

    # Imported here, not at the top: the desktop window imports this module at startup (for the
    # Captioner protocol) and should not load Pillow until something is captioned.
    from loracap.core.imaging import prepare_for_upload

    try:
        jpeg = prepare_for_upload(record.abs_path, max_side=job.max_side)
    except InputError as exc:
        return fail(str(exc), "image")

    def request() -> CaptionResult:
        started = time.monotonic()
        try:
            return job.captioner.caption(
                jpeg, job.instructions, trigger=job.trigger, prefix=job.prefix
            )
        finally:
            timing["last"] = time.monotonic() - started

    try:
        result = call_with_retry(
            request, policy=job.policy, limiter=job.limiter, cancel=job.cancel,
            on_retry=on_retry,
        )
    except ImageRejectedError as exc:
        return fail(str(exc), "rejected")
    except TransientError as exc:
        if exc.kind == "connection":
            message = (
                f"Cannot reach the captioning service after {job.policy.max_attempts} "
                f"attempts ({exc})."
            )
            log.info("Captioning %s stopped the batch: %s", record.path, message)
            raise NetworkError(message) from exc
        return fail(f"{exc} (gave up after {job.policy.max_attempts} attempts)", exc.kind)
    except CaptionError as exc:
        log.info("Captioning %s stopped the batch: %s", record.path, exc)
        raise

    body = result.body.strip()
    if not body:
        return fail("The model returned an empty caption.", "rejected")
    stored = project.store_generated(
        image_id,
        body,
        backend=result.backend,
        model=result.model,
        prompt=result.prompt,
        overwrite_protected=job.overwrite_protected,
    )
    return ImageOutcome(image_id, ok=True, body=body, stored=stored, request_s=timing["last"])
