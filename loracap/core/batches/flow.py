"""Captioning through a batch API, start to finish: submit, follow, fetch, cancel.

The command line (``loracap caption --batch``, ``loracap batch status|fetch|cancel``) and the
window run these same functions; they are plain Python on an open
:class:`~loracap.core.project.Project` and a :class:`~loracap.core.batches.base.BatchService`.

* :func:`submit_batch` chooses the images as a captioning run would (``--only missing`` by
  default; a person's caption is never replaced unless asked; images already waiting in
  another open job are left out so nobody pays twice), asks the service whether it takes the
  key (a refused key stops it there: nothing stored, nothing prepared), stores the job with a
  key per image *before* sending it, prepares each image as the one-by-one path does (an
  image whose pixels do not decode is marked invalid and left out; the file state of each
  one prepared is recorded, so the next export does not decode it again:
  :mod:`loracap.core.prepared_decodes`), and sends the job.
* :func:`refresh_job` asks the service where a job is and stores it.
* :func:`fetch_results` stores an ended job's results as they are read, matched to images by
  key (never by order), in small transactions: a caption with provenance ``generated`` and the
  job's name as its batch, a failure with its reason. Repeating a fetch stores nothing twice.
  When every result is read, the images left without one are marked ``gone``: they stay as they
  were, and the next run takes them again.
* :func:`cancel_job` asks the service to stop a job; what it finished is fetched as usual.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loracap.core.backends.base import BackendConfig, prepare_jpeg
from loracap.core.batches.base import (
    BATCH_BACKENDS,
    BatchJobRecord,
    BatchRequest,
    BatchResult,
    BatchService,
    BatchSettings,
    FindsJobs,
    ItemState,
    JobState,
)
from loracap.core.errors import (
    CancelledError,
    CaptionError,
    InputError,
    UndecodableImageError,
)
from loracap.core.prepared_decodes import PreparedDecodes
from loracap.core.prompts import (
    Instructions,
    Profile,
    build_instructions,
    limit_length,
    parse_answer,
    sanitize_text,
)

if TYPE_CHECKING:
    from loracap.core.project import CaptionMode, Project
    from loracap.core.project_batches import BatchOutcome

log = logging.getLogger(__name__)

#: Results stored per transaction while fetching, and the longest a fetched result waits for
#: its transaction (seconds): "each caption is saved as it is fetched".
FETCH_GROUP = 50
FETCH_GROUP_WAIT_S = 0.25

#: Threads that prepare a job's images (at most the machine's cores).
PREPARE_WORKERS = 8

#: Shown for the images of a job that was never submitted.
NOT_SUBMITTED = "the batch job was not submitted"


def batch_service(config: BackendConfig) -> BatchService:
    """The batch API of ``config``'s backend (one module of :mod:`loracap.core.batches` per
    service). Raises :class:`InputError` for a backend whose service has none."""
    if config.backend not in BATCH_BACKENDS:
        raise InputError(
            f"The {config.backend} backend has no batch API. Batch jobs go to "
            f"{', '.join(BATCH_BACKENDS[:-1])} or {BATCH_BACKENDS[-1]} (--backend).")
    module = importlib.import_module(f"loracap.core.batches.{config.backend}")
    service: BatchService = module.create(config)
    return service


def check_batchable(project: Project) -> None:
    """Raise :class:`InputError` when the project's captions cannot go through a batch API:
    multi-person captions take several requests per image, each depending on the last."""
    from loracap.core.captioning_people import people_options

    if people_options(project.settings) is not None:
        raise InputError(
            "Multi-person captions take several requests per image, each built on the last, "
            "so they cannot go through a batch API. Caption this project without --batch.")


def batch_settings(project: Project, *, max_side: int, overwrite_protected: bool
                   ) -> BatchSettings:
    """What the job's answers will be read with: the project's caption settings now."""
    settings = project.settings
    instructions = build_instructions(Profile(settings.profile), settings.custom_prompt,
                                      language=settings.language)
    return BatchSettings(
        profile=settings.profile, custom_prompt=settings.custom_prompt,
        language=settings.language, prompt=instructions.prompt,
        json_schema=instructions.json_schema, field_order=instructions.field_order,
        trigger=settings.trigger, prefix=settings.prefix, max_side=max_side,
        overwrite_protected=overwrite_protected)


def choose_images(project: Project, mode: CaptionMode, image_ids: Sequence[int] = (), *,
                  overwrite_protected: bool = False) -> tuple[list[int], int, int]:
    """``(images to submit, images with a person's caption left out, images left out because
    they wait in another open job)``."""
    chosen, protected = project.select_for_captioning(
        mode, tuple(image_ids), overwrite_protected=overwrite_protected)
    busy = project.images_in_open_batches()
    return [i for i in chosen if i not in busy], len(protected), len(set(chosen) & busy)


def image_key(image_id: int) -> str:
    """The key of an image's request (unique in a job; Anthropic's ``custom_id`` allows
    1-64 characters of letters, digits, ``-`` and ``_``)."""
    return f"image-{image_id}"


def submit_batch(
    project: Project,
    service: BatchService,
    image_ids: Sequence[int],
    settings: BatchSettings,
    *,
    base_url: str = "",
    on_prepared: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> BatchJobRecord:
    """Check the service's key (:meth:`BatchService.check`), store a job of ``image_ids``
    (state ``submitting``), prepare each image and send the job; the stored job, with the
    service's name. ``on_prepared(done, total)`` follows the preparation. An image that cannot
    be read is recorded as failed in the job (and marked invalid when its pixels do not
    decode) and left out of the requests.

    Raises :class:`InputError` for no images and the errors of the check (a refused key: an
    :class:`~loracap.core.errors.AuthenticationError`, a lost connection, ...) before anything
    is stored or prepared: no job is stored. Once the job is stored: :class:`CancelledError`
    when ``cancel`` is set during the preparation; the service's errors at submission (a job
    too large, a refusal after all, ...). In each of those cases the job is stored as failed,
    "not submitted".
    """
    if not image_ids:
        raise InputError("No images to submit.")
    # Minutes of preparing thousands of images would be lost on a key the service refuses.
    service.check()
    items = [(image_id, image_key(image_id)) for image_id in image_ids]
    job_id = project.add_batch_job(backend=service.backend, model=service.model,
                                   base_url=base_url, settings=settings.to_json(),
                                   items=items)
    paths = {record.id: record.abs_path for record in project.images_by_id(image_ids)}
    decodes = PreparedDecodes(project, paths)  # prepare_jpeg decodes whole
    try:
        requests = _requests(project, job_id, items, settings, paths,
                             decodes.recording(prepare_jpeg), on_prepared, cancel)
        name = display_name(project, project.batch_job(job_id))
        submitted = service.submit(requests, display_name=name)
    except BaseException as exc:
        if isinstance(exc, (CaptionError, InputError, CancelledError, OSError)):
            reason = f"not submitted: {exc}" if str(exc) else NOT_SUBMITTED
            project.update_batch_job(job_id, state=JobState.FAILED, error=reason)
            project.close_batch_job(job_id, NOT_SUBMITTED)
        raise  # anything else (a crash, Ctrl+C): the job stays "submitting", as it may be
    finally:
        decodes.save()  # the images prepared, sent or not
    project.set_batch_submitted(job_id, remote_id=submitted.remote_id, state=submitted.state,
                                remote_state=submitted.remote_state,
                                input_file=submitted.input_file)
    log.info("Submitted batch job %d as %s (%d images)", job_id, submitted.remote_id,
             len(items))
    return project.batch_job(job_id)


def _requests(project: Project, job_id: int, items: Sequence[tuple[int, str]],
              settings: BatchSettings, paths: Mapping[int, Path],
              prepare: Callable[[Path, int], bytes],
              on_prepared: Callable[[int, int], None] | None,
              cancel: threading.Event | None) -> Iterator[BatchRequest]:
    """The job's requests in ``items``' order, each image (its file in ``paths``, by id)
    prepared by ``prepare(path, max_side)`` on a small thread pool a few images ahead (Pillow
    decodes and resizes without the GIL), so a big job is prepared at the speed of the
    machine's cores while at most a few prepared images are held."""
    from loracap.core.project_batches import BatchOutcome

    workers = max(1, min(PREPARE_WORKERS, os.cpu_count() or 1))
    total = len(items)
    sent = 0
    with ThreadPoolExecutor(max_workers=workers,
                            thread_name_prefix="loracap-batch-prepare") as pool:
        ahead: deque[tuple[int, str, Future[bytes]]] = deque()
        pending = iter(items)

        def top_up() -> None:
            while len(ahead) < 2 * workers:
                item = next(pending, None)
                if item is None:
                    return
                image_id, key = item
                ahead.append((image_id, key, pool.submit(
                    prepare, paths[image_id], settings.max_side)))

        top_up()
        done = 0
        try:
            while ahead:
                if cancel is not None and cancel.is_set():
                    raise CancelledError("Cancelled before the batch job was sent.")
                image_id, key, future = ahead.popleft()
                top_up()
                done += 1
                try:
                    jpeg = future.result()
                except InputError as exc:
                    if isinstance(exc, UndecodableImageError):
                        project.mark_invalid(image_id, exc.reason)
                    project.store_batch_outcomes(job_id, [BatchOutcome(key, error=str(exc),
                                                                       kind="image")])
                else:
                    sent += 1
                    yield BatchRequest(key, jpeg, settings.prompt, settings.json_schema)
                if on_prepared is not None:
                    on_prepared(done, total)
        finally:
            for _, _, future in ahead:
                future.cancel()
    if sent == 0:
        raise InputError("None of the images could be read; nothing was sent.")


