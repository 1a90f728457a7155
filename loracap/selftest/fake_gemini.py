"""A fake Gemini API HTTP server for tests and benchmarks (standard library only).

The real ``google-genai`` client talks to it through ``HttpOptions(base_url=...)`` or the SDK's
``GOOGLE_GEMINI_BASE_URL`` environment variable. It serves:

* ``POST /{version}/models/{model}:generateContent`` -- answers chosen per request (see below);
* ``GET /{version}/models`` -- a small model list in the real ``ListModels`` shape;

where ``{version}`` is any of ``API_VERSIONS`` (google-genai 3.x sends ``v1`` by default, older
releases and ``GOOGLE_GENAI_API_VERSION=beta`` send ``v1beta``).

Every request is recorded as a :class:`RecordedRequest`. For ``generateContent`` the answer is
chosen in this order:

1. no ``x-goog-api-key`` header -> 403 ``PERMISSION_DENIED``; a key in ``invalid_keys`` -> the
   real 400 ``INVALID_ARGUMENT`` / ``API_KEY_INVALID`` body;
2. a model not in ``models`` -> the real 404 ``NOT_FOUND`` body;
3. the quota simulator: ``daily_limit`` (per-day 429) and ``rpm_limit`` over a sliding
   ``window_s`` (per-minute 429 whose ``RetryInfo.retryDelay`` is the time until the oldest
   accepted request leaves the window);
4. replies queued with :meth:`FakeGeminiServer.queue_replies`, then ``responder(request)``.

Error bodies copy the shape of the real API's JSON errors (``google.rpc.QuotaFailure`` with
``quotaId``, ``google.rpc.Help``, ``google.rpc.RetryInfo`` with ``retryDelay``,
``google.rpc.ErrorInfo`` with ``reason``), as documented at
https://ai.google.dev/gemini-api/docs/troubleshooting and observed in real 429 answers.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

API_VERSIONS = ("v1", "v1beta", "v1alpha")
_PATH = re.compile(
    r"^/(?P<version>v1(?:beta|alpha)?)/models(?:/(?P<model>[^/:]+):(?P<method>\w+))?/?$"
)
PER_MINUTE_QUOTA_ID = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY_QUOTA_ID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
DEFAULT_INVALID_KEYS = frozenset({"bad-key"})


@dataclass(frozen=True)
class FakeModel:
    """One entry of ``GET /v1beta/models``; ``name`` without the ``models/`` prefix."""

    name: str
    methods: tuple[str, ...] = ("generateContent", "countTokens")
    display_name: str = ""

    def to_json(self) -> dict[str, Any]:
        """The model in the real ``ListModels`` JSON shape."""
        return {
            "name": f"models/{self.name}",
            "version": "001",
            "displayName": self.display_name or self.name,
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": list(self.methods),
        }


DEFAULT_MODELS: tuple[FakeModel, ...] = (
    FakeModel("gemini-flash-latest", display_name="Gemini Flash Latest"),
    FakeModel("gemini-flash-lite-latest", display_name="Gemini Flash-Lite Latest"),
    FakeModel("gemini-pro-latest", display_name="Gemini Pro Latest"),
    FakeModel("gemini-2.5-flash", display_name="Gemini 2.5 Flash"),
    FakeModel("gemini-2.5-flash-lite", display_name="Gemini 2.5 Flash-Lite"),
    FakeModel("gemini-2.5-pro", display_name="Gemini 2.5 Pro"),
    FakeModel("gemini-embedding-001", methods=("embedContent", "countTextTokens")),
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it.

    ``arrived`` is ``time.monotonic()`` at arrival (seconds). ``model`` has no ``models/``
    prefix ("" for non-generate routes). ``prompt`` joins the text parts of ``contents`` with
    newlines. ``image`` is the first inline image's bytes decoded from base64 (None if absent)
    and ``image_mime_type`` its declared MIME type. ``generation_config`` is the request's
    ``generationConfig`` object as sent (camelCase keys), ``body`` the whole JSON body.
    """

    arrived: float
    method: str
    path: str
    model: str
    api_key: str
    prompt: str = ""
    image: bytes | None = None
    image_mime_type: str | None = None
    generation_config: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def wants_json(self) -> bool:
        """True when the request asked for ``responseMimeType: application/json``."""
        return self.generation_config.get("responseMimeType") == "application/json"

    @property
    def schema_properties(self) -> list[str]:
        """Property names of the request's response schema, in schema order (may be empty)."""
        schema = self.generation_config.get("responseJsonSchema") or self.generation_config.get(
            "responseSchema"
        )
        if not isinstance(schema, dict):
            return []
        properties = schema.get("properties")
        return list(properties) if isinstance(properties, dict) else []


