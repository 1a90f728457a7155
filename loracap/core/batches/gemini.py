"""Gemini's Batch API (``client.batches``), on the ``google-genai`` SDK.

Facts this module relies on (Gemini API batch mode documentation, late 2026; the SDK's
``batches.py`` and ``files.py``):

* A job is made with ``batches.create(model=…, src=…)``. ``src`` is a list of inline requests
  -- up to 20 MB for the whole create request -- or the name of a JSONL file uploaded through
  the File API (``files.upload``, up to 2 GB), one ``{"key": …, "request": {…}}`` line per
  request, ``request`` being a ``GenerateContentRequest`` in the REST API's JSON.
* A job's state is ``JOB_STATE_PENDING``, ``_RUNNING``, ``_SUCCEEDED``, ``_FAILED``,
  ``_CANCELLED`` or ``_EXPIRED`` (a job not done within 48 hours expires); ``batches.cancel``
  asks it to stop.
* Results: ``dest.inlined_responses`` for inline requests, each with the ``metadata`` it was
  sent with, a ``response`` or an ``error``; else ``dest.file_name``, a JSONL file to download
  (``files.download``), one ``{"key", "response"}`` or ``{"key", "error"}`` line each. The
  order is not the request order (google-genai issue #1909): results are matched by key.
* The price is half the standard one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from google.genai import types

from loracap.core.backends.base import Answer, BackendConfig
from loracap.core.backends.gemini import (
    BACKEND_NAME,
    GeminiCaptioner,
    answer_text,
    generate_config,
    usage_of,
)
from loracap.core.batches.base import (
    BatchRequest,
    BatchResult,
    BatchTooLargeError,
    Closing,
    JobState,
    JobStatus,
    Submitted,
)
from loracap.core.defaults import DEFAULT_MODEL
from loracap.core.errors import CaptionError, ImageRejectedError
from loracap.core.prompts import sanitize_text

log = logging.getLogger(__name__)

#: The largest batch of inline requests, in bytes of JSON: Gemini takes up to 20 MB in one
#: create request; a little is kept for the envelope.
INLINE_LIMIT_BYTES = 19_000_000

#: The largest request file the File API takes (2 GB).
FILE_LIMIT_BYTES = 2_000_000_000

#: Jobs looked through by :meth:`GeminiBatchService.find` (the newest first).
FIND_LIMIT = 1000

#: The key of a request travels in its ``metadata`` under this name (inline requests) or as
#: the line's ``key`` (a request file).
KEY = "key"

_STATES = {
    "JOB_STATE_PENDING": JobState.PENDING, "JOB_STATE_QUEUED": JobState.PENDING,
    "JOB_STATE_RUNNING": JobState.RUNNING, "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.SUCCEEDED, "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_CANCELLING": JobState.RUNNING, "JOB_STATE_CANCELLED": JobState.CANCELLED,
    "JOB_STATE_EXPIRED": JobState.EXPIRED,
}


class GeminiBatchService(Closing):
    """Gemini's Batch API for one model (see the module's description); errors are mapped
    as :class:`~loracap.core.backends.gemini.GeminiCaptioner` maps them.

    ``inline_limit`` (bytes) chooses between inline requests and a request file; tests lower
    it to take the file path with small images.
    """

    backend = BACKEND_NAME

    def __init__(self, api_key: str, model: str = DEFAULT_MODEL, *, timeout_s: float = 300.0,
                 base_url: str | None = None, inline_limit: int = INLINE_LIMIT_BYTES) -> None:
        self._gemini = GeminiCaptioner(api_key, model, timeout_s=timeout_s, base_url=base_url)
        self.model = self._gemini.model
        self.inline_limit = inline_limit

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._gemini.close()

    def check(self) -> None:
        """Ask Gemini for the newest batch job of the key (``batches.list`` with
        ``page_size`` 1: one ``GET /{version}/batches?pageSize=1``, made when the SDK's pager
        is created), before any image is prepared. Raises the errors of
        :meth:`GeminiCaptioner.ask`: :class:`~loracap.core.errors.AuthenticationError` for a
        refused key (Gemini's 400 ``API_KEY_INVALID``, a 401 or 403), a lost connection, ..."""
        client = self._gemini.client
        self._gemini.call(lambda: client.batches.list(
            config=types.ListBatchJobsConfig(page_size=1)))

    def submit(self, requests: Iterable[BatchRequest], *, display_name: str) -> Submitted:
        """Send the requests as one job: inline when their JSON stays under
        :attr:`inline_limit`, else as a JSONL file uploaded first (the file is written to a
        temporary file as the requests come, so their images are not all held in memory).

        Raises the errors of :meth:`GeminiCaptioner.ask` for the service's refusals, and
        :class:`BatchTooLargeError` for a request file over 2 GB.
        """
        client = self._gemini.client
        inline: list[types.InlinedRequest] | None = []
        size = 0
        count = 0
        with tempfile.TemporaryDirectory(prefix="loracap-batch-") as folder:
            path = Path(folder) / "requests.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for request in requests:
                    line = json.dumps({KEY: request.key, "request": _rest_request(request)},
                                      ensure_ascii=False, separators=(",", ":"))
                    out.write(line + "\n")
                    size += len(line) + 1
                    count += 1
                    if size > FILE_LIMIT_BYTES:
                        raise BatchTooLargeError(
                            f"The requests pass the 2 GB a Gemini batch job can read (after "
                            f"{count} images). Submit fewer images at a time.")
                    if inline is not None and size <= self.inline_limit:
                        inline.append(_inline_request(request))
                    else:
                        inline = None
            if count == 0:
                raise CaptionError("A batch job needs at least one image.")
            if inline is not None:
                log.info("Gemini batch: %d inline requests, %d bytes", count, size)
                job = self._gemini.call(lambda: client.batches.create(
                    model=self.model, src=inline,
                    config=types.CreateBatchJobConfig(display_name=display_name)))
                return _submitted(job, "")
            log.info("Gemini batch: uploading %d requests, %d bytes", count, size)
            uploaded = self._gemini.call(lambda: client.files.upload(
                file=str(path), config=types.UploadFileConfig(
                    mime_type="jsonl", display_name=display_name)))
        file_name = uploaded.name or ""
        job = self._gemini.call(lambda: client.batches.create(
            model=self.model, src=file_name,
            config=types.CreateBatchJobConfig(display_name=display_name)))
        return _submitted(job, file_name)

    def status(self, remote_id: str) -> JobStatus:
        """Where the job is (Gemini does not count its requests through this API)."""
        job = self._get(remote_id)
        state, remote = _state_of(job)
        error = ""
        if job.error is not None and job.error.message:
            error = _clean(job.error.message)
        return JobStatus(state, remote, error=error)

    def results(self, remote_id: str) -> Iterator[BatchResult]:
        """Every result of the job: the inline responses, or the lines of its result file
        (downloaded whole: at most the size of the answers, text). Nothing when the job has
        none (yet)."""
        job = self._get(remote_id)
        dest = job.dest
        if dest is None:
            return
        if dest.inlined_responses:
            for item in dest.inlined_responses:
                key = (item.metadata or {}).get(KEY, "")
                if item.error is not None:
                    yield BatchResult(key, error=_job_error(item.error.code, item.error.message),
                                      kind=_error_kind(item.error.code))
                elif item.response is not None:
                    yield self._result(key, item.response)
                else:
                    yield BatchResult(key, error="Gemini returned no answer.", kind="rejected")
            return
        if dest.file_name:
            client = self._gemini.client
            data = self._gemini.call(lambda: client.files.download(file=dest.file_name or ""))
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if line.strip():
                    yield self._file_result(line, number)

    def find(self, display_name: str) -> Submitted | None:
        """The newest job submitted with ``display_name`` among the newest
        :data:`FIND_LIMIT` jobs of the key's project, or None; with the request file uploaded
        under the same display name (:meth:`submit` names it so), so it is deleted once the
        results are fetched."""
        client = self._gemini.client

        def look() -> tuple[types.BatchJob, str] | None:
            jobs = client.batches.list(config=types.ListBatchJobsConfig(page_size=100))
            job = _first_named(jobs, display_name)
            if job is None:
                return None
            files = client.files.list(config=types.ListFilesConfig(page_size=100))
            upload = _first_named(files, display_name)
            return job, (upload.name or "") if upload is not None else ""

        found = self._gemini.call(look)
        return _submitted(*found) if found is not None else None

    def cancel(self, remote_id: str) -> None:
        """Ask Gemini to stop the job."""
        client = self._gemini.client
        self._gemini.call(lambda: client.batches.cancel(name=remote_id))

    def cleanup(self, remote_id: str, input_file: str) -> None:
        """Delete the uploaded request file (files expire after 48 hours anyway); a failure
        is only logged."""
        if not input_file:
            return
        client = self._gemini.client
        try:
            self._gemini.call(lambda: client.files.delete(name=input_file))
        except CaptionError as exc:
            log.info("Could not delete %s of %s: %s", input_file, remote_id, exc)

    def _get(self, remote_id: str) -> types.BatchJob:
        client = self._gemini.client
        return self._gemini.call(lambda: client.batches.get(name=remote_id))

    def _result(self, key: str, response: types.GenerateContentResponse) -> BatchResult:
        try:
            text = answer_text(response)
        except ImageRejectedError as exc:
            return BatchResult(key, error=str(exc), kind="rejected")
        return BatchResult(key, Answer(text, BACKEND_NAME, self.model, "", usage_of(response)))

    def _file_result(self, line: str, number: int) -> BatchResult:
        try:
            item = json.loads(line)
        except ValueError:
            log.warning("Gemini batch result line %d is not JSON; skipped", number)
            return BatchResult("", error="not JSON", kind="server")
        if not isinstance(item, dict):
            return BatchResult("", error="not a JSON object", kind="server")
        key = str(item.get(KEY, ""))
        error = item.get("error")
        if isinstance(error, dict):
            return BatchResult(key, error=_job_error(error.get("code"), error.get("message")),
                               kind=_error_kind(error.get("code")))
        response = item.get("response")
        if not isinstance(response, dict):
            return BatchResult(key, error="Gemini returned no answer.", kind="rejected")
        return self._result(key, _response_from_json(response))


_Named = TypeVar("_Named", types.BatchJob, types.File)


def _first_named(items: Iterable[_Named], display_name: str) -> _Named | None:
    """The first of ``items`` (the newest first) called ``display_name``, looking at most at
    :data:`FIND_LIMIT`."""
    for count, item in enumerate(items):
        if item.display_name == display_name:
            return item
        if count + 1 >= FIND_LIMIT:
            break
    return None


def _rest_request(request: BatchRequest) -> dict[str, Any]:
    """A ``GenerateContentRequest`` in the REST API's JSON: the image, then the prompt (as
    :meth:`GeminiCaptioner.ask` sends them), and the structured-answer options."""
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/jpeg",
                        "data": base64.b64encode(request.jpeg).decode("ascii")}},
        {"text": request.prompt},
    ]}]}
    if request.json_schema is not None:
        body["generationConfig"] = {"responseMimeType": "application/json",
                                    "responseJsonSchema": request.json_schema}
    return body