def display_name(project: Project, job: BatchJobRecord) -> str:
    """The name a job is submitted under: the project, the job's number and when it was
    made (``"LoRACap hall job 3 20261130T120000"``), so it is told apart from the jobs of other
    projects on the same key, and found again (:func:`refresh_job`)."""
    return f"LoRACap {project.path.stem} job {job.id} {job.created_at:%Y%m%dT%H%M%S}"


def refresh_job(project: Project, service: BatchService, job: BatchJobRecord
                ) -> BatchJobRecord:
    """Ask the service where ``job`` is and store it; the job as stored now. A job whose
    submission was interrupted before the service's name for it was stored (state
    ``submitting``) is looked for by its display name when the service can
    (:class:`~loracap.core.batches.base.FindsJobs`); found, it is followed as any job."""
    if job.fetched:
        return job
    if not job.remote_id:
        if job.state is JobState.SUBMITTING and isinstance(service, FindsJobs):
            found = service.find(display_name(project, job))
            if found is not None:
                log.info("Found the interrupted batch job %d as %s", job.id, found.remote_id)
                project.set_batch_submitted(job.id, remote_id=found.remote_id,
                                            state=found.state,
                                            remote_state=found.remote_state,
                                            input_file=found.input_file)
                return refresh_job(project, service, project.batch_job(job.id))
        return job
    status = service.status(job.remote_id)
    if (status.state, status.remote_state, status.error) != (job.state, job.remote_state,
                                                             job.error):
        project.update_batch_job(job.id, state=status.state, remote_state=status.remote_state,
                                 error=status.error)
    return project.batch_job(job.id)