@dataclass(frozen=True)
class Reply:
    """An answer the server sends: HTTP ``status``, a JSON ``body`` (raw text when ``body`` is a
    ``str``, sent as UTF-8; the exact bytes when it is ``bytes``), sent after ``delay_s``
    seconds. ``disconnect`` closes the connection without answering (the client sees a
    protocol/connection error).
    """

    status: int = 200
    body: Any = None
    content_type: str = "application/json; charset=UTF-8"
    delay_s: float = 0.0
    disconnect: bool = False

    # -- successful answers -------------------------------------------------------------------

    @classmethod
    def caption(cls, text: str, finish_reason: str = "STOP") -> Reply:
        """A 200 answer whose single candidate's text is ``text``."""
        candidate = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": finish_reason,
            "index": 0,
        }
        return cls(body=_generate_body([candidate]))

    @classmethod
    def json(cls, obj: Any) -> Reply:
        """A 200 answer whose text is ``obj`` serialised as JSON (a structured-output answer)."""
        return cls.caption(json.dumps(obj, ensure_ascii=False))

    @classmethod
    def caption_bytes(cls, text: bytes) -> Reply:
        """A 200 answer whose candidate's text is ``text`` as raw bytes in the JSON body, which
        need not be valid UTF-8 (``b"caf\\xe9"``); ``"`` and ``\\`` must be escaped by the
        caller."""
        head, tail = json.dumps(Reply.caption("\x00").body).split("\\u0000")
        return cls(body=head.encode() + text + tail.encode())

    @classmethod
    def messy(cls, trigger: str = "ide_main_hall") -> Reply:
        """A 200 answer with markdown, a lead-in, quotes, the prefix and a trailing period."""
        return cls.caption(f'**Caption:** "photo of {trigger} lecture hall, tiered seating.\n"')

    @classmethod
    def empty(cls) -> Reply:
        """A 200 answer with a candidate that has no text (``response.text`` is None)."""
        candidate = {"content": {"role": "model"}, "finishReason": "STOP", "index": 0}
        return cls(body=_generate_body([candidate]))

    @classmethod
    def blocked(cls, reason: str = "SAFETY") -> Reply:
        """A 200 answer with ``promptFeedback.blockReason`` and no candidates."""
        body = {
            "promptFeedback": {"blockReason": reason, "safetyRatings": _safety_ratings()},
            "usageMetadata": {"promptTokenCount": 270, "totalTokenCount": 270},
        }
        return cls(body=body)

    @classmethod
    def finish_reason(cls, reason: str = "SAFETY", text: str | None = None) -> Reply:
        """A 200 answer whose candidate ends with ``finishReason`` ``reason`` (text optional)."""
        candidate: dict[str, Any] = {
            "finishReason": reason,
            "index": 0,
            "safetyRatings": _safety_ratings(),
        }
        if text is not None:
            candidate["content"] = {"parts": [{"text": text}], "role": "model"}
        return cls(body=_generate_body([candidate]))

    @classmethod
    def hang(cls, seconds: float, then: Reply | None = None) -> Reply:
        """``then`` (default: a caption) sent only after ``seconds``; for timeout tests.

        The wait ends early when the server stops, so it never delays shutdown.
        """
        base = then if then is not None else cls.caption("late caption")
        return cls(base.status, base.body, base.content_type, seconds, base.disconnect)

    @classmethod
    def disconnected(cls) -> Reply:
        """Close the connection without any answer."""
        return cls(status=0, disconnect=True)

    # -- errors -------------------------------------------------------------------------------

    @classmethod
    def rate_limited(cls, retry_delay_s: float | None = 26.0) -> Reply:
        """429 ``RESOURCE_EXHAUSTED`` for the per-minute quota; ``RetryInfo`` only if a delay."""
        return cls(status=429, body=_quota_body(PER_MINUTE_QUOTA_ID, "10", retry_delay_s))

    @classmethod
    def daily_quota(cls, retry_delay_s: float | None = 26.0) -> Reply:
        """429 ``RESOURCE_EXHAUSTED`` for the per-day quota (the real one also has RetryInfo)."""
        return cls(status=429, body=_quota_body(PER_DAY_QUOTA_ID, "250", retry_delay_s))

    @classmethod
    def invalid_key(cls) -> Reply:
        """The real 400 answer to an invalid API key (``ErrorInfo.reason`` API_KEY_INVALID)."""
        message = "API key not valid. Please pass a valid API key."
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ]
        return cls.error(400, "INVALID_ARGUMENT", message, details)

    @classmethod
    def permission_denied(cls) -> Reply:
        """403 as sent when a request carries no API key."""
        message = (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        )
        return cls.error(403, "PERMISSION_DENIED", message)

    @classmethod
    def model_not_found(cls, model: str, version: str = "v1beta") -> Reply:
        """The real 404 answer for an unknown model."""
        message = (
            f"models/{model} is not found for API version {version}, or is not supported "
            "for generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        return cls.error(404, "NOT_FOUND", message)

    @classmethod
    def server_error(cls, code: int = 500) -> Reply:
        """A 5xx answer: 500 INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED as JSON; 502 as
        the HTML page a proxy sends (so the client sees a non-JSON error body)."""
        if code == 502:
            html = (
                "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            )
            return cls(status=502, body=html, content_type="text/html; charset=UTF-8")
        status, message = _SERVER_ERRORS.get(code, ("UNKNOWN", "Server error."))
        return cls.error(code, status, message)

    @classmethod
    def error(
        cls, code: int, status: str, message: str, details: Sequence[dict[str, Any]] = ()
    ) -> Reply:
        """Any error in the real ``{"error": {code, message, status, details}}`` shape."""
        error: dict[str, Any] = {"code": code, "message": message, "status": status}
        if details:
            error["details"] = list(details)
        return cls(status=code, body={"error": error})


_SERVER_ERRORS: dict[int, tuple[str, str]] = {
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}


def format_retry_delay(seconds: float, whole_seconds: bool) -> str:
    """A ``google.protobuf.Duration`` JSON string: ``"26s"`` or, with ``whole_seconds`` False,
    milliseconds precision such as ``"1.250s"`` (always rounded up, never below the real wait)."""
    if whole_seconds or float(seconds).is_integer():
        return f"{math.ceil(seconds)}s"
    return f"{math.ceil(seconds * 1000) / 1000:.3f}s"


def _quota_body(quota_id: str, quota_value: str, retry_delay_s: float | None) -> dict[str, Any]:
    per_day = "PerDay" in quota_id
    metric = "generate_content_free_tier_requests"
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": "gemini-flash"},
                    "quotaValue": quota_value,
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_URL}
            ],
        },
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"For more information on this error, head to: {RATE_LIMITS_URL}.\n"
        f"* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, "
        f"limit: {quota_value}{', per day' if per_day else ''}"
    )
    if retry_delay_s is not None:
        delay = format_retry_delay(retry_delay_s, whole_seconds=False)
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
        message += f"\nPlease retry in {retry_delay_s:g}s."
    return {
        "error": {
            "code": 429,
            "message": message,
            "status": "RESOURCE_EXHAUSTED",
            "details": details,
        }
    }