def _inline_request(request: BatchRequest) -> types.InlinedRequest:
    contents = [types.Content(role="user", parts=[
        types.Part.from_bytes(data=request.jpeg, mime_type="image/jpeg"),
        types.Part.from_text(text=request.prompt),
    ])]
    config = generate_config(request.json_schema)
    return types.InlinedRequest(contents=contents, metadata={KEY: request.key},
                                config=types.GenerateContentConfig(
                                    response_mime_type=config.response_mime_type,
                                    response_json_schema=config.response_json_schema))


def _response_from_json(data: dict[str, Any]) -> types.GenerateContentResponse:
    """A ``GenerateContentResponse`` from a result file's REST JSON, read the way the SDK
    reads an inline one (unknown fields ignored)."""
    from google.genai import batches

    convert = getattr(batches, "_GenerateContentResponse_from_mldev", None)
    converted = convert(data) if convert is not None else data
    return types.GenerateContentResponse._from_response(response=converted, kwargs={})


def _submitted(job: types.BatchJob, input_file: str) -> Submitted:
    state, remote = _state_of(job)
    if not job.name:
        raise CaptionError("Gemini accepted the batch job but did not name it.")
    return Submitted(job.name, state if state is not JobState.SUBMITTING else JobState.PENDING,
                     remote, input_file)


def _state_of(job: types.BatchJob) -> tuple[JobState, str]:
    remote = str(getattr(job.state, "value", job.state or ""))
    return _STATES.get(remote, JobState.PENDING), remote


def _error_kind(code: object) -> str:
    try:
        status = int(str(code))
    except ValueError:
        return "server"
    return "rejected" if 400 <= status < 500 else "server"


def _job_error(code: object, message: object) -> str:
    text = _clean(str(message or "")) or "no reason given"
    return f"Gemini could not answer ({code}: {text})." if code else f"Gemini: {text}."


def _clean(text: str) -> str:
    return " ".join(sanitize_text(text).split())[:300]


def create(config: BackendConfig) -> GeminiBatchService:
    """The batch service of a backend configuration (:mod:`loracap.core.batches.flow`)."""
    limit = os.environ.get("LORACAP_GEMINI_INLINE_LIMIT", "")
    return GeminiBatchService(
        config.api_key, config.model or DEFAULT_MODEL, base_url=config.base_url or None,
        inline_limit=int(limit) if limit.isdigit() else INLINE_LIMIT_BYTES)
