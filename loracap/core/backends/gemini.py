"""The Gemini captioning backend, on the ``google-genai`` SDK (the older Gemini SDK has been
unsupported since 2025-09-30).

One :class:`GeminiCaptioner` holds one ``genai.Client`` and may be called from several threads at
once: for an API key the SDK's sync path sends every request through one ``httpx2.Client``
(a thread-safe connection pool), its ``tenacity.Retrying`` keeps per-call state in a
``threading.local``, and per-request options are copied, never written into the shared ones.
The SDK's own retry stays off (``HttpOptions.retry_options`` unset means one attempt); the caller
retries :class:`TransientError` and honours its ``retry_after``, which the SDK's retry ignores.

Facts this module relies on (Gemini API docs and observed error bodies, late 2026):

* Errors arrive as ``google.genai.errors.APIError`` (``ClientError`` 4xx, ``ServerError`` 5xx)
  with ``.code``, ``.status``, ``.message`` and ``.details`` (the whole JSON body,
  ``{"error": {"code", "message", "status", "details": [...]}}``).
* A 429 ``RESOURCE_EXHAUSTED`` carries ``google.rpc.QuotaFailure`` whose violations' ``quotaId``
  tells a per-minute quota (``GenerateRequestsPerMinutePerProjectPerModel-FreeTier``) from a
  per-day one (``...PerDay...``), and ``google.rpc.RetryInfo`` with ``retryDelay`` as a protobuf
  Duration string (``"26s"``, ``"1.500s"``). A per-day 429 also carries a RetryInfo; it is still
  a per-day quota. Free-tier quotas reset daily at midnight Pacific time.
* An invalid key is ``400 INVALID_ARGUMENT`` with ``google.rpc.ErrorInfo`` reason
  ``API_KEY_INVALID``; a missing or unauthorised key is 401/403.
* A blocked prompt has ``prompt_feedback.block_reason`` and no candidates (``response.text`` is
  None, not an exception); a candidate may end with ``finish_reason`` SAFETY,
  PROHIBITED_CONTENT, RECITATION, BLOCKLIST, SPII, IMAGE_SAFETY or MAX_TOKENS.
* Transport failures are raised by the SDK's HTTP layer unchanged: ``httpx2`` (google-genai's
  default) or ``httpx`` -- ``TimeoutException`` (``ReadTimeout``, ``ConnectTimeout``, ...),
  ``ConnectError`` (refused), ``RemoteProtocolError`` (server closed the connection).
* The base URL is ``HttpOptions(base_url=...)``, else the SDK reads ``GOOGLE_GEMINI_BASE_URL``
  when the client is built (``google/genai/_base_url.py``). google-genai 3.x calls API version
  ``v1`` by default.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from loracap.core.backends.base import (
    Answer,
    BackendConfig,
    GeneratedCaption,
    TokenUsage,
    prepare_jpeg,
    server_text,
    status_error,
)
from loracap.core.defaults import DEFAULT_MODEL
from loracap.core.errors import (
    ImageRejectedError,
    LoraCapError,
    QuotaExhaustedError,
    TransientError,
)
from loracap.core.prompts import Instructions, parse_answer, sanitize_text

logger = logging.getLogger(__name__)

BACKEND_NAME = "gemini"
AI_STUDIO_URL = "https://aistudio.google.com/apikey"

_T = TypeVar("_T")

_BLOCKING_FINISH_REASONS = frozenset({
    "SAFETY", "PROHIBITED_CONTENT", "RECITATION", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")
_MAX_SERVER_TEXT = 300
_SERVICE = "Gemini"
_KEY_ADVICE = f"Check the key, or create a new one at Google AI Studio ({AI_STUDIO_URL})."


def _http_exceptions(*names: str) -> tuple[type[BaseException], ...]:
    """The named exception classes of whichever of httpx2 / httpx is installed."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found.extend(getattr(module, name) for name in names if hasattr(module, name))
    return tuple(found)


