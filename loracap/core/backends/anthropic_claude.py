"""The Claude captioning backend, on the official ``anthropic`` SDK (the Messages API).

One :class:`ClaudeCaptioner` holds one ``anthropic.Anthropic`` client and may be called from
several threads at once: the sync client sends every request through one ``httpx2.Client`` (a
thread-safe connection pool) and builds each request's options afresh. The SDK's own retry is
off (``max_retries=0``); the caller retries :class:`TransientError` and honours its
``retry_after``.

Facts this module relies on (Anthropic API documentation, 2026):

* Images go in a user message as ``{"type": "image", "source": {"type": "base64",
  "media_type": "image/jpeg", "data": ...}}``, best placed before the text ("Vision" guide).
  An image whose long edge exceeds 1568 px is scaled down by the API before the model sees it,
  so sending more only costs upload time (:data:`MAX_IMAGE_SIDE`).
* Structured output: a tool whose ``input_schema`` is the JSON schema and
  ``tool_choice={"type": "tool", "name": ...}`` make the model answer with one ``tool_use``
  block whose ``input`` is an object following the schema.
* Errors are ``{"type": "error", "error": {"type", "message"}}``: 429 ``rate_limit_error``
  with a ``retry-after`` header (seconds), 529 ``overloaded_error`` (temporary), 401
  ``authentication_error``, 403 ``permission_error``, 404 ``not_found_error`` (an unknown
  model), 402 ``billing_error``, and a 400 whose message says the credit balance is too low.
  The SDK raises ``anthropic.APIStatusError`` subclasses with ``status_code``, ``api_message``,
  ``error_code`` and the ``httpx2`` response; ``anthropic.APITimeoutError`` (a subclass of
  ``anthropic.APIConnectionError``) for a timeout.
* ``stop_reason`` ``"refusal"`` means the model declined; ``stop_details.explanation`` may say
  why. ``usage`` has ``input_tokens`` and ``output_tokens``.
* The SDK reads ``ANTHROPIC_BASE_URL`` only when given None, and no credential from the
  environment when given ``api_key``; this module passes both.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anthropic
from anthropic.types import (
    ImageBlockParam,
    Message,
    TextBlockParam,
    ToolChoiceToolParam,
    ToolParam,
)
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from loracap.core.backends import base
from loracap.core.backends.base import (
    Answer,
    BackendConfig,
    GeneratedCaption,
    TokenUsage,
    connection_error,
    display_url,
    parse_retry_after,
    prepare_jpeg,
    server_text,
    status_error,
    timeout_error,
)
from loracap.core.errors import (
    ApiKeyMissingError,
    CaptionError,
    ImageRejectedError,
    LoraCapError,
    QuotaExhaustedError,
)
from loracap.core.prompts import Instructions, parse_answer, sanitize_text

logger = logging.getLogger(__name__)

BACKEND_NAME = "anthropic"
DEFAULT_MODEL = "claude-haiku-4-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
#: Longest image side sent, in pixels: the API scales larger images down to it anyway
#: (Anthropic "Vision" documentation, "Evaluate image size").
MAX_IMAGE_SIDE = 1568
#: Output token cap of one answer: a caption body is at most 4,000 characters
#: (:data:`loracap.core.prompts.ANSWER_LIMITS`), about 1,000 tokens; twice that leaves room for
#: a structured answer's JSON.
MAX_OUTPUT_TOKENS = 2048
#: The tool that carries a structured answer.
TOOL_NAME = "caption"

_T = TypeVar("_T")

_KEY_ADVICE = "Save a key with `loracap key set --backend anthropic` or set ANTHROPIC_API_KEY."
_MODEL_ADVICE = (f"Choose another model with --model (`loracap models --backend anthropic` "
                 f"lists them), for example {DEFAULT_MODEL}.")
_CREDIT_WORDS = ("credit balance is too low", "spend limit", "billing")


def resolve_base_url(config_url: str) -> str:
    """The base URL to use: ``config_url``, else ``ANTHROPIC_BASE_URL``, else Anthropic's
    (:data:`DEFAULT_BASE_URL`), without a trailing slash. Raises :class:`InputError` when it is
    not an http(s) URL with a host (:func:`loracap.core.backends.base.resolve_base_url`)."""
    return base.resolve_base_url(config_url, BASE_URL_ENV, DEFAULT_BASE_URL, "anthropic")


class ClaudeCaptioner:
    """Captions JPEG images with a Claude model; safe to call from several threads at once.

    ``api_key`` is the Anthropic API key (:class:`ApiKeyMissingError` when ``""``);
    ``base_url`` the API's URL, already resolved (:func:`resolve_base_url`); ``timeout_s``
    bounds each HTTP request (seconds).
    """

    #: :meth:`prepare` decodes every pixel (:func:`~loracap.core.backends.base.prepare_jpeg`).
    prepare_decodes_whole = True

    def __init__(self, api_key: str, model: str = DEFAULT_MODEL, *,
                 base_url: str = DEFAULT_BASE_URL, timeout_s: float = 60.0) -> None:
        if not api_key:
            raise ApiKeyMissingError(f"No Anthropic API key was found. {_KEY_ADVICE}")
        self.backend = BACKEND_NAME
        self.model = model.strip() or DEFAULT_MODEL
        self.base_url = base_url
        self.timeout_s = timeout_s
        shown = display_url(base_url)
        self.service = "Claude" if shown == DEFAULT_BASE_URL else f"Claude API at {shown}"
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url,
                                           timeout=timeout_s, max_retries=0)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> ClaudeCaptioner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def prepare(self, path: Path, max_side: int) -> bytes:
        """JPEG bytes of the image at ``path``, long side at most ``max_side`` px and never over
        :data:`MAX_IMAGE_SIDE` (:func:`~loracap.core.backends.base.prepare_jpeg`)."""
        return prepare_jpeg(path, min(max_side, MAX_IMAGE_SIDE))

    def ask(self, jpeg: bytes, prompt: str, *, json_schema: dict[str, Any] | None = None
            ) -> Answer:
        """Ask the model about one image with one Messages request; the answer's text as
        received, not cleaned.

        The user message holds ``jpeg`` as a base64 ``image/jpeg`` block, then ``prompt``.
        ``json_schema`` offers the tool :data:`TOOL_NAME` with it as its input schema and forces
        its use; the tool call's input serialised with ``json.dumps(..., ensure_ascii=False)``
        is then the text. Otherwise the text blocks, joined by newlines, are the text.

        Raises: :class:`TransientError` (``rate_limit`` with the ``retry-after`` seconds,
        ``server`` for 5xx and 529 ``overloaded_error``, ``timeout``, ``connection``);
        :class:`QuotaExhaustedError` (no credit left, a spend limit, 402);
        :class:`AuthenticationError` (401/403); :class:`ImageRejectedError` (a refusal, an
        empty answer, another 400/422); :class:`CaptionError` (an unknown model, another 4xx).
        """
        params = message_params(self.model, jpeg, prompt, json_schema)
        logger.debug("%s %s: asking about %d bytes of JPEG", self.service, self.model,
                     len(jpeg))
        response = self.call(lambda: self._client.messages.create(**params))
        return Answer(answer_text(response, self.service), BACKEND_NAME, self.model, prompt,
                      usage_of(response))

    def caption(self, jpeg: bytes, instructions: Instructions, *, trigger: str, prefix: str
                ) -> GeneratedCaption:
        """Caption one image: :meth:`ask` with ``instructions.prompt`` and
        ``instructions.json_schema`` (a structured answer arrives as the tool call's JSON, which
        is ``raw``), then the answer cleaned by ``parse_answer`` (a JSON answer assembled,
        other text cleaned as a caption).

        Raises the errors of :meth:`ask`, and :class:`ImageRejectedError` for an answer with
        nothing left after cleaning or too long to be a caption.
        """
        answer = self.ask(jpeg, instructions.prompt, json_schema=instructions.json_schema)
        body = parse_answer(answer.text, instructions, trigger, prefix)
        if not body:
            raise ImageRejectedError(
                f"{self.service} returned an empty answer (nothing left after cleaning)."
            )
        return GeneratedCaption(body, answer.text, BACKEND_NAME, self.model, answer.prompt,
                                answer.usage)

    def list_models(self) -> list[str]:
        """The ids of the models the key may use (the Models API, every page), newest first as
        the API lists them. Raises the errors of :meth:`caption` for HTTP failures."""
        return self.call(lambda: [model.id for model in self._client.models.list()])

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client (for the Message Batches API: :mod:`loracap.core.batches.anthropic`)."""
        return self._client

    def call(self, request: Callable[[], _T]) -> _T:
        """``request()`` -- one call of the SDK -- with its failures mapped to LoRACap's errors
        as :meth:`ask` maps them (:meth:`_map_status`, timeouts, lost connections)."""
        try:
            return request()
        except anthropic.APIStatusError as exc:
            raise self._map_status(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise timeout_error(self.service, self.timeout_s) from exc
        except anthropic.APIConnectionError as exc:
            raise connection_error(self.service, exc.__cause__ or exc) from exc

    def _map_status(self, exc: anthropic.APIStatusError) -> LoraCapError:
        """The LoRACap error of an HTTP error answer: no credit or a spend limit first (402, a
        400 "credit balance is too low", a 429 whose code names a spend limit), then the
        shared rules (:func:`~loracap.core.backends.base.status_error`; 529 is temporary)."""
        status = exc.status_code
        message = exc.api_message or (exc.body if isinstance(exc.body, str) else "")
        text = server_text(f"{status} {exc.type}" if exc.type else status, message)
        lowered = f"{message} {exc.error_code or ''}".lower().replace("_", " ")
        if status == 402 or (status in (400, 403) and any(w in lowered for w in _CREDIT_WORDS)):
            return QuotaExhaustedError(f"The {self.service} credit or spend limit is used up "
                                       f"({text}).")
        return status_error(
            self.service, status, text, model=self.model,
            retry_after=parse_retry_after(exc.response.headers),
            quota_used_up=status == 429 and "spend limit" in lowered,
            key_advice=_KEY_ADVICE, model_advice=_MODEL_ADVICE,
        )


def message_params(model: str, jpeg: bytes, prompt: str,
                   json_schema: dict[str, Any] | None = None) -> MessageCreateParamsNonStreaming:
    """The Messages request for one image, as :meth:`ClaudeCaptioner.ask` sends it and as a
    Message Batches request carries it (its ``params``): ``model``, ``max_tokens``
    :data:`MAX_OUTPUT_TOKENS`, one user message holding ``jpeg`` as a base64 ``image/jpeg``
    block, then ``prompt``; with ``json_schema``, the tool :data:`TOOL_NAME` with it as its
    input schema, its use forced."""
    image: ImageBlockParam = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg",
                   "data": base64.b64encode(jpeg).decode("ascii")},
    }
    text: TextBlockParam = {"type": "text", "text": prompt}
    params: MessageCreateParamsNonStreaming = {
        "model": model, "max_tokens": MAX_OUTPUT_TOKENS,
        "messages": [{"role": "user", "content": [image, text]}],
    }
    if json_schema is not None:
        tool: ToolParam = {
            "name": TOOL_NAME,
            "description": "Record the description of the image, one field per property.",
            "input_schema": json_schema,
        }
        choice: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
        params["tools"] = [tool]
        params["tool_choice"] = choice
    return params


