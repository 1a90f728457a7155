"""A small base for fake JSON-over-HTTP API servers in the tests (standard library only).

A :class:`FakeHttpServer` listens on 127.0.0.1 on a free port, records every request as a
:class:`RecordedRequest` (method, path, query, headers with lower-case names, the JSON body) and
answers each with an :class:`HttpReply`: JSON with a status and headers, the same after hanging
for a while (for client timeouts), or a dropped connection (no answer at all). Replies queued per
route are used first, in order; then the subclass's default answer. ``stop()`` cuts hanging
replies short and closes kept-alive connections, so a test never waits for a hang to end.

A subclass implements :meth:`FakeHttpServer.handle` (route a request to its answer, using
:meth:`FakeHttpServer.next_queued` for the routes that take queued replies).
"""

from __future__ import annotations

import collections
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

_S = TypeVar("_S", bound="FakeHttpServer")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it: ``arrived`` (``time.monotonic()`` seconds), ``method``,
    ``path`` (without the query), ``query`` (the raw query string), ``headers`` (names in lower
    case; the last value of a repeated header), ``body`` (the parsed JSON, or None when the body
    was empty or not JSON) and ``raw`` (the body's bytes)."""

    arrived: float
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    raw: bytes = b""

    def header(self, name: str) -> str:
        """The header called ``name`` (any case), ``""`` when absent."""
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class HttpReply:
    """An answer: HTTP ``status``, a ``body`` (serialised as JSON; a ``str`` or ``bytes`` body is
    sent as it is), extra ``headers`` and the ``content_type``, sent after ``delay_s`` seconds.
    ``disconnect`` closes the connection without any answer (the client sees a connection
    error)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_s: float = 0.0
    disconnect: bool = False

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
             ) -> HttpReply:
        """``body`` as JSON with ``status`` and ``headers``."""
        return cls(status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def dropped(cls) -> HttpReply:
        """Close the connection without answering."""
        return cls(status=0, disconnect=True)

    def after(self, seconds: float) -> HttpReply:
        """This reply, sent only after hanging ``seconds`` (cut short when the server stops)."""
        return replace(self, delay_s=self.delay_s + seconds)


Responder = Callable[[RecordedRequest], HttpReply]


class FakeHttpServer:
    """The base server; start with ``start()`` or ``with Server() as server:``.

    ``base_url`` is ``http://127.0.0.1:<port>`` plus the subclass's ``url_path`` (no trailing
    slash). Subclasses implement :meth:`handle`.
    """

    #: Appended to ``http://127.0.0.1:<port>`` in :attr:`base_url` (``"/v1"`` for OpenAI's).
    url_path = ""
    #: Names the server's threads and log lines.
    name = "fake-http"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queues: dict[str, collections.deque[HttpReply]] = collections.defaultdict(
            collections.deque)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to implement -----------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> HttpReply:
        """The answer to ``request`` (already recorded); called on the server's threads."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self: _S) -> _S:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"{self.name}-{httpd.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: hanging replies end at once without an answer, open connections are
        closed, the socket is released."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``; raises RuntimeError before ``start()``."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The URL a client is given: :attr:`origin` plus :attr:`url_path`."""
        return self.origin + self.url_path

    # -- inspection and control ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def queue_replies(self, *replies: HttpReply, route: str = "default") -> None:
        """The next requests on ``route`` (the subclass names its routes) get these replies, in
        order, before the default answers."""
        with self._lock:
            self._queues[route].extend(replies)

    def next_queued(self, route: str = "default") -> HttpReply | None:
        """The next queued reply of ``route``, or None when none is left."""
        with self._lock:
            queue = self._queues.get(route)
            return queue.popleft() if queue else None

    def reset(self) -> None:
        """Forget recorded requests and queued replies (hangs already under way go on)."""
        with self._lock:
            self._requests.clear()
            self._queues.clear()

    # -- called from the handler threads ----------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _make_handler(server: FakeHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes; without TCP_NODELAY the body waits
        # for the client's delayed ACK (about 40 ms on Linux) on every answer.
        disable_nagle_algorithm = True
        timeout = 30  # an idle kept-alive connection is dropped after this many seconds

        def setup(self) -> None:
            super().setup()
            server._track(self.connection, True)

        def finish(self) -> None:
            server._track(self.connection, False)
            try:
                super().finish()
            except OSError:
                pass  # the connection was cut by stop()

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self._serve()

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            self._serve()

        def do_DELETE(self) -> None:  # noqa: N802 (http.server naming)
            self._serve()

        def _serve(self) -> None:
            arrived = time.monotonic()
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            try:
                body = json.loads(raw) if raw else None
            except (ValueError, RecursionError):
                body = None
            parts = urlsplit(self.path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(arrived, self.command, parts.path, parts.query, headers,
                                      body, raw)
            server._record(request)
            try:
                reply = server.handle(request)
            except Exception:  # a bug in a fake must show up as a 500, not a hung client
                logger.exception("%s: handler failed", server.name)
                reply = HttpReply.json({"error": {"message": "fake server bug"}}, 500)
            server._wait(reply.delay_s)
            self._send(reply)

        def _send(self, reply: HttpReply) -> None:
            if reply.disconnect or server._stopping.is_set():
                self.close_connection = True
                return
            if isinstance(reply.body, bytes):
                payload = reply.body
            elif isinstance(reply.body, str):
                payload = reply.body.encode("utf-8")
            else:
                payload = json.dumps(reply.body if reply.body is not None else {}).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its timeout fired)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
            logger.debug(f"{server.name}: " + format, *args)

    return Handler