_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (
    *_http_exceptions("TimeoutException"), TimeoutError,
)
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    *_http_exceptions("NetworkError", "RemoteProtocolError", "ProxyError"), OSError,
)


class GeminiCaptioner:
    """Captions JPEG images with a Gemini model; safe to call from several threads at once.

    ``timeout_s`` bounds each HTTP request (seconds). ``base_url`` overrides the API endpoint;
    when None the SDK uses ``GOOGLE_GEMINI_BASE_URL`` if set, else Google's endpoint. The SDK's
    own retry is off: every error is mapped to a :mod:`loracap.core.errors` class (see
    :meth:`ask`) and the caller decides whether to retry.
    """

    #: :meth:`prepare` decodes every pixel (:func:`~loracap.core.backends.base.prepare_jpeg`).
    prepare_decodes_whole = True

    def __init__(
        self,
        api_key: str,
        model: str = DEFAULT_MODEL,
        *,
        timeout_s: float = 60.0,
        base_url: str | None = None,
    ) -> None:
        self.backend = BACKEND_NAME
        self.model = model.strip().removeprefix("models/") or DEFAULT_MODEL
        self.timeout_s = timeout_s
        options = types.HttpOptions(timeout=max(1, round(timeout_s * 1000)), base_url=base_url)
        self._client = genai.Client(vertexai=False, api_key=api_key, http_options=options)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> GeminiCaptioner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def prepare(self, path: Path, max_side: int) -> bytes:
        """JPEG bytes of the image at ``path``, long side at most ``max_side`` px
        (:func:`~loracap.core.backends.base.prepare_jpeg`)."""
        return prepare_jpeg(path, max_side)

    def ask(self, jpeg: bytes, prompt: str, *, json_schema: dict[str, Any] | None = None
            ) -> Answer:
        """Ask the model about one image with one ``generateContent`` request; the answer's
        text as received (``response.text``), not cleaned.

        ``jpeg`` is sent unchanged as ``image/jpeg``, before ``prompt``. ``json_schema`` asks
        for ``application/json`` following it (``response_json_schema``).

        Raises: :class:`TransientError` (``kind`` ``rate_limit`` with ``retry_after`` seconds
        from RetryInfo or None, ``server`` for 408/500/502/503/504, ``timeout``, ``connection``);
        :class:`QuotaExhaustedError` (per-day quota); :class:`AuthenticationError`;
        :class:`ImageRejectedError` (blocked, an empty answer, a 400 about the image);
        :class:`CaptionError` (other 4xx such as an unknown model, other 5xx).
        """
        contents = types.Content(
            role="user",
            parts=[
                types.Part.from_bytes(data=jpeg, mime_type="image/jpeg"),
                types.Part.from_text(text=prompt),
            ],
        )
        config = generate_config(json_schema)
        logger.debug("Gemini %s: asking about %d bytes of JPEG", self.model, len(jpeg))
        response = self.call(
            lambda: self._client.models.generate_content(
                model=self.model, contents=contents, config=config
            )
        )
        return Answer(answer_text(response), BACKEND_NAME, self.model, prompt,
                      usage_of(response))

    def caption(
        self, jpeg: bytes, instructions: Instructions, *, trigger: str, prefix: str
    ) -> GeneratedCaption:
        """Caption one image: :meth:`ask` with ``instructions.prompt`` and
        ``instructions.json_schema``, then the answer sanitised, cleaned and cut to the
        profile's length limit (``parse_answer``); ``trigger``/``prefix`` are used only to strip
        a duplicated prefix from it.

        Raises the errors of :meth:`ask`, and :class:`ImageRejectedError` for an answer with
        nothing left after cleaning or too long to be a caption (see
        :data:`loracap.core.prompts.ANSWER_LIMITS`).
        """
        answer = self.ask(jpeg, instructions.prompt, json_schema=instructions.json_schema)
        body = parse_answer(answer.text, instructions, trigger, prefix)
        if not body:
            raise ImageRejectedError(
                "Gemini returned an empty answer (nothing left after cleaning)."
            )
        return GeneratedCaption(body, answer.text, BACKEND_NAME, self.model, answer.prompt,
                                answer.usage)

    def list_models(self) -> list[str]:
        """Names (without ``models/``) of the models that support ``generateContent``, in the
        server's order. Raises the same errors as :meth:`caption` for HTTP failures."""
        models = self.call(lambda: list(self._client.models.list()))
        names: list[str] = []
        for model in models:
            if model.name and "generateContent" in (model.supported_actions or []):
                names.append(model.name.removeprefix("models/"))
        return names

    @property
    def client(self) -> genai.Client:
        """The SDK client (for the Batch and File APIs: :mod:`loracap.core.batches.gemini`)."""
        return self._client

    def call(self, request: Callable[[], _T]) -> _T:
        """``request()`` -- one call of the SDK -- with its failures mapped to LoRACap's
        errors as :meth:`ask` maps them (:func:`map_api_error`, timeouts, lost connections)."""
        try:
            return request()
        except genai_errors.APIError as exc:
            raise map_api_error(exc, self.model) from exc
        except _TIMEOUT_ERRORS as exc:
            raise TransientError(
                f"Gemini did not answer within {self.timeout_s:g} s.", kind="timeout"
            ) from exc
        except _CONNECTION_ERRORS as exc:
            raise TransientError(
                f"Could not reach Gemini ({type(exc).__name__}: {exc}).", kind="connection"
            ) from exc


