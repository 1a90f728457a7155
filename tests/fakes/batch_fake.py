"""What the fakes of the three batch APIs share (:mod:`tests.fakes.gemini_batch_server`,
:mod:`tests.fakes.anthropic_batch_server`, :mod:`tests.fakes.openai_batch_server`).

A :class:`FakeBatchServer` holds its jobs by id (``held()``: the subclass's ``jobs`` or
``batches``), makes their ids from one counter (``_ids``, with ``_state_lock`` held), and answers a request in the same order: a
queued reply first, then the service's refusal of a wrong key (``refuse``), then the route
(``route``). The test-control methods take ``None`` for "the job submitted last" (``_job``).
"""

from __future__ import annotations

import itertools
import threading
from typing import Generic, TypeVar

from tests.fakes.http_fake import FakeHttpServer, HttpReply, RecordedRequest

J = TypeVar("J")


class FakeBatchServer(FakeHttpServer, Generic[J]):
    """The base of a batch API's fake; a subclass implements ``held``, ``refuse`` and
    ``route``."""

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)
        self._state_lock = threading.Lock()

    def held(self) -> dict[str, J]:
        """The jobs the fake holds, by id, in the order they were made."""
        raise NotImplementedError

    def refuse(self, request: RecordedRequest) -> HttpReply | None:
        """The service's answer to a request without the right key; None when it is right."""
        raise NotImplementedError

    def route(self, request: RecordedRequest) -> HttpReply:
        """The answer to a request that passed the key check."""
        raise NotImplementedError

    def handle(self, request: RecordedRequest) -> HttpReply:
        queued = self.next_queued()
        if queued is not None:
            return queued
        refused = self.refuse(request)
        return refused if refused is not None else self.route(request)

    def _job(self, job_id: str | None) -> J:
        """The job ``job_id``, or the one made last for None."""
        with self._state_lock:
            held = self.held()
            return list(held.values())[-1] if job_id is None else held[job_id]