def answer_text(response: object, service: str) -> str:
    """The text of a Messages answer (``service`` names the API in messages), as
    :meth:`ClaudeCaptioner.ask` and the Message Batches results read it: the input of the
    tool :data:`TOOL_NAME` serialised with ``json.dumps(..., ensure_ascii=False)``, else the
    text blocks joined by newlines. Raises :class:`ImageRejectedError` for a refusal or an
    empty answer, :class:`CaptionError` for an answer that is no Message."""
    if not isinstance(response, Message):
        raise CaptionError(f"{service} did not answer like the Messages API; check "
                           "the base URL.")
    if response.stop_reason == "refusal":
        details = response.stop_details
        explanation = details.explanation if details is not None else None
        why = " ".join(sanitize_text(explanation or "").split())[:300]
        raise ImageRejectedError(
            f"Claude declined to caption this image{f' ({why})' if why else ''}."
        )
    texts: list[str] = []
    for block in response.content:
        if block.type == "tool_use" and block.name == TOOL_NAME:
            return json.dumps(block.input, ensure_ascii=False)
        if block.type == "text":
            texts.append(block.text)
    text = "\n".join(texts)
    if not text.strip():
        reason = f" (stop reason {response.stop_reason})" if response.stop_reason else ""
        raise ImageRejectedError(f"{service} returned an empty answer{reason}.")
    if response.stop_reason == "max_tokens":
        logger.info("%s stopped at its output token limit; keeping the partial answer",
                    service)
    return text


def usage_of(response: Message) -> TokenUsage:
    """``usage.input_tokens`` (with cache reads and writes, which are input too) and
    ``usage.output_tokens``."""
    usage = response.usage
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return TokenUsage((usage.input_tokens or 0) + cached, usage.output_tokens or 0)


def create(config: BackendConfig) -> ClaudeCaptioner:
    """The registry's factory (:mod:`loracap.core.backends.registry`): ``config.api_key``, the
    base URL from ``config``/``ANTHROPIC_BASE_URL``/Anthropic's, ``config.model`` or
    :data:`DEFAULT_MODEL`. Raises :class:`InputError` for a bad base URL and
    :class:`ApiKeyMissingError` without a key."""
    return ClaudeCaptioner(config.api_key, config.model or DEFAULT_MODEL,
                           base_url=resolve_base_url(config.base_url),
                           timeout_s=config.timeout_s)


def list_models(config: BackendConfig) -> list[str]:
    """The Claude models the key may use (see :meth:`ClaudeCaptioner.list_models`)."""
    with create(config) as captioner:
        return captioner.list_models()