def generate_config(json_schema: dict[str, Any] | None) -> types.GenerateContentConfig:
    """The request's options: no automatic function calling; with ``json_schema``, an
    ``application/json`` answer following it (``response_json_schema``)."""
    no_afc = types.AutomaticFunctionCallingConfig(disable=True)
    if json_schema is None:
        return types.GenerateContentConfig(automatic_function_calling=no_afc)
    return types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema=json_schema,
        automatic_function_calling=no_afc,
    )


def usage_of(response: types.GenerateContentResponse) -> TokenUsage:
    """The answer's ``usage_metadata`` (prompt and candidate tokens; thinking tokens are billed
    as output), zeros when absent."""
    meta = response.usage_metadata
    if meta is None:
        return TokenUsage()
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return TokenUsage(meta.prompt_token_count or 0, output)


def _enum_name(value: Any) -> str:
    """``"SAFETY"`` from ``FinishReason.SAFETY``, a plain string or None (``""``)."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def answer_text(response: types.GenerateContentResponse) -> str:
    """The answer's text as received; raises :class:`ImageRejectedError` for a blocked
    prompt, a blocking finish reason or an empty answer."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum_name(feedback.block_reason)
        message = " ".join(sanitize_text(feedback.block_reason_message or "").split())
        detail = f": {message[:_MAX_SERVER_TEXT]}" if message else ""
        raise ImageRejectedError(f"Gemini blocked this image ({reason}){detail}.")
    if not response.candidates:
        raise ImageRejectedError("Gemini returned an empty answer (no candidates).")
    reason = _enum_name(response.candidates[0].finish_reason)
    if reason in _BLOCKING_FINISH_REASONS:
        raise ImageRejectedError(f"Gemini blocked this image ({reason}).")
    text = response.text
    if text is None or not text.strip():
        detail = f" (finish reason {reason})" if reason and reason != "STOP" else ""
        raise ImageRejectedError(f"Gemini returned an empty answer{detail}.")
    if reason == "MAX_TOKENS":
        logger.info("Gemini stopped at its output token limit; keeping the partial answer")
    return text


# --- error mapping ----------------------------------------------------------------------------


