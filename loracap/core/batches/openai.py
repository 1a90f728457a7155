"""The OpenAI Batch API (``client.batches`` and ``client.files``), on the ``openai`` SDK.

Facts this module relies on (OpenAI "Batch API" guide and API reference for Batch and Files,
2026; the SDK's ``resources/batches.py``, ``resources/files.py`` and ``types/batch.py``):

* The requests go in a JSONL file, one ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions", "body"}`` line each, ``body`` being the endpoint's request body.
  The file is uploaded with ``files.create(file=…, purpose="batch")`` (multipart) and holds
  up to 50,000 requests and 200 MB; ``custom_id`` is unique in the file.
* ``batches.create(input_file_id=…, endpoint="/v1/chat/completions",
  completion_window="24h")`` starts a job; ``metadata`` takes up to 16 pairs of strings
  (values up to 512 characters). ``batches.retrieve(id)`` gives its ``status``
  (``validating``, ``in_progress``, ``finalizing``, ``completed``, ``failed``, ``expired``,
  ``cancelling``, ``cancelled``), ``request_counts`` (``total``, ``completed``,
  ``failed``), ``errors`` (why a file failed validation: ``data`` of ``{code, message,
  line}``), ``output_file_id`` and ``error_file_id``. ``batches.cancel(id)`` asks it to
  stop (``cancelling``, up to 10 minutes, then ``cancelled``).
* Results are read with ``files.content(id)``: the output file holds the answered requests,
  the error file the failed ones, one ``{"id", "custom_id", "response": {"status_code",
  "request_id", "body"}, "error": {"code", "message"}}`` line each (``response`` or
  ``error`` null). A request the job never ran is in the error file with ``error.code``
  ``batch_expired`` or ``batch_cancelled``; the completed requests of an expired or
  cancelled job are kept. "The output line order may not match the input line order":
  results are matched by ``custom_id``.
* Uploaded files with purpose ``batch`` expire after 30 days unless deleted
  (``files.delete``). The price is half the standard one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import openai
from openai.types import Batch
from openai.types.chat import ChatCompletion

from loracap.core.backends.base import Answer, BackendConfig, server_text
from loracap.core.backends.openai_compat import (
    BACKEND_NAME,
    OpenAICaptioner,
    answer_text,
    chat_body,
    error_message,
    usage_of,
    without_thinking,
)
from loracap.core.backends.openai_compat import create as create_captioner
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
from loracap.core.prompts import sanitize_text

log = logging.getLogger(__name__)

#: The most requests one request file holds.
MAX_REQUESTS = 50_000
#: The largest request file, in bytes: OpenAI takes 200 MB (read as 10^6 bytes a megabyte, so
#: neither reading of "MB" is passed).
MAX_BYTES = 200_000_000
#: The endpoint every request of a job goes to.
ENDPOINT: Final = "/v1/chat/completions"
#: Each request's timeout (seconds) at least: an upload carries up to 200 MB.
MIN_TIMEOUT_S = 300.0
#: Jobs looked through by :meth:`OpenAIBatchService.find` (the newest first).
FIND_LIMIT = 1000
#: The metadata key the display name travels under (values up to 512 characters).
NAME_KEY = "description"

_STATES = {
    "validating": JobState.PENDING, "in_progress": JobState.RUNNING,
    "finalizing": JobState.RUNNING, "cancelling": JobState.RUNNING,
    "completed": JobState.SUCCEEDED, "failed": JobState.FAILED, "expired": JobState.EXPIRED,
    "cancelled": JobState.CANCELLED,
}
#: ``error.code`` of a request the job never ran: not a failure (its image stays as it was).
_NEVER_RAN = frozenset({"batch_expired", "batch_cancelled"})
_SHOWN_ERRORS = 3
_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class OpenAIBatchService(CaptionerBatchService[OpenAICaptioner]):
    """The OpenAI Batch API for one model (see the module's description), through an
    :class:`~loracap.core.backends.openai_compat.OpenAICaptioner` (which it closes): each
    request's body is what the captioner's ``ask`` sends first (:func:`chat_body`, with the
    schema in the prompt when the server is known not to take ``response_format``), each
    answer is read as it reads one (:func:`answer_text`), and errors are mapped as it maps
    them.

    ``max_requests`` and ``max_bytes`` are a request file's limits (tests lower them).
    """

    backend = BACKEND_NAME

    def __init__(self, openai: OpenAICaptioner, *, max_requests: int = MAX_REQUESTS,
                 max_bytes: int = MAX_BYTES) -> None:
        super().__init__(openai, max_requests=max_requests, max_bytes=max_bytes)

    def check(self) -> None:
        """Ask the server for the newest batch job of the key (``batches.list(limit=1)``, one
        ``GET /v1/batches?limit=1``), before any image is prepared. Raises the errors of
        :meth:`OpenAICaptioner.ask`: :class:`~loracap.core.errors.AuthenticationError` for a
        refused key (401 ``invalid_api_key``), a lost connection, ...; and
        :class:`~loracap.core.errors.CaptionError` when the server has no ``/v1/batches``
        (404): OpenAI-compatible servers such as vLLM or llama.cpp answer one request at a
        time only."""
        captioner = self._captioner
        client = captioner.client
        try:
            captioner.call(lambda: client.batches.list(limit=1))
        except CaptionError as exc:
            if isinstance(exc.__cause__, openai.NotFoundError):
                raise CaptionError(
                    f"{captioner.service} has no Batch API (/v1/batches answered "
                    f"{exc.__cause__.status_code}). Caption without --batch, one image at a "
                    "time.") from exc
            raise

    def submit(self, requests: Iterable[BatchRequest], *, display_name: str) -> Submitted:
        """Write the requests to a JSONL file as they come (their images are not all held in
        memory), upload it, and start a job of it (``display_name`` goes into its metadata as
        ``description``, where :meth:`find` looks for it). When the job cannot be started,
        the uploaded file is deleted.

        Raises :class:`BatchTooLargeError` past :attr:`max_requests` requests or
        :attr:`max_bytes` bytes, and the errors of :meth:`OpenAICaptioner.ask` for the
        server's refusals (a refused key, no credit left, ...).
        """
        client = self._captioner.client
        count = 0
        size = 0
        with tempfile.TemporaryDirectory(prefix="loracap-batch-") as folder:
            path = Path(folder) / "requests.jsonl"
            with path.open("wb") as out:
                for request in requests:
                    prompt, schema = self._captioner.first_request(request.prompt,
                                                                   request.json_schema)
                    line = json.dumps({
                        "custom_id": request.key, "method": "POST", "url": ENDPOINT,
                        "body": chat_body(self.model, request.jpeg, prompt, schema),
                    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
                    out.write(line)
                    count += 1
                    size += len(line)
                    if count > self.max_requests:
                        raise BatchTooLargeError(
                            f"An OpenAI batch job holds at most {self.max_requests:,} images. "
                            "Submit fewer images at a time.")
                    if size > self.max_bytes:
                        raise BatchTooLargeError(
                            f"The requests pass the {self.max_bytes / 1e6:,.0f} MB an OpenAI "
                            f"batch file holds (after {count} images). Submit fewer images at "
                            "a time, or smaller ones (--max-side).")
            if count == 0:
                raise CaptionError("A batch job needs at least one image.")
            log.info("OpenAI batch %r: uploading %d requests, %d bytes", display_name, count,
                     size)
            name = _FILE_NAME_CHARACTERS.sub("-", display_name).strip("-") or "loracap"
            with path.open("rb") as data:
                uploaded = self._captioner.call(lambda: client.files.create(
                    file=(f"{name}.jsonl", data, "application/jsonl"), purpose="batch"))
        try:
            job = self._captioner.call(lambda: client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h",
                metadata={NAME_KEY: display_name[:512]}))
        except CaptionError:
            # Refused: the file would only wait 30 days for nothing. (A stop -- Ctrl+C --
            # keeps it: the job may have started, and find() may follow it.)
            self.cleanup("", uploaded.id)
            raise
        state, remote = _state_of(job)
        return Submitted(job.id, state, remote, uploaded.id)

    def status(self, remote_id: str) -> JobStatus:
        """Where the job is, its request counts, and why it failed (the reasons OpenAI gives
        for a request file it refused, with their line numbers)."""
        job = self._retrieve(remote_id)
        state, remote = _state_of(job)
        counts = job.request_counts
        if counts is None:
            return JobStatus(state, remote, error=_job_errors(job))
        return JobStatus(state, remote, succeeded=counts.completed, failed=counts.failed,
                         total=counts.total, error=_job_errors(job))

    def results(self, remote_id: str) -> Iterator[BatchResult]:
        """Every result of the job: the lines of its output file, then of its error file
        (each downloaded whole: at most the size of the answers, text); nothing when it has
        none (yet). A request the job never ran (``batch_expired``, ``batch_cancelled``)
        yields nothing: the flow marks its image ``gone``."""
        job = self._retrieve(remote_id)
        for file_id in (job.output_file_id, job.error_file_id):
            if not file_id:
                continue
            data = self._download(file_id)
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if line.strip():
                    result = self._result(line, file_id, number)
                    if result is not None:
                        yield result

    def find(self, display_name: str) -> Submitted | None:
        """The newest job submitted with ``display_name`` (its metadata's ``description``)
        among the newest :data:`FIND_LIMIT` jobs of the key, or None: a job whose submission
        was interrupted before LoRACap stored its id is found again instead of paid for
        twice."""
        client = self._captioner.client
        wanted = display_name[:512]

        def look() -> Batch | None:
            for count, job in enumerate(client.batches.list(limit=100)):
                if (job.metadata or {}).get(NAME_KEY) == wanted:
                    return job
                if count + 1 >= FIND_LIMIT:
                    break
            return None

        found = self._captioner.call(look)
        if found is None:
            return None
        state, remote = _state_of(found)
        return Submitted(found.id, state, remote, found.input_file_id)

    def cancel(self, remote_id: str) -> None:
        """Ask OpenAI to stop the job (it ends ``cancelled``, keeping what it finished)."""
        client = self._captioner.client
        self._captioner.call(lambda: client.batches.cancel(remote_id))

    def cleanup(self, remote_id: str, input_file: str) -> None:
        """Delete the uploaded request file (it would expire after 30 days); a failure is only
        logged."""
        if not input_file:
            return
        client = self._captioner.client
        try:
            self._captioner.call(lambda: client.files.delete(input_file))
        except CaptionError as exc:
            log.info("Could not delete %s of %s: %s", input_file, remote_id or "a batch", exc)

    def _download(self, file_id: str) -> bytes:
        client = self._captioner.client
        return self._captioner.call(lambda: client.files.content(file_id)).content

    def _retrieve(self, remote_id: str) -> Batch:
        client = self._captioner.client
        return self._captioner.call(lambda: client.batches.retrieve(remote_id))

    def _result(self, line: str, file_id: str, number: int) -> BatchResult | None:
        try:
            item = json.loads(line)
        except ValueError:
            log.warning("Line %d of OpenAI batch file %s is not JSON; skipped", number, file_id)
            return None
        if not isinstance(item, dict):
            return None
        key = str(item.get("custom_id") or "")
        error = item.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            if code in _NEVER_RAN:
                return None
            return BatchResult(key, error=self._reason(code or "error", error.get("message")),
                               kind="server")
        response = item.get("response")
        if not isinstance(response, dict):
            return BatchResult(key, error=f"{self._captioner.service} returned no answer.",
                               kind="server")
        status = response.get("status_code")
        body = response.get("body")
        if status != 200 or not isinstance(body, dict):
            return BatchResult(key, error=self._reason(status, error_message(body)),
                               kind=_error_kind(status))
        completion = ChatCompletion.construct(**body)
        try:
            text = answer_text(completion, self._captioner.service)
        except ImageRejectedError as exc:
            return BatchResult(key, error=str(exc), kind="rejected")
        # The one-by-one path drops a reasoning model's <think> block before it reads the
        # answer (OpenAICaptioner.caption); the flow reads the text as it is.
        return BatchResult(key, Answer(without_thinking(text), BACKEND_NAME, self.model, "",
                                       usage_of(completion)))

    def _reason(self, code: object, message: object) -> str:
        return f"{self._captioner.service} could not answer ({server_text(str(code), message)})."


def _state_of(job: Batch) -> tuple[JobState, str]:
    return _STATES.get(job.status, JobState.PENDING), job.status


def _job_errors(job: Batch) -> str:
    """The reasons OpenAI gives for a job that failed (``errors.data``), a few of them."""
    data = job.errors.data if job.errors is not None and job.errors.data else []
    parts: list[str] = []
    for error in data[:_SHOWN_ERRORS]:
        where = f"line {error.line}: " if error.line is not None else ""
        code = f" ({error.code})" if error.code else ""
        parts.append(f"{where}{error.message or 'no reason given'}{code}")
    if len(data) > _SHOWN_ERRORS:
        parts.append(f"and {len(data) - _SHOWN_ERRORS} more")
    return " ".join(sanitize_text("; ".join(parts)).split())[:500]


def _error_kind(status: object) -> str:
    """``rejected`` for a request the server refused (4xx but a timeout, a conflict or a rate
    limit), ``server`` otherwise."""
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
        return "rejected"
    return "server"


def create(config: BackendConfig) -> OpenAIBatchService:
    """The batch service of a backend configuration (:mod:`loracap.core.batches.flow`): the
    captioner of ``config`` (:func:`loracap.core.backends.openai_compat.create`: its base
    URL, whether the server takes ``response_format``, its model), each request allowed at
    least :data:`MIN_TIMEOUT_S` seconds."""
    timeout_s = max(config.timeout_s, MIN_TIMEOUT_S)
    return OpenAIBatchService(create_captioner(dataclasses.replace(config,
                                                                   timeout_s=timeout_s)))
