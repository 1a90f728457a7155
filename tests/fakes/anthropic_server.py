"""A fake Anthropic Messages API server for the tests.

The real ``anthropic`` client talks to it with ``base_url=server.base_url``
(``http://127.0.0.1:<port>``; the SDK adds ``/v1/...``). It serves:

* ``POST /v1/messages`` -- recorded as a :class:`MessagesRequest`; answered, in this order, by
  a 401 ``authentication_error`` when the key (:func:`request_key`) is not ``api_key``, a 404
  ``not_found_error`` for a model not in ``models``, then replies queued with ``queue_replies``
  (route ``"messages"``), then ``responder``;
* ``GET /v1/models`` -- one page ``{"data": [...], "has_more", "first_id", "last_id"}`` of
  ``models``, or a reply queued on route ``"models"``.

Bodies copy the documented shapes (https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/api/errors: ``{"type": "error", "error": {"type", "message"}}``,
529 ``overloaded_error``, 429 ``rate_limit_error`` with a ``retry-after`` header).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loracap.selftest.fake_gemini import schema_example
from tests.fakes.http_fake import FakeHttpServer, HttpReply, RecordedRequest

DEFAULT_MODELS: tuple[str, ...] = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1")
DEFAULT_KEY = "sk-ant-test"
DEFAULT_USAGE: tuple[int, int] = (1_240, 37)


@dataclass(frozen=True)
class MessagesRequest:
    """One ``POST /v1/messages`` as sent: ``model``, ``max_tokens``, ``blocks`` (the types of
    the user message's content blocks, in order: ``("image", "text")``), ``text`` (its text
    blocks joined by newlines), ``image`` (the first base64 image block decoded, None when
    absent), ``media_type`` (that block's), ``tools`` and ``tool_choice`` (None when not sent),
    ``api_key`` (see :func:`request_key`), ``version`` (``anthropic-version``) and ``body``."""

    model: str
    max_tokens: Any
    blocks: tuple[str, ...]
    text: str
    image: bytes | None
    media_type: str | None
    tools: Any
    tool_choice: Any
    api_key: str
    version: str
    body: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, request: RecordedRequest) -> MessagesRequest:
        """The Messages request in a recorded request (an empty one when the body is not
        JSON)."""
        body = request.body if isinstance(request.body, dict) else {}
        blocks: list[str] = []
        texts: list[str] = []
        image: bytes | None = None
        media_type: str | None = None
        for message in body.get("messages") or []:
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                blocks.append("text")
                texts.append(content)
                continue
            for block in content if isinstance(content, list) else []:
                kind = str(block.get("type", "")) if isinstance(block, dict) else ""
                blocks.append(kind)
                if kind == "text":
                    texts.append(str(block.get("text", "")))
                elif kind == "image" and image is None:
                    source = block.get("source") or {}
                    media_type = source.get("media_type")
                    try:
                        image = base64.b64decode(str(source.get("data", "")), validate=True)
                    except (binascii.Error, ValueError):
                        image = None
        return cls(
            model=str(body.get("model", "")), max_tokens=body.get("max_tokens"),
            blocks=tuple(blocks), text="\n".join(texts), image=image, media_type=media_type,
            tools=body.get("tools"), tool_choice=body.get("tool_choice"),
            api_key=request_key(request), version=request.header("anthropic-version"),
            body=body,
        )

    @property
    def tool_schema(self) -> dict[str, Any] | None:
        """The ``input_schema`` of the first tool, or None."""
        if isinstance(self.tools, list) and self.tools and isinstance(self.tools[0], dict):
            schema = self.tools[0].get("input_schema")
            return schema if isinstance(schema, dict) else None
        return None


def request_key(request: RecordedRequest) -> str:
    """The API key a request carries: the ``x-api-key`` header the API documents, else the
    ``Authorization: Bearer`` token (what anthropic 2.x sends for an API key)."""
    key = request.header("x-api-key")
    if key:
        return key
    scheme, _, token = request.header("authorization").partition(" ")
    return token if scheme.lower() == "bearer" else ""


def _error(status: int, type_: str, message: str,
           headers: dict[str, str] | None = None) -> HttpReply:
    body = {"type": "error", "error": {"type": type_, "message": message},
            "request_id": "req_fake"}
    return HttpReply.json(body, status, headers)


class ClaudeReply:
    """Replies of the fake server, as :class:`~tests.fakes.http_fake.HttpReply` values."""

    @staticmethod
    def message(content: list[dict[str, Any]], stop_reason: str | None = "end_turn",
                usage: tuple[int, int] = DEFAULT_USAGE, model: str = "claude-haiku-4-5",
                **extra: Any) -> HttpReply:
        """A 200 Message with ``content`` blocks; ``usage`` is (input, output) tokens."""
        body: dict[str, Any] = {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
        body.update(extra)
        return HttpReply.json(body)

    @classmethod
    def text(cls, text: str, stop_reason: str = "end_turn",
             usage: tuple[int, int] = DEFAULT_USAGE) -> HttpReply:
        """A 200 answer with one text block."""
        return cls.message([{"type": "text", "text": text}], stop_reason, usage)

    @classmethod
    def tool_use(cls, arguments: Any, name: str = "caption") -> HttpReply:
        """A 200 answer calling the tool ``name`` with ``arguments`` as its input."""
        block = {"type": "tool_use", "id": "toolu_fake", "name": name, "input": arguments}
        return cls.message([block], "tool_use")

    @classmethod
    def refusal(cls, explanation: str | None = "The request could be related to harm.") -> HttpReply:
        """A 200 answer that ends with ``stop_reason`` ``refusal`` (no content)."""
        details = {"type": "refusal", "category": "general_harms", "explanation": explanation}
        return cls.message([], "refusal", stop_details=details)

    @classmethod
    def empty(cls) -> HttpReply:
        """A 200 answer with no content blocks."""
        return cls.message([], "end_turn")

    @staticmethod
    def rate_limited(retry_after: str | None = "12") -> HttpReply:
        """429 ``rate_limit_error`` with a ``retry-after`` header (seconds)."""
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        headers["anthropic-ratelimit-requests-remaining"] = "0"
        return _error(429, "rate_limit_error", "This request would exceed the rate limit for "
                      "your organization of 50 requests per minute.", headers)

    @staticmethod
    def unauthorized() -> HttpReply:
        """401 ``authentication_error``."""
        return _error(401, "authentication_error", "invalid x-api-key")

    @staticmethod
    def permission_denied() -> HttpReply:
        """403 ``permission_error``."""
        return _error(403, "permission_error", "Your API key does not have permission to use "
                      "the specified resource.")

    @staticmethod
    def credit_too_low() -> HttpReply:
        """The 400 an account without credit gets."""
        return _error(400, "invalid_request_error", "Your credit balance is too low to access "
                      "the Anthropic API. Please go to Plans & Billing to upgrade or purchase "
                      "credits.")

    @staticmethod
    def billing_error() -> HttpReply:
        """402 ``billing_error``."""
        return _error(402, "billing_error", "There is an issue with your account's billing.")

    @staticmethod
    def image_rejected() -> HttpReply:
        """A 400 about this one image."""
        return _error(400, "invalid_request_error", "messages.0.content.0.image.source.base64: "
                      "Could not process image")

    @staticmethod
    def model_not_found(model: str) -> HttpReply:
        """404 ``not_found_error`` for an unknown model."""
        return _error(404, "not_found_error", f"model: {model}")

    @staticmethod
    def overloaded() -> HttpReply:
        """529 ``overloaded_error``."""
        return _error(529, "overloaded_error", "Overloaded")

    @staticmethod
    def server_error(status: int = 500) -> HttpReply:
        """A 5xx ``api_error``."""
        return _error(status, "api_error", "Internal server error")

    @classmethod
    def hang(cls, seconds: float, then: HttpReply | None = None) -> HttpReply:
        """``then`` (default: a caption) only after ``seconds``; for timeout tests."""
        return (then if then is not None else cls.text("late caption")).after(seconds)

    @staticmethod
    def dropped() -> HttpReply:
        """The connection closed without an answer."""
        return HttpReply.dropped()


def default_responder(request: MessagesRequest) -> HttpReply:
    """A caption derived from the image's bytes: a ``caption`` tool call with one value per
    schema property (an array of ``maxItems`` items, else two) when a tool was offered, one
    line of text otherwise."""
    tag = hashlib.sha256(request.image or request.text.encode()).hexdigest()[:8]
    schema = request.tool_schema
    if schema is not None:
        return ClaudeReply.tool_use(schema_example(schema, tag))
    return ClaudeReply.text(f"fake caption {tag}, test scene")


MessagesResponder = Callable[[MessagesRequest], HttpReply]


class FakeAnthropicServer(FakeHttpServer):
    """The fake Messages API server (see the module docstring). ``api_key`` is the only key
    accepted; ``models`` the ids it serves."""

    name = "fake-anthropic"

    def __init__(self, *, api_key: str = DEFAULT_KEY, models: Sequence[str] = DEFAULT_MODELS,
                 responder: MessagesResponder | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = list(models)
        self.responder: MessagesResponder = responder or default_responder

    @property
    def messages_requests(self) -> list[MessagesRequest]:
        """The ``POST /v1/messages`` requests so far, parsed, in arrival order."""
        return [MessagesRequest.parse(r) for r in self.requests
                if r.method == "POST" and r.path == "/v1/messages"]

    def reset(self) -> None:
        """Forget requests and queued replies; back to the default key, models, responder."""
        super().reset()
        self.api_key = DEFAULT_KEY
        self.models = list(DEFAULT_MODELS)
        self.responder = default_responder

    def handle(self, request: RecordedRequest) -> HttpReply:
        if request_key(request) != self.api_key:
            return ClaudeReply.unauthorized()
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            queued = self.next_queued("models")
            return queued if queued is not None else self._models_page()
        if request.method == "POST" and request.path == "/v1/messages":
            messages = MessagesRequest.parse(request)
            if messages.model not in self.models:
                return ClaudeReply.model_not_found(messages.model)
            queued = self.next_queued("messages")
            return queued if queued is not None else self.responder(messages)
        return _error(404, "not_found_error", f"Not found: {request.path}")

    def _models_page(self) -> HttpReply:
        data = [{"type": "model", "id": model, "display_name": model.replace("-", " ").title(),
                 "created_at": "2025-10-01T00:00:00Z", "lifecycle": "active"}
                for model in self.models]
        return HttpReply.json({
            "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        })