def map_api_error(exc: genai_errors.APIError, model: str) -> LoraCapError:
    """The LoRACap error for a Gemini HTTP error answer: Gemini's own signs first (a per-day
    quota in ``QuotaFailure``, ``RetryInfo``'s delay, ``API_KEY_INVALID`` in a 400), then the
    rules every backend shares (:func:`loracap.core.backends.base.status_error`)."""
    code = int(exc.code or 0)
    details = _error_details(exc)
    summary = _server_text(exc)
    if code == 429:
        return _map_quota_error(details, f"{code} {exc.status or 'RESOURCE_EXHAUSTED'}")
    if code == 400 and _has_reason(details, "API_KEY_INVALID"):
        code = 401  # Gemini's way of saying "this key is not valid"
    if code == 400:
        # The key and model were accepted, so the request's own content -- this image -- was
        # refused ("Unable to process input image"): fail this image, go on with the batch.
        return ImageRejectedError(f"Gemini could not process this image ({summary}).")
    return status_error(
        _SERVICE, code, summary, model=model, key_advice=_KEY_ADVICE,
        model_advice=f"Choose another model with --model, for example {DEFAULT_MODEL}.",
    )


def _map_quota_error(details: list[dict[str, Any]], head: str) -> LoraCapError:
    quota_ids = _quota_ids(details)
    daily = [quota_id for quota_id in quota_ids if "PerDay" in quota_id]
    if daily:
        return QuotaExhaustedError(
            # What to do next is the front end's to say (errors.stop_advice), once.
            f"The Gemini daily quota is used up ({daily[0]})."
        )
    retry_after = _retry_delay_s(details)
    wait = f" Gemini asks to wait {retry_after:g} s." if retry_after is not None else ""
    quota = f", {quota_ids[0]}" if quota_ids else ""
    return TransientError(
        f"Gemini's rate limit was reached ({head}{quota}).{wait}",
        kind="rate_limit",
        retry_after=retry_after,
    )


def _error_details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    """The ``details`` list of the error body (``[]`` when absent or not JSON)."""
    body = exc.details
    if isinstance(body, dict):
        inner = body.get("error", body)
        found = inner.get("details") if isinstance(inner, dict) else None
        if isinstance(found, list):
            return [item for item in found if isinstance(item, dict)]
    return []


def _of_type(details: list[dict[str, Any]], type_name: str) -> list[dict[str, Any]]:
    return [d for d in details if str(d.get("@type", "")).endswith(f"google.rpc.{type_name}")]


def _has_reason(details: list[dict[str, Any]], reason: str) -> bool:
    return any(d.get("reason") == reason for d in _of_type(details, "ErrorInfo"))


def _quota_ids(details: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for failure in _of_type(details, "QuotaFailure"):
        for violation in failure.get("violations") or []:
            if isinstance(violation, dict) and violation.get("quotaId"):
                ids.append(str(violation["quotaId"]))
    return ids


def _retry_delay_s(details: list[dict[str, Any]]) -> float | None:
    """Seconds from the first ``RetryInfo.retryDelay`` (``"26s"``, ``"1.5s"``), or None."""
    for info in _of_type(details, "RetryInfo"):
        delay = info.get("retryDelay")
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            if match:
                return float(match.group(1))
        elif isinstance(delay, dict):  # {"seconds": 26, "nanos": 0}, defensive
            return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
    return None


def _server_text(exc: genai_errors.APIError) -> str:
    """``"503 UNAVAILABLE: The model is overloaded..."`` (see
    :func:`loracap.core.backends.base.server_text`)."""
    head = f"{exc.code} {exc.status}" if exc.status else str(exc.code)
    return server_text(head, exc.message)


def create(config: BackendConfig) -> GeminiCaptioner:
    """The registry's factory (:mod:`loracap.core.backends.registry`)."""
    return GeminiCaptioner(config.api_key, config.model or DEFAULT_MODEL,
                           timeout_s=config.timeout_s, base_url=config.base_url or None)


def list_models(config: BackendConfig) -> list[str]:
    """The Gemini models that can caption (see :meth:`GeminiCaptioner.list_models`)."""
    with create(config) as captioner:
        return captioner.list_models()
