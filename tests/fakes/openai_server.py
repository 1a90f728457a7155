"""A fake OpenAI-compatible server (the Chat Completions API) for the tests.

The real ``openai`` client talks to it with ``base_url=server.base_url``
(``http://127.0.0.1:<port>/v1``). It serves:

* ``POST /v1/chat/completions`` -- recorded as a :class:`ChatRequest`; answered, in this order,
  by a 401 when ``api_key`` is set and the ``Authorization: Bearer`` header differs, a 404 for a
  model not in ``models``, a 400 when ``vision`` is False and the request carries an image, a
  400 when ``accepts_response_format`` is False and the request has ``response_format``, then
  replies queued with ``queue_replies`` (route ``"chat"``), then ``responder``;
* ``GET /v1/models`` -- ``{"object": "list", "data": [{"id", "object", "created", "owned_by"}]}``
  with ``models``, or a reply queued on route ``"models"``.

Answer and error bodies copy the documented shapes of OpenAI's API
(https://platform.openai.com/docs/api-reference/chat/object, ``{"error": {"message", "type",
"param", "code"}}`` for errors) and what Ollama, LM Studio and vLLM send in their place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loracap.selftest.fake_gemini import schema_example
from tests.fakes.http_fake import FakeHttpServer, HttpReply, RecordedRequest

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4.1", "qwen2.5vl:7b")
DEFAULT_USAGE: tuple[int, int] = (812, 24)
_CREATED = 1_760_000_000


@dataclass(frozen=True)
class ChatRequest:
    """One ``POST /v1/chat/completions`` as sent: ``model``, ``messages`` (as sent),
    ``text`` (the user message's text parts joined by newlines), ``parts`` (the types of the
    user message's content parts, in order: ``["text", "image_url"]``), ``image_url`` (the first
    image part's URL), ``image`` (that URL's base64 payload decoded, None when absent or not a
    data URL), ``response_format`` (None when not sent), ``authorization`` (the header) and
    ``body`` (the whole JSON body)."""

    model: str
    messages: list[Any]
    text: str
    parts: tuple[str, ...]
    image_url: str | None
    image: bytes | None
    response_format: Any
    authorization: str
    body: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, request: RecordedRequest) -> ChatRequest:
        """The chat request in a recorded request (an empty one when the body is not JSON)."""
        body = request.body if isinstance(request.body, dict) else {}
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        texts: list[str] = []
        parts: list[str] = []
        image_url: str | None = None
        for message in messages:
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
                parts.append("text")
                continue
            for part in content if isinstance(content, list) else []:
                kind = str(part.get("type", "")) if isinstance(part, dict) else ""
                parts.append(kind)
                if kind == "text":
                    texts.append(str(part.get("text", "")))
                elif kind == "image_url" and image_url is None:
                    image_url = str((part.get("image_url") or {}).get("url", ""))
        return cls(
            model=str(body.get("model", "")),
            messages=messages,
            text="\n".join(texts),
            parts=tuple(parts),
            image_url=image_url,
            image=decode_data_url(image_url),
            response_format=body.get("response_format"),
            authorization=request.header("authorization"),
            body=body,
        )

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON schema of a ``json_schema`` response format, else None."""
        if not isinstance(self.response_format, dict):
            return None
        spec = self.response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else None


def decode_data_url(url: str | None) -> bytes | None:
    """The bytes of a ``data:<type>;base64,<data>`` URL; None for another URL or bad base64."""
    if not url or not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def _error(status: int, message: str, type_: str, code: str | None = None,
           param: str | None = None, headers: dict[str, str] | None = None) -> HttpReply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return HttpReply.json(body, status, headers)


