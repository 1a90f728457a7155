"""Anthropic's Message Batches API (``client.messages.batches``), on the ``anthropic`` SDK.

Facts this module relies on (Anthropic "Batch processing" guide and API reference for Message
Batches, 2026; the SDK's ``resources/messages/batches.py`` and ``types/messages/``):

* A batch is made with ``messages.batches.create(requests=[{"custom_id", "params"}])``:
  ``params`` are the Messages API parameters of one request, ``custom_id`` 1-64 characters of
  ``[a-zA-Z0-9_-]``, unique in the batch. A batch holds up to 100,000 requests or 256 MB,
  whichever comes first (the create request's JSON body).
* ``messages.batches.retrieve(id)`` gives ``processing_status`` ``in_progress``,
  ``canceling`` or ``ended``; ``request_counts`` (``processing``, ``succeeded``, ``errored``,
  ``canceled``, ``expired``; all but ``processing`` stay zero until the batch ends);
  ``cancel_initiated_at`` once a cancel was asked for; ``results_url`` once it ended. A batch
  not done within 24 hours expires: its unfinished requests end ``expired``.
* ``messages.batches.cancel(id)`` asks it to stop; it goes ``canceling``, then ``ended``, the
  requests it had not run ``canceled``, the finished ones kept.
* ``messages.batches.results(id)`` streams the JSONL at ``results_url``: one
  ``{"custom_id", "result"}`` line per request, ``result.type`` ``succeeded`` (with the
  ``message``), ``errored`` (an ``error`` response, ``{"type": "error", "error": {"type",
  "message"}}``), ``canceled`` or ``expired``. "Results are not guaranteed to be in the same
  order as requests": they are matched by ``custom_id``.
* Results stay available for 29 days; the price is half the standard one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator

import httpx2
from anthropic.types.messages import (
    MessageBatch,
    MessageBatchIndividualResponse,
)
from anthropic.types.messages.batch_create_params import Request

from loracap.core.backends.anthropic_claude import (
    BACKEND_NAME,
    ClaudeCaptioner,
    answer_text,
    message_params,
    usage_of,
)
from loracap.core.backends.anthropic_claude import create as create_captioner
from loracap.core.backends.base import (
    Answer,
    BackendConfig,
    connection_error,
    server_text,
    timeout_error,
)
from loracap.core.batches.base import (
    BatchRequest,
    BatchResult,
    BatchTooLargeError,
    CaptionerBatchService,
    JobState,
    JobStatus,
    Submitted,
)
from loracap.core.errors import CaptionError, ImageRejectedError

log = logging.getLogger(__name__)

#: The most requests one Message Batch holds.
MAX_REQUESTS = 100_000
#: The largest create request, in bytes of JSON: Anthropic takes 256 MB; read as 10^6 bytes a
#: megabyte, less a little for the envelope, so neither reading of "MB" is passed.
MAX_BYTES = 255_000_000
#: Each request's timeout (seconds) at least: a create request carries up to 256 MB.
MIN_TIMEOUT_S = 300.0

#: ``processing_status`` of a batch still at work.
_RUNNING = {"in_progress": JobState.RUNNING, "canceling": JobState.RUNNING}


class AnthropicBatchService(CaptionerBatchService[ClaudeCaptioner]):
    """Anthropic's Message Batches for one model (see the module's description), through a
    :class:`~loracap.core.backends.anthropic_claude.ClaudeCaptioner` (which it closes): each
    request is what the captioner's ``ask`` sends (:func:`message_params`), each answer is
    read as it reads one (:func:`answer_text`), and errors are mapped as it maps them.

    ``max_requests`` and ``max_bytes`` are a batch's limits (tests lower them).
    """

    backend = BACKEND_NAME

    def __init__(self, claude: ClaudeCaptioner, *, max_requests: int = MAX_REQUESTS,
                 max_bytes: int = MAX_BYTES) -> None:
        super().__init__(claude, max_requests=max_requests, max_bytes=max_bytes)

    def check(self) -> None:
        """Ask Anthropic for the newest batch of the key (``messages.batches.list(limit=1)``,
        one ``GET /v1/messages/batches?limit=1``), before any image is prepared. Raises the
        errors of :meth:`ClaudeCaptioner.ask`: :class:`~loracap.core.errors.AuthenticationError`
        for a refused key (401 ``authentication_error``), a lost connection, ..."""
        client = self._captioner.client
        self._captioner.call(lambda: client.messages.batches.list(limit=1))

    def submit(self, requests: Iterable[BatchRequest], *, display_name: str) -> Submitted:
        """Send the requests as one batch. A Message Batch carries no name or metadata:
        ``display_name`` is only logged, and a batch whose submission was interrupted before
        LoRACap stored its id cannot be looked up by it (this service has no ``find``). The
        requests are held in memory until they are sent: at most :attr:`max_bytes` of JSON.

        Raises :class:`BatchTooLargeError` past :attr:`max_requests` requests or
        :attr:`max_bytes` bytes, and the errors of :meth:`ClaudeCaptioner.ask` for the
        service's refusals (a refused key, no credit left, ...).
        """
        batch: list[Request] = []
        size = len('{"requests":[]}')
        for request in requests:
            item: Request = {"custom_id": request.key, "params": message_params(
                self.model, request.jpeg, request.prompt, request.json_schema)}
            # As the SDK's HTTP client writes the body: compact, UTF-8.
            size += len(json.dumps(item, ensure_ascii=False, separators=(",", ":"))
                        .encode("utf-8")) + (1 if batch else 0)
            batch.append(item)
            if len(batch) > self.max_requests:
                raise BatchTooLargeError(
                    f"A Claude batch holds at most {self.max_requests:,} images. Submit fewer "
                    "images at a time.")
            if size > self.max_bytes:
                raise BatchTooLargeError(
                    f"The requests pass the {self.max_bytes / 1e6:,.0f} MB a Claude batch "
                    f"holds (after {len(batch)} images). Submit fewer images at a time, or "
                    "smaller ones (--max-side).")
        if not batch:
            raise CaptionError("A batch job needs at least one image.")
        log.info("Claude batch %r: %d requests, %d bytes", display_name, len(batch), size)
        client = self._captioner.client
        created = self._captioner.call(lambda: client.messages.batches.create(requests=batch))
        state, remote = _state_of(created)
        return Submitted(created.id, state, remote)

    def status(self, remote_id: str) -> JobStatus:
        """Where the batch is, with its request counts (``succeeded`` and ``failed`` only
        once it ended: Anthropic counts them then)."""
        batch = self._retrieve(remote_id)
        state, remote = _state_of(batch)
        counts = batch.request_counts
        total = (counts.processing + counts.succeeded + counts.errored + counts.canceled
                 + counts.expired)
        if batch.processing_status != "ended":
            return JobStatus(state, remote, total=total)
        return JobStatus(state, remote, succeeded=counts.succeeded, failed=counts.errored,
                         total=total)

    def results(self, remote_id: str) -> Iterator[BatchResult]:
        """Every result of the batch, streamed from its ``results_url`` as it is read; nothing
        while it has none. A canceled or expired request yields nothing: it never ran, and
        the flow marks its image ``gone``. Raises the errors of :meth:`ClaudeCaptioner.ask`
        (a lost connection mid-stream included)."""
        if not self._retrieve(remote_id).results_url:
            return
        client = self._captioner.client
        stream = self._captioner.call(lambda: client.messages.batches.results(remote_id))
        try:
            lines = iter(stream)
            while True:
                try:
                    line = next(lines)
                except StopIteration:
                    return
                except httpx2.TimeoutException as exc:
                    raise timeout_error(self._captioner.service,
                                        self._captioner.timeout_s) from exc
                except httpx2.TransportError as exc:
                    raise connection_error(self._captioner.service, exc) from exc
                except ValueError as exc:
                    raise CaptionError(f"The results of Claude batch {remote_id} could not be "
                                       f"read (a line is not JSON: {exc}).") from exc
                result = self._result(line)
                if result is not None:
                    yield result
        finally:
            stream.close()

    def cancel(self, remote_id: str) -> None:
        """Ask Anthropic to stop the batch (it ends ``canceled``, keeping what it finished)."""
        client = self._captioner.client
        self._captioner.call(lambda: client.messages.batches.cancel(remote_id))

    def cleanup(self, remote_id: str, input_file: str) -> None:
        """Nothing to delete: a Message Batch uploads no file, and its results expire by
        themselves after 29 days."""

    def _retrieve(self, remote_id: str) -> MessageBatch:
        client = self._captioner.client
        return self._captioner.call(lambda: client.messages.batches.retrieve(remote_id))

    def _result(self, line: MessageBatchIndividualResponse) -> BatchResult | None:
        key = line.custom_id
        result = line.result
        if result.type == "succeeded":
            try:
                text = answer_text(result.message, self._captioner.service)
            except ImageRejectedError as exc:
                return BatchResult(key, error=str(exc), kind="rejected")
            return BatchResult(key, Answer(text, BACKEND_NAME, self.model, "",
                                           usage_of(result.message)))
        if result.type == "errored":
            error = result.error.error
            kind = "rejected" if error.type == "invalid_request_error" else "server"
            return BatchResult(key, error=f"{self._captioner.service} could not answer "
                                          f"({server_text(error.type, error.message)}).",
                               kind=kind)
        return None  # canceled or expired: never ran


def _state_of(batch: MessageBatch) -> tuple[JobState, str]:
    """The state of a batch: at work while ``in_progress``/``canceling``; once ``ended``,
    succeeded when every request ran (succeeded or errored), else cancelled when a cancel was
    asked for (``cancel_initiated_at``) and expired otherwise."""
    status = batch.processing_status
    if status in _RUNNING:
        return _RUNNING[status], status
    counts = batch.request_counts
    if counts.canceled == 0 and counts.expired == 0 and counts.processing == 0:
        return JobState.SUCCEEDED, status
    if batch.cancel_initiated_at is not None or (counts.canceled and not counts.expired):
        return JobState.CANCELLED, status
    return JobState.EXPIRED, status


def create(config: BackendConfig) -> AnthropicBatchService:
    """The batch service of a backend configuration (:mod:`loracap.core.batches.flow`): the
    Claude captioner of ``config`` (:func:`loracap.core.backends.anthropic_claude.create`),
    each request allowed at least :data:`MIN_TIMEOUT_S` seconds."""
    timeout_s = max(config.timeout_s, MIN_TIMEOUT_S)
    return AnthropicBatchService(create_captioner(dataclasses.replace(config,
                                                                      timeout_s=timeout_s)))