def _safety_ratings() -> list[dict[str, str]]:
    return [
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "HIGH"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    ]


def _generate_body(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": 270,
            "candidatesTokenCount": 20,
            "totalTokenCount": 290,
        },
    }


def default_responder(request: RecordedRequest) -> Reply:
    """A deterministic caption derived from the image bytes, distinct per image.

    A JSON object with one value per response-schema property (a two-item list for array
    properties) when the request asked for JSON; one line of plain text otherwise.
    """
    tag = hashlib.sha256(request.image or request.prompt.encode()).hexdigest()[:8]
    if request.wants_json and request.schema_properties:
        return Reply.json(_structured_answer(request, tag))
    return Reply.caption(f"fake caption {tag}, test scene")


#: The people every detection request finds by default (multi-person captions): a woman on
#: the left and a man on the right, as Gemini answers, ``box_2d`` = ``[ymin, xmin, ymax, xmax]``
#: normalised to 0-1000.
DEFAULT_PEOPLE: list[dict[str, Any]] = [
    {"box_2d": [100, 80, 950, 420], "gender": "woman"},
    {"box_2d": [150, 560, 980, 900], "gender": "man"},
]


def _structured_answer(request: RecordedRequest, tag: str) -> dict[str, Any]:
    schema = request.generation_config.get("responseJsonSchema") or request.generation_config.get(
        "responseSchema", {}
    )
    if "people" in schema.get("properties", {}):  # a person-detection request
        return {"people": [dict(person) for person in DEFAULT_PEOPLE]}
    return schema_example(schema, tag)