class OpenAIReply:
    """Replies of the fake server, as :class:`~tests.fakes.http_fake.HttpReply` values."""

    @staticmethod
    def completion(message: dict[str, Any] | None, finish_reason: str = "stop",
                   usage: tuple[int, int] | None = DEFAULT_USAGE, model: str = "gpt-4o-mini",
                   ) -> HttpReply:
        """A 200 chat completion with one choice holding ``message`` (no choices when None);
        ``usage`` is (prompt tokens, completion tokens), left out when None."""
        choices = [] if message is None else [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ]
        body: dict[str, Any] = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": _CREATED,
            "model": model, "choices": choices,
        }
        if usage is not None:
            body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                             "total_tokens": usage[0] + usage[1]}
        return HttpReply.json(body)

    @classmethod
    def caption(cls, text: str, finish_reason: str = "stop",
                usage: tuple[int, int] | None = DEFAULT_USAGE) -> HttpReply:
        """A 200 answer whose message content is ``text``."""
        message = {"role": "assistant", "content": text, "refusal": None}
        return cls.completion(message, finish_reason, usage)

    @classmethod
    def json_answer(cls, obj: Any) -> HttpReply:
        """A 200 answer whose content is ``obj`` serialised as JSON (structured output)."""
        return cls.caption(json.dumps(obj, ensure_ascii=False))

    @classmethod
    def refusal(cls, text: str = "I'm sorry, I can't help with that.") -> HttpReply:
        """A 200 answer with ``message.refusal`` set and no content (OpenAI's refusal)."""
        message = {"role": "assistant", "content": None, "refusal": text}
        return cls.completion(message)

    @classmethod
    def content_filter(cls, text: str | None = None) -> HttpReply:
        """A 200 answer that ends with ``finish_reason`` ``content_filter``."""
        return cls.completion({"role": "assistant", "content": text}, "content_filter")

    @classmethod
    def empty_choices(cls) -> HttpReply:
        """A 200 answer with ``"choices": []``."""
        return cls.completion(None)

    @classmethod
    def empty_content(cls) -> HttpReply:
        """A 200 answer whose message content is ``""``."""
        return cls.caption("")

    @staticmethod
    def response_format_rejected() -> HttpReply:
        """The 400 of a server that does not take ``response_format`` (LM Studio's wording)."""
        return _error(400, "'response_format.type' must be 'json_schema' or 'text'; "
                      "json_schema is not supported by this server", "invalid_request_error",
                      param="response_format")

    @staticmethod
    def no_vision(model: str = "llama3.2:3b") -> HttpReply:
        """The 400 of a text-only model sent an image (Ollama's wording)."""
        return _error(400, f"model {model} does not support images", "invalid_request_error")

    @staticmethod
    def image_rejected() -> HttpReply:
        """A 400 about this one image."""
        return _error(400, "Could not process the image: invalid or corrupted data.",
                      "invalid_request_error", "invalid_image")

    @staticmethod
    def rate_limited(retry_after: str | None = "7",
                     retry_after_ms: str | None = None) -> HttpReply:
        """429 ``rate_limit_exceeded`` with ``Retry-After`` / ``retry-after-ms`` headers."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if retry_after_ms is not None:
            headers["retry-after-ms"] = retry_after_ms
        return _error(429, "Rate limit reached for gpt-4o-mini on requests per min (RPM): "
                      "Limit 3, Used 3, Requested 1.", "requests", "rate_limit_exceeded",
                      headers=headers)

    @staticmethod
    def insufficient_quota() -> HttpReply:
        """OpenAI's 429 ``insufficient_quota``: the account's credit is used up."""
        return _error(429, "You exceeded your current quota, please check your plan and "
                      "billing details.", "insufficient_quota", "insufficient_quota")

    @staticmethod
    def unauthorized() -> HttpReply:
        """401 ``invalid_api_key``."""
        return _error(401, "Incorrect API key provided: sk-bad. You can find your API key at "
                      "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                      "invalid_api_key")

    @staticmethod
    def forbidden() -> HttpReply:
        """403 for a key without access to the project or region."""
        return _error(403, "Project does not have access to model gpt-4.1",
                      "invalid_request_error", "model_not_found")

    @staticmethod
    def model_not_found(model: str) -> HttpReply:
        """404 ``model_not_found``."""
        return _error(404, f"The model `{model}` does not exist or you do not have access to "
                      "it.", "invalid_request_error", "model_not_found")

    @staticmethod
    def server_error(status: int = 500) -> HttpReply:
        """A 5xx: 500 ``server_error`` or 503 ``The engine is currently overloaded``."""
        if status == 503:
            return _error(503, "The engine is currently overloaded, please try again later.",
                          "server_error")
        return _error(status, "The server had an error while processing your request.",
                      "server_error")

    @classmethod
    def hang(cls, seconds: float, then: HttpReply | None = None) -> HttpReply:
        """``then`` (default: a caption) only after ``seconds``; for timeout tests."""
        return (then if then is not None else cls.caption("late caption")).after(seconds)

    @staticmethod
    def dropped() -> HttpReply:
        """The connection closed without an answer."""
        return HttpReply.dropped()


def default_responder(request: ChatRequest) -> HttpReply:
    """A caption derived from the image's bytes, distinct per image: one JSON value per schema
    property (an array of ``maxItems`` items, else two) when ``response_format`` carried a
    schema, one line of text otherwise."""
    tag = hashlib.sha256(request.image or request.text.encode()).hexdigest()[:8]
    schema = request.schema
    if schema is not None:
        return OpenAIReply.json_answer(schema_example(schema, tag))
    return OpenAIReply.caption(f"fake caption {tag}, test scene")


ChatResponder = Callable[[ChatRequest], HttpReply]


class FakeOpenAIServer(FakeHttpServer):
    """The fake OpenAI-compatible server (see the module docstring). ``api_key`` None accepts
    any key or none (a local server); ``models`` are the ids it serves; ``vision`` False makes
    every model text-only; ``accepts_response_format`` False rejects ``response_format``."""

    url_path = "/v1"
    name = "fake-openai"

    def __init__(self, *, api_key: str | None = None, models: Sequence[str] = DEFAULT_MODELS,
                 responder: ChatResponder | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = list(models)
        self.vision = True
        self.accepts_response_format = True
        self.responder: ChatResponder = responder or default_responder

    @property
    def chat_requests(self) -> list[ChatRequest]:
        """The ``POST /v1/chat/completions`` requests so far, parsed, in arrival order."""
        return [ChatRequest.parse(r) for r in self.requests
                if r.method == "POST" and r.path == "/v1/chat/completions"]

    def reset(self) -> None:
        """Forget requests and queued replies; back to the default settings."""
        super().reset()
        self.api_key = None
        self.models = list(DEFAULT_MODELS)
        self.vision = True
        self.accepts_response_format = True
        self.responder = default_responder

    def handle(self, request: RecordedRequest) -> HttpReply:
        if self.api_key is not None and request.header("authorization") != \
                f"Bearer {self.api_key}":
            return OpenAIReply.unauthorized()
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            queued = self.next_queued("models")
            if queued is not None:
                return queued
            data = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "fake"}
                    for m in self.models]
            return HttpReply.json({"object": "list", "data": data})
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self._chat(ChatRequest.parse(request))
        return _error(404, f"Unknown path {request.path}", "invalid_request_error")

    def _chat(self, chat: ChatRequest) -> HttpReply:
        if chat.model not in self.models:
            return OpenAIReply.model_not_found(chat.model)
        if not self.vision and chat.image_url is not None:
            return OpenAIReply.no_vision(chat.model)
        if not self.accepts_response_format and chat.response_format is not None:
            return OpenAIReply.response_format_rejected()
        queued = self.next_queued("chat")
        return queued if queued is not None else self.responder(chat)