@dataclass
class FetchSummary:
    """What a fetch stored: captions stored, results kept out of a person's caption (in the
    history), ``failed`` ``(image id, reason)``, images the job ended without a result for
    (``gone``), and whether the job was not ready (still running: nothing fetched)."""

    stored: int = 0
    kept: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    gone: int = 0
    not_ready: bool = False
    unknown_keys: int = 0


def fetch_results(
    project: Project,
    service: BatchService,
    job: BatchJobRecord,
    *,
    on_result: Callable[[int, str, str], None] | None = None,
) -> FetchSummary:
    """Store the results of ``job`` (refreshed first) as they are read; nothing when it has
    not ended (``not_ready``). ``on_result(image id, item state, caption body or reason)`` is
    called for each result stored, after its transaction. Raises the service's errors (what
    was stored before stays stored; a later fetch goes on from there) and
    :class:`InputError` for a job whose stored settings cannot be read.
    """

    job = refresh_job(project, service, job)
    summary = FetchSummary()
    if job.fetched:
        return summary
    if not job.state.ended:
        summary.not_ready = True
        return summary
    try:
        settings = BatchSettings.from_json(job.settings)
    except ValueError as exc:
        raise InputError(f"The settings of batch {job.name} cannot be read ({exc}).") from exc
    instructions = Instructions(Profile(settings.profile), settings.prompt,
                                settings.json_schema, settings.field_order, settings.language)
    items = project.batch_items(job.id)
    pending: list[tuple[BatchOutcome, int, str]] = []
    started = time.monotonic()

    def flush() -> None:
        nonlocal started
        if not pending:
            return
        states = project.store_batch_outcomes(job.id, [outcome for outcome, _, _ in pending])
        for (outcome, image_id, text), state in zip(pending, states, strict=True):
            if not state:
                continue
            if state == ItemState.DONE.value:
                summary.stored += 1
            elif state == ItemState.KEPT.value:
                summary.kept += 1
            else:
                summary.failed.append((image_id, outcome.error))
            if on_result is not None:
                on_result(image_id, state, text)
        pending.clear()
        started = time.monotonic()

    if job.remote_id:
        for result in service.results(job.remote_id):
            item = items.get(result.key)
            if item is None:
                summary.unknown_keys += 1
                log.warning("Batch %s returned a result for an unknown key %r", job.name,
                            result.key[:80])
                continue
            if item[1] != ItemState.WAITING.value:
                continue  # stored by an earlier fetch
            outcome = _outcome(result, settings, instructions, job)
            pending.append((outcome, item[0],
                            outcome.caption.body if outcome.caption else outcome.error))
            if len(pending) >= FETCH_GROUP or time.monotonic() - started >= FETCH_GROUP_WAIT_S:
                flush()
        flush()
    summary.gone = project.close_batch_job(job.id, _gone_reason(job.state))
    service.cleanup(job.remote_id, job.input_file)
    return summary


