"""The OpenAI-compatible captioning backend: OpenAI's Chat Completions API and the servers that
copy it (Ollama, LM Studio, vLLM, llama.cpp's server, OpenRouter), on the official ``openai``
SDK.

One :class:`OpenAICaptioner` holds one ``openai.OpenAI`` client and may be called from several
threads at once: the sync client sends every request through one ``httpx2.Client`` (a
thread-safe connection pool) and builds each request's options afresh. The SDK's own retry is
off (``max_retries=0``); the caller retries :class:`TransientError` and honours its
``retry_after``.

Facts this module relies on (OpenAI API reference and the servers' documentation, 2026):

* An image goes in a user message as an ``image_url`` content part whose URL may be a
  ``data:image/jpeg;base64,...`` URL; every server above accepts that form.
* Structured output is ``response_format={"type": "json_schema", "json_schema": {"name",
  "schema"}}``. Not every server takes it (older Ollama and llama.cpp releases, some proxies):
  they answer 400 or 422, and the schema must then go into the prompt as text.
* Errors arrive as ``openai.APIStatusError`` with ``status_code``, ``code`` and ``type`` from
  the body's ``{"error": {"message", "type", "param", "code"}}`` and the ``httpx2`` response
  (its headers carry ``Retry-After`` / ``retry-after-ms``). An account without credit gets
  429 with code ``insufficient_quota``. Timeouts raise ``openai.APITimeoutError``, a subclass
  of ``openai.APIConnectionError`` (refused connection, dropped connection).
* A refusal is ``message.refusal`` (a string) with no content; a filtered answer ends with
  ``finish_reason`` ``content_filter``.
* The SDK reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` only when given None; this module
  always passes both, so what it resolves is what is used.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from openai.types.shared_params import ResponseFormatJSONSchema

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
    AuthenticationError,
    CaptionError,
    ImageRejectedError,
    InputError,
    LoraCapError,
    QuotaExhaustedError,
)
from loracap.core.prompts import Instructions, parse_answer, sanitize_text

logger = logging.getLogger(__name__)

BACKEND_NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "OPENAI_BASE_URL"
#: Sent as the key when none is given: local servers ignore it, and the SDK refuses to build a
#: client with no key at all.
NO_KEY = "no-key"
#: The project option (``BackendConfig.options``) that says whether the server takes
#: ``response_format``; see :meth:`OpenAICaptioner.learned_options`.
STRUCTURED_OUTPUT_OPTION = "structured_output"
#: How many model names an error message lists.
_MAX_LISTED_MODELS = 12

_T = TypeVar("_T")

_KEY_ADVICE = ("Save a key with `loracap key set --backend openai` or set OPENAI_API_KEY "
               "(a local server needs none).")
_MODEL_ADVICE = ("Choose one of the server's models (`loracap models --backend openai` lists "
                 "them), and check that the base URL is the API's (it usually ends in /v1).")
_VISION_WORDS = ("image", "vision", "multimodal", "multi-modal")
_REFUSAL_WORDS = (
    "not support", "unsupported", "only supported by", "not a multimodal", "not multimodal",
    "no endpoints found that support", "does not accept", "doesn't accept", "not enabled",
    "text-only", "text only",
)
_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)


@dataclass(frozen=True)
class OpenAIPreset:
    """A known OpenAI-compatible server: ``name`` (``"ollama"``), ``label`` as shown,
    ``base_url`` (its documented default address), ``needs_key``, and the defaults to caption
    with: ``workers`` requests at once and ``rpm`` request starts per minute (0: no limit)."""

    name: str
    label: str
    base_url: str
    needs_key: bool
    workers: int
    rpm: int


#: The servers the front ends offer. Local servers run one model on the user's own GPU, where
#: parallel requests only queue (Ollama and LM Studio answer one request per model at a time by
#: default; vLLM batches, so two keep it busy) and no rate limit applies. OpenAI's 60 rpm is
#: the registry's conservative default; OpenRouter's 20 rpm is its documented limit for free
#: models, which paid models exceed.
OPENAI_PRESETS: tuple[OpenAIPreset, ...] = (
    OpenAIPreset("openai", "OpenAI", DEFAULT_BASE_URL, True, 4, 60),
    OpenAIPreset("ollama", "Ollama", "http://localhost:11434/v1", False, 1, 0),
    OpenAIPreset("lmstudio", "LM Studio", "http://localhost:1234/v1", False, 1, 0),
    OpenAIPreset("vllm", "vLLM", "http://localhost:8000/v1", False, 2, 0),
    OpenAIPreset("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", True, 4, 20),
)

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _url_key(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) of ``url`` for comparing server addresses: the scheme's
    default port filled in, loopback names made one, a trailing slash ignored."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if port is None:
        port = 443 if scheme == "https" else 80
    if host in _LOOPBACK_HOSTS:
        host = "localhost"
    return scheme, host, port, parts.path.rstrip("/")


def preset_for_url(url: str) -> OpenAIPreset | None:
    """The preset whose base URL is ``url`` (``http://127.0.0.1:11434/v1/`` is Ollama's), or
    None for another server or an unusable URL."""
    key = _url_key(url)
    if key is None:
        return None
    for preset in OPENAI_PRESETS:
        if _url_key(preset.base_url) == key:
            return preset
    return None


def resolve_base_url(config_url: str) -> str:
    """The base URL to use: ``config_url``, else ``OPENAI_BASE_URL``, else OpenAI's
    (:data:`DEFAULT_BASE_URL`); without a trailing slash. Raises :class:`InputError` when it is
    not an http(s) URL with a host (:func:`loracap.core.backends.base.resolve_base_url`)."""
    return base.resolve_base_url(config_url, BASE_URL_ENV, DEFAULT_BASE_URL, "openai",
                                 example="http://localhost:11434/v1 for Ollama")


def schema_prompt(prompt: str, schema: dict[str, Any]) -> str:
    """``prompt`` with ``schema`` appended as text, for a server that does not take
    ``response_format``."""
    return (f"{prompt}\n\nAnswer with one JSON object that follows this JSON schema: "
            f"{json.dumps(schema, ensure_ascii=False)}")


class _StructuredRefused(Exception):
    """A 400/422 to a request that carried ``response_format``; ``error`` is what it means
    otherwise."""

    def __init__(self, error: LoraCapError) -> None:
        super().__init__(str(error))
        self.error = error


class OpenAICaptioner:
    """Captions JPEG images with a model of an OpenAI-compatible server; safe to call from
    several threads at once.

    ``base_url`` is the API's URL (``http://localhost:11434/v1``), already resolved and checked
    (:func:`resolve_base_url`); ``api_key`` ``""`` sends :data:`NO_KEY`. ``model`` may be ``""``
    only to list models. ``timeout_s`` bounds each HTTP request (seconds).
    ``structured_output`` False never sends ``response_format`` (the schema goes into the
    prompt); it also turns False by itself when the server refuses ``response_format`` (see
    :meth:`ask` and :meth:`learned_options`).
    """

    #: :meth:`prepare` decodes every pixel (:func:`~loracap.core.backends.base.prepare_jpeg`).
    prepare_decodes_whole = True

    def __init__(self, base_url: str, api_key: str, model: str, *, timeout_s: float = 60.0,
                 structured_output: bool = True) -> None:
        self.backend = BACKEND_NAME
        self.model = model.strip()
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.structured_output = structured_output
        self._learned_no_structured = False
        self._lock = threading.Lock()
        self.service = f"OpenAI-compatible server at {display_url(base_url)}"
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or NO_KEY,
                                     timeout=timeout_s, max_retries=0)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> OpenAICaptioner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def learned_options(self) -> dict[str, Any]:
        """What this captioner learned about the server, for the front end to save in the
        project's backend options: ``{"structured_output": False}`` once the server refused
        ``response_format``, else ``{}``."""
        with self._lock:
            return {STRUCTURED_OUTPUT_OPTION: False} if self._learned_no_structured else {}

    def prepare(self, path: Path, max_side: int) -> bytes:
        """JPEG bytes of the image at ``path``, long side at most ``max_side`` px
        (:func:`~loracap.core.backends.base.prepare_jpeg`)."""
        return prepare_jpeg(path, max_side)

    def ask(self, jpeg: bytes, prompt: str, *, json_schema: dict[str, Any] | None = None
            ) -> Answer:
        """Ask the model about one image with one chat completion (two when the server refuses
        ``response_format``); the answer's text as received (``message.content``, a leading
        ``<think>...</think>`` block of a reasoning model included), not cleaned.

        The user message holds ``prompt`` as a text part, then ``jpeg`` as a
        ``data:image/jpeg;base64`` URL. ``json_schema`` is sent as ``response_format`` while
        :attr:`structured_output` is True; a 400 or 422 to that request is retried at once
        without it, the schema appended to the prompt (:func:`schema_prompt`), and when that
        succeeds the server is known not to take it (:attr:`structured_output` False from then
        on). ``Answer.prompt`` is the prompt sent last.

        Raises: :class:`TransientError` (``rate_limit`` with the server's ``Retry-After``,
        ``server`` for 408/409/5xx, ``timeout``, ``connection``); :class:`QuotaExhaustedError`
        (429 ``insufficient_quota``); :class:`AuthenticationError` (401/403);
        :class:`ImageRejectedError` (a refusal, ``content_filter``, an empty answer, another
        400/422); :class:`CaptionError` (an unknown model, a model that takes no images,
        another 4xx, an answer that is no chat completion).
        """
        prompt, schema = self.first_request(prompt, json_schema)
        logger.debug("%s %s: asking about %d bytes of JPEG", self.service, self.model,
                     len(jpeg))
        if schema is not None:
            try:
                response = self._call(lambda: self._create(jpeg, prompt, schema),
                                      response_format_sent=True)
            except _StructuredRefused as refused:
                logger.info("%s refused response_format (%s); asking again with the schema "
                            "in the prompt", self.service, refused.error)
                prompt = schema_prompt(prompt, schema)
                response = self._call(lambda: self._create(jpeg, prompt, None))
                self._learn_no_structured()
        else:
            response = self._call(lambda: self._create(jpeg, prompt, None))
        return Answer(answer_text(response, self.service), BACKEND_NAME, self.model, prompt,
                      usage_of(response))

    def caption(self, jpeg: bytes, instructions: Instructions, *, trigger: str, prefix: str
                ) -> GeneratedCaption:
        """Caption one image: :meth:`ask` with ``instructions.prompt`` and
        ``instructions.json_schema`` (so the ``response_format`` fallback applies), then the
        answer cleaned by ``parse_answer`` (a JSON answer assembled, other text cleaned as a
        caption) after a leading ``<think>...</think>`` block is dropped.

        Raises the errors of :meth:`ask`, and :class:`ImageRejectedError` for an answer with
        nothing left after cleaning or too long to be a caption.
        """
        answer = self.ask(jpeg, instructions.prompt, json_schema=instructions.json_schema)
        body = parse_answer(without_thinking(answer.text), instructions, trigger, prefix)
        if not body:
            raise ImageRejectedError(
                f"{self.service} returned an empty answer (nothing left after cleaning)."
            )
        return GeneratedCaption(body, answer.text, BACKEND_NAME, self.model, answer.prompt,
                                answer.usage)

    def list_models(self) -> list[str]:
        """The ids of the server's models (``GET /models``), sorted. Raises the errors of
        :meth:`caption` for HTTP failures."""
        return sorted({m.id for m in self._call(lambda: list(self._client.models.list()))})

    def first_request(self, prompt: str, json_schema: dict[str, Any] | None
                      ) -> tuple[str, dict[str, Any] | None]:
        """The prompt and the ``response_format`` schema this captioner sends first for
        ``prompt`` and ``json_schema``: both as they are while :attr:`structured_output` is
        True; else the schema appended to the prompt (:func:`schema_prompt`) and None."""
        if json_schema is not None and not self.structured_output:
            return schema_prompt(prompt, json_schema), None
        return prompt, json_schema

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client (for the Batch and Files APIs: :mod:`loracap.core.batches.openai`)."""
        return self._client

    def call(self, request: Callable[[], _T]) -> _T:
        """``request()`` -- one call of the SDK -- with its failures mapped to LoRACap's errors
        as :meth:`ask` maps them (:meth:`_map_status`, timeouts, lost connections)."""
        return self._call(request)

    def _learn_no_structured(self) -> None:
        with self._lock:
            if self.structured_output:
                logger.warning("%s does not take response_format; structured profiles ask "
                               "for JSON in the prompt from now on", self.service)
            self.structured_output = False
            self._learned_no_structured = True

    def _create(self, jpeg: bytes, prompt: str, schema: dict[str, Any] | None
                ) -> ChatCompletion:
        return self._client.chat.completions.create(**chat_body(self.model, jpeg, prompt,
                                                                schema))

    def _call(self, request: Callable[[], _T], *, response_format_sent: bool = False) -> _T:
        try:
            return request()
        except openai.APIStatusError as exc:
            error = self._map_status(exc)
            if (response_format_sent and exc.status_code in (400, 422)
                    and isinstance(error, ImageRejectedError)):
                raise _StructuredRefused(error) from exc
            raise error from exc
        except openai.APITimeoutError as exc:
            raise timeout_error(self.service, self.timeout_s) from exc
        except openai.APIConnectionError as exc:
            raise connection_error(self.service, exc.__cause__ or exc) from exc

    def _map_status(self, exc: openai.APIStatusError) -> LoraCapError:
        """The LoRACap error of an HTTP error answer: a model that takes no images first, then
        the shared rules (:func:`~loracap.core.backends.base.status_error`)."""
        status = exc.status_code
        text = server_text(status, error_message(exc.body))
        if status in (400, 404, 422) and _says_no_vision(text):
            return CaptionError(
                f"The model '{self.model}' at {display_url(self.base_url)} does not accept "
                f"images ({text}); choose a vision model with --model."
            )
        quota = status == 429 and "insufficient_quota" in (exc.code, exc.type)
        return status_error(
            self.service, status, text, model=self.model,
            retry_after=parse_retry_after(exc.response.headers), quota_used_up=quota,
            key_advice=_KEY_ADVICE, model_advice=_MODEL_ADVICE,
        )

    def pick_model(self) -> str:
        """The server's only model, for when none was chosen (a vLLM server serves one).

        Raises :class:`InputError` when the list cannot be read, is empty or has several
        models (they are named in the message); a refused key or a used-up quota as it is
        (exit 3 or 4, as for a caption).
        """
        try:
            models = self.list_models()
        except (AuthenticationError, QuotaExhaustedError):
            raise
        except CaptionError as exc:
            raise InputError(f"No model was chosen and the model list of {self.service} could "
                             f"not be read: {exc} Choose one with --model.") from exc
        if len(models) == 1:
            return models[0]
        if not models:
            raise InputError(f"No model was chosen and {self.service} lists no models; load "
                             "one in the server, then choose it with --model.")
        shown = ", ".join(models[:_MAX_LISTED_MODELS])
        more = f" and {len(models) - _MAX_LISTED_MODELS} more" if len(models) > \
            _MAX_LISTED_MODELS else ""
        raise InputError(f"No model was chosen and {self.service} offers several ({shown}"
                         f"{more}); choose one with --model.")