def schema_example(schema: Any, tag: str) -> dict[str, Any]:
    """An answer following the JSON ``schema`` of a structured request, distinct per ``tag``
    (:func:`_fill`); the fake OpenAI-compatible and Anthropic servers answer with it too."""
    answer = _fill(schema, "", tag)
    return answer if isinstance(answer, dict) else {}


def _fill(spec: Any, name: str, tag: str, number: int = 0) -> Any:
    """A value following the JSON schema ``spec``: strings made of the property's name and the
    request's tag (``"question 3f2a 1"``), objects with every property, arrays of ``maxItems``
    items (else 2)."""
    if not isinstance(spec, dict):
        return f"{name} {tag}".strip()
    kind = str(spec.get("type", "string")).lower()
    if kind == "object":
        return {key: _fill(sub, key.replace("_", " "), tag, number)
                for key, sub in spec.get("properties", {}).items()}
    if kind == "array":
        count = spec.get("maxItems", 2)
        count = count if isinstance(count, int) and 0 < count <= 50 else 2
        items = spec.get("items", {})
        if not isinstance(items, dict) or str(items.get("type", "string")).lower() == "string":
            return [f"{name} {tag} {chr(ord('a') + n)}" for n in range(count)]
        return [_fill(items, name, tag, n + 1) for n in range(count)]
    return f"{name} {tag}{f' {number}' if number else ''}"


Responder = Callable[[RecordedRequest], Reply]


