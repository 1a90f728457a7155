"""A fake of Anthropic's Message Batches API on 127.0.0.1, for the real ``anthropic`` client.

Routes, as the SDK calls them (its ``resources/messages/batches.py``):

* ``POST /v1/messages/batches`` -- ``{"requests": [{"custom_id", "params"}]}``; a 400
  ``invalid_request_error`` for no requests, or a ``custom_id`` that is repeated or not 1-64
  characters of ``[a-zA-Z0-9_-]`` (as the API documents);
* ``GET /v1/messages/batches?limit=&after_id=`` -- the batches, newest first, a page of
  ``{"data", "has_more", "first_id", "last_id"}``;
* ``GET /v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``;
* ``GET /v1/messages/batches/{id}/results`` -- the ``results_url`` of an ended batch: JSONL,
  one ``{"custom_id", "result"}`` line per request.

Every route answers 401 ``authentication_error`` to a key other than ``api_key``. A batch is
``in_progress`` until the test calls :meth:`FakeAnthropicBatchServer.finish` (answers the
first ``done`` requests -- all by default -- the rest end ``expired``; the results are stored
in REVERSED order, so a client matching by position gets them wrong), :meth:`expire` or
:meth:`progress` (answers some while it runs). A cancel keeps what was answered and ends the
rest ``canceled`` (at once, or at :meth:`end_cancel` when ``cancel_at_once`` is False).

Answers come from :func:`tests.fakes.anthropic_server.default_responder` (a caption derived
from the image's bytes; a ``caption`` tool call following the tool's schema) or the test's
``answer(custom_id, request)``: a :class:`~tests.fakes.http_fake.HttpReply` of the Messages
API (:class:`~tests.fakes.anthropic_server.ClaudeReply`), a 200 being a ``succeeded`` result
and an error an ``errored`` one with the error's body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.anthropic_server import (
    DEFAULT_KEY,
    MessagesRequest,
    default_responder,
    request_key,
)
from tests.fakes.anthropic_server import _error as claude_error
from tests.fakes.batch_fake import FakeBatchServer
from tests.fakes.http_fake import HttpReply, RecordedRequest

#: ``answer(custom_id, request)`` -> the Messages API's reply to that request.
Answerer = Callable[[str, MessagesRequest], HttpReply]

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CREATED = "2026-11-30T12:00:00Z"
_ENDED = "2026-11-30T13:00:00Z"
_EXPIRES = "2026-12-01T12:00:00Z"


@dataclass
class FakeBatch:
    """One batch as the fake holds it: the requests ``(custom_id, params)`` in order, its
    ``processing_status``, the results answered so far by custom_id, ``cancel_initiated_at``
    and, once ended, the result lines in the order they are served."""

    id: str
    requests: list[tuple[str, dict[str, Any]]]
    processing_status: str = "in_progress"
    answered: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancel_initiated_at: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class FakeAnthropicBatchServer(FakeBatchServer[FakeBatch]):
    """See the module's description. ``batches`` by id."""

    name = "fake-anthropic-batch"

    def __init__(self, api_key: str = DEFAULT_KEY) -> None:
        super().__init__(api_key)
        self.batches: dict[str, FakeBatch] = {}
        self.cancel_at_once = True

    def held(self) -> dict[str, FakeBatch]:
        return self.batches

    # -- test control ------------------------------------------------------------------------

    def progress(self, batch_id: str | None = None, answer: Answerer | None = None, *,
                 done: int) -> FakeBatch:
        """Answer the batch's first ``done`` requests; it stays in progress."""
        batch = self._job(batch_id)
        for custom_id, params in batch.requests[:done]:
            if custom_id not in batch.answered:
                batch.answered[custom_id] = _result(custom_id, params, answer)
        return batch

    def finish(self, batch_id: str | None = None, answer: Answerer | None = None, *,
               done: int | None = None, rest: str = "expired") -> FakeBatch:
        """Answer the first ``done`` requests (all by default), end the others as ``rest``
        (``expired`` or ``canceled``) and end the batch; its results are served in reversed
        order."""
        batch = self.progress(batch_id, answer,
                              done=len(self._job(batch_id).requests) if done is None else done)
        self._end(batch, rest)
        return batch

    def expire(self, batch_id: str | None = None, *, done: int = 0) -> FakeBatch:
        """End the batch at its 24 hours with the results of its first ``done`` requests."""
        return self.finish(batch_id, done=done, rest="expired")

    def end_cancel(self, batch_id: str | None = None) -> FakeBatch:
        """End a ``canceling`` batch: what was answered is kept, the rest ``canceled``."""
        batch = self._job(batch_id)
        self._end(batch, "canceled")
        return batch

    def _end(self, batch: FakeBatch, rest: str) -> None:
        lines = [{"custom_id": custom_id,
                  "result": batch.answered.get(custom_id, {"type": rest})}
                 for custom_id, _ in batch.requests]
        batch.results = list(reversed(lines))
        batch.processing_status = "ended"

    # -- routing -----------------------------------------------------------------------------

    def refuse(self, request: RecordedRequest) -> HttpReply | None:
        if request_key(request) != self.api_key:
            return claude_error(401, "authentication_error", "invalid x-api-key")
        return None

    def route(self, request: RecordedRequest) -> HttpReply:
        parts = request.path.strip("/").split("/")
        if parts[:3] != ["v1", "messages", "batches"]:
            return claude_error(404, "not_found_error", f"Not found: {request.path}")
        if len(parts) == 3 and request.method == "POST":
            return self._create(request.body if isinstance(request.body, dict) else {})
        if len(parts) == 3 and request.method == "GET":
            return self._list(parse_qs(request.query))
        batch = self.batches.get(parts[3]) if len(parts) > 3 else None
        if batch is None:
            return claude_error(404, "not_found_error", f"Not found: {request.path}")
        verb = parts[4] if len(parts) > 4 else ""
        if request.method == "POST" and verb == "cancel":
            if batch.processing_status == "in_progress":
                batch.processing_status = "canceling"
                batch.cancel_initiated_at = _ENDED
            reply = HttpReply.json(self._body(batch))
            if self.cancel_at_once and batch.processing_status == "canceling":
                self._end(batch, "canceled")
            return reply
        if request.method == "GET" and verb == "results":
            if batch.processing_status != "ended":
                return claude_error(404, "not_found_error",
                                    f"Batch {batch.id} has no results yet.")
            payload = "".join(json.dumps(line) + "\n" for line in batch.results)
            return HttpReply(body=payload.encode(), content_type="application/binary")
        if request.method == "GET" and not verb:
            return HttpReply.json(self._body(batch))
        return claude_error(404, "not_found_error", f"Not found: {request.path}")

    def _create(self, body: dict[str, Any]) -> HttpReply:
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            return claude_error(400, "invalid_request_error", "requests: at least one request "
                                "is required")
        requests: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for number, item in enumerate(items):
            custom_id = str(item.get("custom_id", ""))
            if not _CUSTOM_ID.match(custom_id):
                return claude_error(400, "invalid_request_error", f"requests.{number}."
                                    "custom_id: String should match pattern "
                                    "'^[a-zA-Z0-9_-]{1,64}$'")
            if custom_id in seen:
                return claude_error(400, "invalid_request_error", f"requests.{number}: "
                                    f"custom_id '{custom_id}' is not unique")
            seen.add(custom_id)
            requests.append((custom_id, item.get("params") or {}))
        with self._state_lock:
            batch = FakeBatch(f"msgbatch_fake{next(self._ids)}", requests)
            self.batches[batch.id] = batch
        return HttpReply.json(self._body(batch))

    def _list(self, query: dict[str, list[str]]) -> HttpReply:
        with self._state_lock:
            newest_first = list(reversed(self.batches.values()))
        after = query.get("after_id", [""])[0]
        if after:
            ids = [batch.id for batch in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        page = [self._body(batch) for batch in newest_first[:limit]]
        return HttpReply.json({"data": page, "has_more": len(newest_first) > limit,
                               "first_id": page[0]["id"] if page else None,
                               "last_id": page[-1]["id"] if page else None})

    def _body(self, batch: FakeBatch) -> dict[str, Any]:
        ended = batch.processing_status == "ended"
        counts = {"processing": 0 if ended else len(batch.requests), "succeeded": 0,
                  "errored": 0, "canceled": 0, "expired": 0}
        for line in batch.results:
            counts[line["result"]["type"]] += 1
        return {
            "id": batch.id, "type": "message_batch",
            "processing_status": batch.processing_status, "request_counts": counts,
            "created_at": _CREATED, "expires_at": _EXPIRES,
            "ended_at": _ENDED if ended else None, "archived_at": None,
            "cancel_initiated_at": batch.cancel_initiated_at,
            "results_url": f"{self.origin}/v1/messages/batches/{batch.id}/results"
            if ended else None,
        }


def _result(custom_id: str, params: dict[str, Any], answer: Answerer | None
            ) -> dict[str, Any]:
    messages = MessagesRequest.parse(RecordedRequest(0.0, "POST", "/v1/messages", body=params))
    reply = answer(custom_id, messages) if answer is not None else default_responder(messages)
    if reply.status == 200:
        return {"type": "succeeded", "message": reply.body}
    return {"type": "errored", "error": reply.body}