def error_message(body: object) -> str:
    """The server's message in an error answer's ``body``: ``error.message`` (the SDK keeps the
    inside of ``"error"`` as an ``APIStatusError``'s ``body``; a Batch API error line has the
    whole body), vLLM's top-level ``message``, FastAPI's ``detail``, a plain-string body."""
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
        return ""
    if isinstance(body, str):
        return body
    return ""


def _says_no_vision(text: str) -> bool:
    """True when an error text says the model takes no images ("model llava does not support
    images", "image input is not supported", "... is not a multimodal model", OpenAI's
    "image_url is only supported by certain models", OpenRouter's "No endpoints found that
    support image input")."""
    lowered = text.lower()
    return any(w in lowered for w in _VISION_WORDS) and any(w in lowered for w in _REFUSAL_WORDS)


def chat_body(model: str, jpeg: bytes, prompt: str, schema: dict[str, Any] | None = None
              ) -> CompletionCreateParamsNonStreaming:
    """The Chat Completions request body for one image, as :meth:`OpenAICaptioner.ask` sends
    it and as a Batch API request line carries it (its ``body``): ``model``, one user message
    holding ``prompt`` as a text part, then ``jpeg`` as a ``data:image/jpeg;base64`` URL; with
    ``schema``, ``response_format`` ``json_schema`` named ``caption``."""
    text: ChatCompletionContentPartTextParam = {"type": "text", "text": prompt}
    data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    image: ChatCompletionContentPartImageParam = {
        "type": "image_url", "image_url": {"url": data_url},
    }
    message: ChatCompletionUserMessageParam = {"role": "user", "content": [text, image]}
    body: CompletionCreateParamsNonStreaming = {"model": model, "messages": [message]}
    if schema is not None:
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema", "json_schema": {"name": "caption", "schema": schema},
        }
        body["response_format"] = response_format
    return body