class FakeGeminiServer:
    """The fake server; start with ``start()`` or ``with FakeGeminiServer() as server:``.

    ``base_url`` is ``http://127.0.0.1:<port>`` (no trailing slash). ``responder`` may be
    replaced at any time. Quota simulator: at most ``rpm_limit`` accepted requests in any
    ``window_s`` seconds and ``daily_limit`` accepted requests in total (None: no limit);
    accepted requests wait ``latency_s`` seconds before their answer. ``accepted_count``,
    ``rate_limited_count`` and ``daily_limited_count`` count the simulator's decisions.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        rpm_limit: int | None = None,
        window_s: float = 60.0,
        daily_limit: int | None = None,
        latency_s: float = 0.0,
        invalid_keys: Iterable[str] = DEFAULT_INVALID_KEYS,
        models: Sequence[FakeModel] = DEFAULT_MODELS,
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.rpm_limit = rpm_limit
        self.window_s = window_s
        self.daily_limit = daily_limit
        self.latency_s = latency_s
        self.invalid_keys = set(invalid_keys)
        self.models = list(models)
        self.accepted_count = 0
        self.rate_limited_count = 0
        self.daily_limited_count = 0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queued: collections.deque[Reply] = collections.deque()
        self._window: collections.deque[float] = collections.deque()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeGeminiServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-gemini-server-{httpd.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; hanging replies are cut short."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        self._close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGeminiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _close_connections(self) -> None:
        """Cut kept-alive client connections so a stopped server answers nothing at all."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; raises RuntimeError before ``start()``."""
        if self._httpd is None:
            raise RuntimeError("FakeGeminiServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- inspection and control ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        """A snapshot of the ``generateContent`` requests only."""
        return [r for r in self.requests if r.model]

    def queue_replies(self, *replies: Reply) -> None:
        """The next ``generateContent`` requests that pass the key/model/quota checks get these
        replies, in order; after them the ``responder`` answers again."""
        with self._lock:
            self._queued.extend(replies)

    def reply_always(self, reply: Reply) -> None:
        """Answer every ``generateContent`` request with ``reply``."""
        self.responder = lambda _request: reply

    def reset(self) -> None:
        """Forget recorded requests, queued replies, counts and the quota window."""
        with self._lock:
            self._requests.clear()
            self._queued.clear()
            self._window.clear()
            self.accepted_count = self.rate_limited_count = self.daily_limited_count = 0

    # -- request handling (called from handler threads) ---------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _choose_generate_reply(self, request: RecordedRequest, version: str) -> Reply:
        auth = self._check_key(request.api_key)
        if auth is not None:
            return auth
        if request.model not in {m.name for m in self.models}:
            return Reply.model_not_found(request.model, version)
        limited = self._check_quota(request.arrived)
        if limited is not None:
            return limited
        with self._lock:
            queued = self._queued.popleft() if self._queued else None
        reply = queued if queued is not None else self.responder(request)
        if self.latency_s > 0:
            reply = Reply(
                reply.status,
                reply.body,
                reply.content_type,
                reply.delay_s + self.latency_s,
                reply.disconnect,
            )
        return reply

    def _check_key(self, api_key: str) -> Reply | None:
        if not api_key:
            return Reply.permission_denied()
        if api_key in self.invalid_keys:
            return Reply.invalid_key()
        return None

    def _check_quota(self, now: float) -> Reply | None:
        with self._lock:
            if self.daily_limit is not None and self.accepted_count >= self.daily_limit:
                self.daily_limited_count += 1
                return Reply.daily_quota()
            if self.rpm_limit is not None:
                while self._window and self._window[0] <= now - self.window_s:
                    self._window.popleft()
                if len(self._window) >= self.rpm_limit:
                    self.rate_limited_count += 1
                    wait = self._window[0] + self.window_s - now
                    whole = self.window_s >= 60.0
                    delay = format_retry_delay(max(wait, 0.001), whole_seconds=whole)
                    body = _quota_body(PER_MINUTE_QUOTA_ID, str(self.rpm_limit), None)
                    body["error"]["details"].append(
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
                    )
                    return Reply(status=429, body=body)
                self._window.append(now)
            self.accepted_count += 1
        return None

    def _list_models_body(self) -> dict[str, Any]:
        return {"models": [m.to_json() for m in self.models]}

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _decode_base64(data: str) -> bytes:
    """Decode standard or URL-safe base64 (google-genai sends URL-safe), padding optional."""
    return base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_")


def _parse_generate_body(body: dict[str, Any]) -> tuple[str, bytes | None, str | None]:
    """(prompt text, first inline image bytes, its MIME type) from a generateContent body."""
    texts: list[str] = []
    image: bytes | None = None
    mime: str | None = None
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            inline = part.get("inlineData") or part.get("inline_data")
            if inline and image is None:
                image = _decode_base64(str(inline.get("data", "")))
                mime = inline.get("mimeType") or inline.get("mime_type")
    return "\n".join(texts), image, mime


def _generate_request(
    arrived: float, path: str, match: re.Match[str], headers: Any, body: dict[str, Any]
) -> RecordedRequest:
    prompt, image, mime = _parse_generate_body(body)
    return RecordedRequest(
        arrived=arrived,
        method="POST",
        path=path,
        model=match["model"],
        api_key=headers.get("x-goog-api-key", ""),
        prompt=prompt,
        image=image,
        image_mime_type=mime,
        generation_config=body.get("generationConfig", {}),
        body=body,
    )


def _make_handler(server: FakeGeminiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes; without TCP_NODELAY the body waits
        # for the client's delayed ACK (about 40 ms on Linux) on every answer.
        disable_nagle_algorithm = True
        timeout = 30  # an idle keep-alive connection is dropped after this many seconds

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
            arrived = time.monotonic()
            match = _PATH.match(unquote(urlsplit(self.path).path))
            api_key = self.headers.get("x-goog-api-key", "")
            server._record(RecordedRequest(arrived, "GET", self.path, "", api_key))
            if match is None or match["model"] is not None:
                self._send(Reply.error(404, "NOT_FOUND", f"Unknown path {self.path}"))
                return
            auth = server._check_key(api_key)
            self._send(auth or Reply(body=server._list_models_body()))

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            arrived = time.monotonic()
            match = _PATH.match(unquote(urlsplit(self.path).path))
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if match is None or match["method"] != "generateContent":
                self._send(Reply.error(404, "NOT_FOUND", f"Unknown path {self.path}"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(Reply.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
                return
            request = _generate_request(arrived, self.path, match, self.headers, body)
            server._record(request)
            reply = server._choose_generate_reply(request, match["version"])
            server._wait(reply.delay_s)
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            if reply.disconnect or server._stopping.is_set():
                self.close_connection = True
                return
            if isinstance(reply.body, bytes):
                payload = reply.body
            elif isinstance(reply.body, str):
                payload = reply.body.encode("utf-8")
            else:
                payload = json.dumps(reply.body if reply.body is not None else {}).encode("utf-8")
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (e.g. its timeout fired while a reply hung).
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
            logger.debug("fake gemini: " + format, *args)

    return Handler
