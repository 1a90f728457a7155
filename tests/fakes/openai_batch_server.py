"""A fake of the OpenAI Batch and Files APIs on 127.0.0.1, for the real ``openai`` client.

Routes, as the SDK calls them (its ``resources/files.py`` and ``resources/batches.py``), under
``base_url`` ``http://127.0.0.1:<port>/v1``:

* ``POST /v1/files`` (multipart: ``file`` and ``purpose``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``;
* ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window``,
  ``metadata``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, and
  ``GET /v1/batches?limit=&after=`` (the newest first, a cursor page).

Every route answers 401 ``invalid_api_key`` to a key other than ``api_key``; replies queued
on route ``"batches"`` answer the next ``POST /v1/batches`` first. A new job is
``validating``; a request file OpenAI would refuse (a line that is not JSON, a repeated or
missing ``custom_id``, another method or URL than the job's endpoint, a model the server does
not serve) makes it ``failed`` with ``errors`` naming the lines. The job stays ``validating``
(or ``in_progress`` after :meth:`FakeOpenAIBatchServer.start_running`) until the test calls
:meth:`finish` (answers the first ``done`` requests -- all by default -- and writes the output
and error files with their lines in REVERSED order, so a client matching by position gets them
wrong), :meth:`expire` or :meth:`progress` (answers some while it runs). A cancel keeps what
was answered, the rest going to the error file as ``batch_cancelled`` (at once, or at
:meth:`end_cancel` when ``cancel_at_once`` is False).

Answers come from :func:`tests.fakes.openai_server.default_responder` (a caption derived from
the image's bytes; JSON following a ``response_format`` schema) or the test's ``answer(custom_id,
request)``: a :class:`~tests.fakes.http_fake.HttpReply` of the Chat Completions API
(:class:`~tests.fakes.openai_server.OpenAIReply`); a 200 goes to the output file, an error to
the error file with its status and body. With ``accepts_response_format`` False a request
carrying ``response_format`` is answered as a server without it answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.batch_fake import FakeBatchServer
from tests.fakes.http_fake import HttpReply, RecordedRequest
from tests.fakes.openai_server import (
    DEFAULT_MODELS,
    ChatRequest,
    OpenAIReply,
    default_responder,
)
from tests.fakes.openai_server import _error as openai_error

#: ``answer(custom_id, request)`` -> the Chat Completions API's reply to that request.
Answerer = Callable[[str, ChatRequest], HttpReply]

DEFAULT_KEY = "sk-test"
ENDPOINT = "/v1/chat/completions"
_CREATED = 1_764_500_000
_NEVER_RAN = {
    "batch_expired": "This request could not be executed before the completion window "
                     "expired.",
    "batch_cancelled": "This request could not be executed because the batch was cancelled.",
}


@dataclass
class FakeFile:
    """An uploaded or generated file: ``id``, ``filename``, ``purpose``, ``data``."""

    id: str
    filename: str
    purpose: str
    data: bytes

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data),
                "created_at": _CREATED, "filename": self.filename, "purpose": self.purpose,
                "status": "processed", "expires_at": None, "status_details": None}


@dataclass
class FakeBatch:
    """One job as the fake holds it: the requests ``(custom_id, body)`` in order, its
    ``status``, the ``metadata`` it was made with, the answers so far by custom_id
    (``(status, body)``), ``errors`` of a refused file, and its result files."""

    id: str
    input_file_id: str
    requests: list[tuple[str, dict[str, Any]]]
    metadata: dict[str, Any]
    status: str = "validating"
    answered: dict[str, tuple[int, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None


class FakeOpenAIBatchServer(FakeBatchServer[FakeBatch]):
    """See the module's description. ``files`` and ``batches`` by id; ``deleted`` lists the
    ids of the files deleted, in order."""

    url_path = "/v1"
    name = "fake-openai-batch"

    def __init__(self, api_key: str = DEFAULT_KEY, models: Sequence[str] = DEFAULT_MODELS
                 ) -> None:
        super().__init__(api_key)
        self.models = list(models)
        self.accepts_response_format = True
        self.cancel_at_once = True
        self.files: dict[str, FakeFile] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.deleted: list[str] = []

    def held(self) -> dict[str, FakeBatch]:
        return self.batches

    # -- test control ------------------------------------------------------------------------

    def start_running(self, batch_id: str | None = None) -> None:
        """Move the job to ``in_progress``."""
        self._job(batch_id).status = "in_progress"

    def progress(self, batch_id: str | None = None, answer: Answerer | None = None, *,
                 done: int) -> FakeBatch:
        """Answer the job's first ``done`` requests; it stays at work (``in_progress``)."""
        batch = self._job(batch_id)
        batch.status = "in_progress"
        for custom_id, body in batch.requests[:done]:
            if custom_id not in batch.answered:
                batch.answered[custom_id] = self._answer(custom_id, body, answer)
        return batch

    def finish(self, batch_id: str | None = None, answer: Answerer | None = None, *,
               done: int | None = None, status: str = "completed") -> FakeBatch:
        """Answer the first ``done`` requests (all by default) and end the job in ``status``;
        the requests not answered go to the error file as ``batch_expired``."""
        batch = self.progress(batch_id, answer,
                              done=len(self._job(batch_id).requests) if done is None else done)
        self._end(batch, status, "batch_expired")
        return batch

    def expire(self, batch_id: str | None = None, *, done: int = 0) -> FakeBatch:
        """End the job at its 24 hours with the results of its first ``done`` requests."""
        return self.finish(batch_id, done=done, status="expired")

    def end_cancel(self, batch_id: str | None = None) -> FakeBatch:
        """End a ``cancelling`` job: what was answered is kept, the rest
        ``batch_cancelled``."""
        batch = self._job(batch_id)
        self._end(batch, "cancelled", "batch_cancelled")
        return batch

    def _end(self, batch: FakeBatch, status: str, never_ran: str) -> None:
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for number, (custom_id, _) in enumerate(batch.requests, 1):
            line: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": custom_id,
                                    "response": None, "error": None}
            if custom_id in batch.answered:
                code, body = batch.answered[custom_id]
                line["response"] = {"status_code": code, "request_id": f"req_{number}",
                                    "body": body}
                (output if code == 200 else errors).append(line)
            else:
                line["error"] = {"code": never_ran, "message": _NEVER_RAN[never_ran]}
                errors.append(line)
        if output:
            batch.output_file_id = self._add_file("batch_output.jsonl", "batch_output",
                                                  list(reversed(output)))
        if errors:
            batch.error_file_id = self._add_file("batch_errors.jsonl", "batch_output",
                                                 list(reversed(errors)))
        batch.status = status

    def _add_file(self, filename: str, purpose: str, lines: list[dict[str, Any]]) -> str:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        with self._state_lock:
            file = FakeFile(f"file-{next(self._ids)}", filename, purpose, data)
            self.files[file.id] = file
        return file.id

    def _answer(self, custom_id: str, body: dict[str, Any], answer: Answerer | None
                ) -> tuple[int, Any]:
        chat = ChatRequest.parse(RecordedRequest(0.0, "POST", ENDPOINT, body=body))
        if not self.accepts_response_format and chat.response_format is not None:
            reply = OpenAIReply.response_format_rejected()
        elif answer is not None:
            reply = answer(custom_id, chat)
        else:
            reply = default_responder(chat)
        return reply.status, reply.body

    # -- routing -----------------------------------------------------------------------------

    def refuse(self, request: RecordedRequest) -> HttpReply | None:
        if request.header("authorization") != f"Bearer {self.api_key}":
            return OpenAIReply.unauthorized()
        return None

    def route(self, request: RecordedRequest) -> HttpReply:
        parts = request.path.strip("/").split("/")[1:]  # without "v1"
        if parts == ["files"] and request.method == "POST":
            return self._upload(request)
        if parts == ["batches"] and request.method == "POST":
            queued = self.next_queued("batches")
            if queued is not None:
                return queued
            return self._create(request.body if isinstance(request.body, dict) else {})
        if parts == ["batches"] and request.method == "GET":
            return self._list(parse_qs(request.query))
        if len(parts) >= 2 and parts[0] == "files":
            file = self.files.get(parts[1])
            if file is None:
                return openai_error(404, f"No such File object: {parts[1]}",
                                    "invalid_request_error")
            if request.method == "DELETE" and len(parts) == 2:
                del self.files[file.id]
                self.deleted.append(file.id)
                return HttpReply.json({"id": file.id, "object": "file", "deleted": True})
            if request.method == "GET" and parts[2:] == ["content"]:
                return HttpReply(body=file.data, content_type="application/octet-stream")
            if request.method == "GET" and len(parts) == 2:
                return HttpReply.json(file.body())
        if len(parts) >= 2 and parts[0] == "batches":
            batch = self.batches.get(parts[1])
            if batch is None:
                return openai_error(404, f"No batch found with id '{parts[1]}'.",
                                    "invalid_request_error")
            if request.method == "POST" and parts[2:] == ["cancel"]:
                if batch.status in ("validating", "in_progress", "finalizing"):
                    batch.status = "cancelling"
                reply = HttpReply.json(self._body(batch))
                if self.cancel_at_once and batch.status == "cancelling":
                    self._end(batch, "cancelled", "batch_cancelled")
                return reply
            if request.method == "GET" and len(parts) == 2:
                return HttpReply.json(self._body(batch))
        return openai_error(404, f"Unknown path {request.path}", "invalid_request_error")

    def _upload(self, request: RecordedRequest) -> HttpReply:
        head = f"Content-Type: {request.header('content-type')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + request.raw)
        fields: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts() if isinstance(message, EmailMessage) else []:
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            fields[str(name)] = (part.get_filename() or "",
                                 payload if isinstance(payload, bytes) else b"")
        if "file" not in fields or "purpose" not in fields:
            return openai_error(400, "Missing file or purpose.", "invalid_request_error")
        filename, data = fields["file"]
        with self._state_lock:
            file = FakeFile(f"file-{next(self._ids)}", filename,
                            fields["purpose"][1].decode(), data)
            self.files[file.id] = file
        return HttpReply.json(file.body())

    def _create(self, body: dict[str, Any]) -> HttpReply:
        file = self.files.get(str(body.get("input_file_id")))
        if file is None:
            return openai_error(400, "Input file not found.", "invalid_request_error")
        if file.purpose != "batch":
            return openai_error(400, "The input file must be uploaded with purpose "
                                "'batch'.", "invalid_request_error")
        if body.get("endpoint") != ENDPOINT or body.get("completion_window") != "24h":
            return openai_error(400, "Unsupported endpoint or completion window.",
                                "invalid_request_error")
        requests: list[tuple[str, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        for number, text in enumerate(file.data.decode("utf-8", "replace").splitlines(), 1):
            problem = ""
            try:
                line = json.loads(text)
            except ValueError:
                line, problem = {}, "This line is not parseable as valid JSON."
            custom_id = str(line.get("custom_id") or "")
            if problem:
                pass
            elif not custom_id or custom_id in seen:
                problem = "The custom_id of each request must be present and unique."
            elif line.get("method") != "POST" or line.get("url") != ENDPOINT:
                problem = f"Each request must be a POST to {ENDPOINT}."
            elif (line.get("body") or {}).get("model") not in self.models:
                problem = f"The model `{(line.get('body') or {}).get('model')}` does not exist."
            if problem:
                errors.append({"code": "invalid_request", "message": problem, "line": number,
                               "param": None})
                continue
            seen.add(custom_id)
            requests.append((custom_id, line["body"]))
        with self._state_lock:
            batch = FakeBatch(f"batch_fake{next(self._ids)}", file.id, requests,
                              dict(body.get("metadata") or {}))
            self.batches[batch.id] = batch
        reply = HttpReply.json(self._body(batch))
        if errors:
            batch.status, batch.errors = "failed", errors
        return reply

    def _list(self, query: dict[str, list[str]]) -> HttpReply:
        newest_first = list(reversed(self.batches.values()))
        after = query.get("after", [""])[0]
        if after:
            ids = [batch.id for batch in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        page = [self._body(batch) for batch in newest_first[:limit]]
        return HttpReply.json({"object": "list", "data": page,
                               "first_id": page[0]["id"] if page else None,
                               "last_id": page[-1]["id"] if page else None,
                               "has_more": len(newest_first) > limit})

    def _body(self, batch: FakeBatch) -> dict[str, Any]:
        completed = sum(1 for code, _ in batch.answered.values() if code == 200)
        return {
            "id": batch.id, "object": "batch", "endpoint": ENDPOINT,
            "input_file_id": batch.input_file_id, "completion_window": "24h",
            "status": batch.status, "created_at": _CREATED, "metadata": batch.metadata,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "request_counts": {"total": len(batch.requests), "completed": completed,
                               "failed": len(batch.answered) - completed},
        }