def answer_text(response: object, service: str) -> str:
    """The text of a chat completion (``service`` names the server in messages), as
    :meth:`OpenAICaptioner.ask` and the Batch API results read it: the first choice's
    ``message.content`` as received. Raises :class:`ImageRejectedError` for a refusal, a
    filtered or an empty answer (nothing but a ``<think>`` block), :class:`CaptionError` for
    an answer that is no chat completion."""
    if not isinstance(response, ChatCompletion):
        raise CaptionError(
            f"{service} did not answer like an OpenAI-compatible API (the answer is "
            "no chat completion); check the base URL."
        )
    if not response.choices:
        raise ImageRejectedError(f"{service} returned an empty answer (no choices).")
    choice = response.choices[0]
    refusal = getattr(choice.message, "refusal", None)
    if refusal:
        detail = " ".join(sanitize_text(str(refusal)).split())[:300]
        raise ImageRejectedError(f"The model refused to caption this image ({detail}).")
    if choice.finish_reason == "content_filter":
        raise ImageRejectedError(
            f"{service} blocked this image (finish reason content_filter)."
        )
    text = choice.message.content or ""
    if not without_thinking(text).strip():
        raise ImageRejectedError(f"{service} returned an empty answer.")
    if choice.finish_reason == "length":
        logger.info("%s stopped at its output token limit; keeping the partial answer",
                    service)
    return text