def _outcome(result: BatchResult, settings: BatchSettings, instructions: Instructions,
             job: BatchJobRecord) -> BatchOutcome:
    from loracap.core.project_batches import BatchOutcome
    from loracap.core.project_captions import CaptionToStore

    answer = result.answer
    if answer is None:
        return BatchOutcome(result.key, error=result.error or "no answer",
                            kind=result.kind or "rejected")
    # As the one-by-one path cleans an answer (captioning.caption_single): the backend's
    # cleaning, then no control character, lone surrogate or runaway length.
    body = parse_answer(answer.text, instructions, settings.trigger, settings.prefix)
    body = limit_length(" ".join(sanitize_text(body).split()), instructions.limits.body)
    if not body:
        return BatchOutcome(result.key, error="The model returned an empty caption.",
                            kind="rejected", usage=answer.usage)
    caption = CaptionToStore(0, body, backend=job.backend, model=job.model,
                             prompt=settings.prompt, usage=answer.usage, batch=job.remote_id)
    return BatchOutcome(result.key, caption=caption)


def _gone_reason(state: JobState) -> str:
    if state is JobState.CANCELLED:
        return "the batch job was cancelled before it got to this image"
    if state is JobState.EXPIRED:
        return "the batch job expired before it got to this image"
    if state is JobState.FAILED:
        return "the batch job failed"
    return "the batch job ended without a result for this image"


def cancel_job(project: Project, service: BatchService, job: BatchJobRecord) -> BatchJobRecord:
    """Ask the service to stop ``job`` (a job already ended is left as it is); the job as
    stored now. Its finished results are fetched as any ended job's."""
    if job.state.ended or job.fetched:
        return job
    if not job.remote_id:
        raise InputError(f"Batch {job.name} was never named by the service (LoRACap stopped "
                         "while submitting it); it cannot be cancelled from here.")
    service.cancel(job.remote_id)
    return refresh_job(project, service, job)