def without_thinking(text: str) -> str:
    """``text`` without a leading ``<think>...</think>`` block (a reasoning model's)."""
    return _THINK_BLOCK.sub("", text, count=1)


def usage_of(response: ChatCompletion) -> TokenUsage:
    """``usage.prompt_tokens`` / ``completion_tokens`` (reasoning tokens are counted in the
    completion tokens), zeros when the server does not say."""
    usage = response.usage
    if usage is None:
        return TokenUsage()
    return TokenUsage(usage.prompt_tokens or 0, usage.completion_tokens or 0)


def _structured_option(config: BackendConfig) -> bool:
    return config.options.get(STRUCTURED_OUTPUT_OPTION, True) is not False


def create(config: BackendConfig) -> OpenAICaptioner:
    """The registry's factory (:mod:`loracap.core.backends.registry`): the base URL from
    ``config``/``OPENAI_BASE_URL``/OpenAI's, ``options["structured_output"]`` (default True),
    and, when ``config.model`` is empty, the server's only model (:meth:`OpenAICaptioner.
    pick_model`). Raises :class:`InputError` for a bad base URL or no model to pick."""
    captioner = OpenAICaptioner(resolve_base_url(config.base_url), config.api_key, config.model,
                                timeout_s=config.timeout_s,
                                structured_output=_structured_option(config))
    if not captioner.model:
        try:
            captioner.model = captioner.pick_model()
        except BaseException:
            captioner.close()
            raise
        logger.info("%s: using its only model, %s", captioner.service, captioner.model)
    return captioner


def list_models(config: BackendConfig) -> list[str]:
    """The ids of the server's models, sorted (see :meth:`OpenAICaptioner.list_models`)."""
    with OpenAICaptioner(resolve_base_url(config.base_url), config.api_key, config.model,
                         timeout_s=config.timeout_s) as captioner:
        return captioner.list_models()
