"""What every captioning backend shares: the protocol, the answer, token usage, and the rules that
turn an HTTP failure into a LoRACap error.

A backend is one module of :mod:`loracap.core.backends` with one class that fits
:class:`Captioner`; :mod:`loracap.core.backends.registry` knows them by name (``gemini``,
``openai``, ``anthropic``, ``wd14``). The runner, the retry and pacing rules
(:mod:`loracap.core.pacing`), provenance and history know only this protocol. The vision
backends also fit :class:`VisionAsker`: they answer a request that is not a caption (a person
detection, a description of a crop) with the model's text as received (:class:`Answer`), and
their ``caption`` is that request plus the caption cleaning.

The error rules are one implementation for every HTTP backend (:func:`status_error`,
:func:`parse_retry_after`), so that a 429, a 5xx, a timeout or a refused key means the same to a
batch whichever service answered:

* 429 -- the rate limit: retried after the server's ``Retry-After`` (seconds or an HTTP date,
  RFC 9110 section 10.2.3; ``retry-after-ms`` as OpenAI and Anthropic send it), unless the
  service says the quota or the credit is used up: then the batch stops (exit 4);
* 408, 409, 5xx and 529 (Anthropic's ``overloaded_error``) -- a temporary server problem,
  retried; timeouts and connection errors likewise (a connection error that outlasts the
  retries stops the batch: the network or the server is down);
* 401 and 403 -- the key is refused: the batch stops (exit 3);
* 404 -- the model is not offered: the batch stops with what to choose instead;
* 400 and 422 -- this request (this image) was refused: only the image fails; other 4xx (413
  from a proxy in front of the server, ...) stop the batch: every image would fail alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# Re-exported: the rules of a server's URL live in a module that imports nothing heavy (the
# checks of a project file need them).
from loracap.core.backends.urls import check_base_url as check_base_url
from loracap.core.backends.urls import display_url as display_url
from loracap.core.errors import (
    AuthenticationError,
    CaptionError,
    ImageRejectedError,
    LoraCapError,
    QuotaExhaustedError,
    TransientError,
)

if TYPE_CHECKING:
    from loracap.core.prompts import Instructions

#: Longest text of a server's error message shown to the user, in characters.
MAX_SERVER_TEXT = 300

#: Longest wait taken from a ``Retry-After`` header, in seconds; a longer one is a server bug or
#: a per-day limit, and waiting an hour per image helps nobody (the retry budget then decides).
MAX_RETRY_AFTER_S = 3600.0

_SERVER_STATUSES = frozenset({408, 409, 425, 500, 502, 503, 504, 529})
_AUTH_STATUSES = frozenset({401, 403})
_REQUEST_STATUSES = frozenset({400, 422})


@dataclass(frozen=True)
class TokenUsage:
    """Tokens one answer cost, as the service counted them: ``input_tokens`` (the prompt and the
    image), ``output_tokens`` (the answer). Zero when the service does not say (a local tagger
    costs none)."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input_tokens + other.input_tokens,
                          self.output_tokens + other.output_tokens)

    @property
    def total(self) -> int:
        """Input and output tokens together."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class GeneratedCaption:
    """One answer made a caption: ``body`` is the cleaned caption body (no prefix), ``raw`` the
    model's text as received, ``backend`` the backend's name (``"gemini"``), ``model`` the model
    asked for, ``prompt`` the prompt sent (``""`` for a tagger), ``usage`` the tokens it cost."""

    body: str
    raw: str
    backend: str
    model: str
    prompt: str
    usage: TokenUsage = field(default_factory=TokenUsage)


@dataclass(frozen=True)
class Answer:
    """A vision model's answer to one :meth:`VisionAsker.ask` request: ``text`` as received
    (not sanitised or cleaned; for a structured request the JSON text -- Claude's forced tool
    input serialised with ``json.dumps(..., ensure_ascii=False)``), ``backend`` the backend's
    name, ``model`` the model asked, ``prompt`` the prompt actually sent (with the schema
    appended when an OpenAI-compatible server takes no ``response_format``), ``usage`` the
    tokens it cost."""

    text: str
    backend: str
    model: str
    prompt: str
    usage: TokenUsage = field(default_factory=TokenUsage)


class CaptionResult(Protocol):
    """What a backend returns (read-only, so a frozen dataclass such as
    :class:`GeneratedCaption` fits)."""

    @property
    def body(self) -> str: ...

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def usage(self) -> TokenUsage: ...


class Captioner(Protocol):
    """A captioning backend.

    ``prepare`` reads the image file at ``path`` into what ``caption`` takes (JPEG bytes for the
    vision services, at most ``max_side`` pixels on the long side, or a backend's own input);
    it runs on the batch's worker threads and raises :class:`~loracap.core.errors.InputError`
    for an image that cannot be used. ``caption`` must be safe to call from several threads at
    once and raise only :class:`~loracap.core.errors.CaptionError` subclasses for service
    failures (see the module docstring for which stop a batch). ``close`` frees connections or
    a loaded model.

    ``prepare_decodes_whole`` is True when a successful ``prepare`` has decoded every pixel of
    the file (or read the upload cache, which holds only such decodes of the same bytes): the
    batch then records the file's state so that an export does not decode it again
    (:mod:`loracap.core.prepared_decodes`). Read it with :func:`prepare_decodes_whole`, which
    takes a captioner without the attribute for one that does not.

    A vision backend may also fit :class:`VisionAsker` (an optional capability: requests that
    are not captions).
    """

    backend: str
    model: str
    prepare_decodes_whole: bool

    def prepare(self, path: Path, max_side: int) -> Any: ...

    def caption(
        self, image: Any, instructions: Instructions, *, trigger: str, prefix: str
    ) -> CaptionResult: ...

    def close(self) -> None: ...


@runtime_checkable
class VisionAsker(Protocol):
    """An optional capability of a captioner: asking its vision model anything about an image.

    The vision backends (``gemini``, ``openai``, ``anthropic``) and a
    :class:`~loracap.core.backends.combined.HintedCaptioner` around one fit it; the WD14 tagger
    does not (``isinstance(captioner, VisionAsker)`` tells, the protocol being runtime
    checkable). ``ask`` sends ``jpeg`` (what :meth:`Captioner.prepare` returns) with ``prompt``
    in one request -- or two, when an OpenAI-compatible server refuses ``response_format`` --
    and returns the answer's text unchanged (:class:`Answer`). ``json_schema`` asks for
    structured output the backend's way (Gemini ``response_json_schema``, OpenAI
    ``response_format``, Claude a forced tool) and the text is then one JSON object.

    Same rules as :meth:`Captioner.caption`: safe from several threads at once; raises
    :class:`~loracap.core.errors.ImageRejectedError` for a blocked, refused or empty answer
    and the errors of the module docstring for HTTP and transport failures.
    """

    backend: str
    model: str

    def ask(self, jpeg: bytes, prompt: str, *, json_schema: dict[str, Any] | None = None
            ) -> Answer: ...


def prepare_decodes_whole(captioner: object) -> bool:
    """True only when ``captioner`` says its ``prepare`` decodes the image's pixels whole
    (:attr:`Captioner.prepare_decodes_whole` is True); False for any other object, one without
    the attribute included: a whole decode is never assumed."""
    return getattr(captioner, "prepare_decodes_whole", False) is True


def vision_asker(captioner: object, need: str) -> VisionAsker:
    """``captioner`` as a :class:`VisionAsker`; raises :class:`CaptionError` ("``need`` a vision
    model; the wd14 backend only tags. Choose …") for a tagger, which cannot be asked."""
    if isinstance(captioner, VisionAsker):
        return captioner
    backend = getattr(captioner, "backend", "chosen")
    raise CaptionError(f"{need} a vision model; the {backend} backend only tags. Choose "
                       "Gemini, an OpenAI-compatible server or Claude.")


#: JPEG quality of the uploads :func:`prepare_jpeg` makes (1-95, Pillow's scale).
UPLOAD_QUALITY = 90


def prepare_jpeg(path: Path, max_side: int) -> bytes:
    """JPEG bytes of the image at ``path`` as a vision model should see it (EXIF orientation
    applied, transparency on white, long side at most ``max_side`` px, JPEG quality
    :data:`UPLOAD_QUALITY`); see :func:`loracap.core.imaging.prepare_for_upload`, whose errors
    it raises.

    Through the user's upload cache (:func:`loracap.core.upload_cache.default_cache`, keyed by
    the file's content): a file prepared before -- by any backend, at any path -- is read back
    instead of decoded and encoded again. ``LORACAP_NO_UPLOAD_CACHE=1`` turns the cache off; a
    cache that cannot be read or written never fails the call."""
    # Imported here: the window imports the backends at startup and loads Pillow later.
    from loracap.core import imaging
    from loracap.core.upload_cache import default_cache

    def prepare() -> bytes:
        return imaging.prepare_for_upload(path, max_side=max_side, quality=UPLOAD_QUALITY)

    cache = default_cache()
    if cache is None:
        return prepare()
    return cache.prepared(path, max_side, UPLOAD_QUALITY, prepare)


def server_text(status: int | str, message: object) -> str:
    """``"503: The model is overloaded"`` from a status and a server's message: control
    characters and escape sequences removed, an HTML page left out, at most
    :data:`MAX_SERVER_TEXT` characters (it is the server's text, shown as it is)."""
    # Imported here, as in connection_error: the checks of a project file (``loracap info``)
    # use this module's URL rule without loading the prompts.
    from loracap.core.prompts import sanitize_text

    head = " ".join(sanitize_text(str(status)).split())
    text = " ".join(sanitize_text(str(message or "")).split())
    if not text or text.startswith("<"):
        return head
    if len(text) > MAX_SERVER_TEXT:
        text = text[: MAX_SERVER_TEXT - 3].rstrip() + "..."
    return f"{head}: {text}" if head else text


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None
                      ) -> float | None:
    """Seconds to wait from a response's headers, or None when they do not say.

    Reads ``retry-after-ms`` (milliseconds; OpenAI's and Anthropic's APIs send it) first, then
    ``Retry-After`` as delay-seconds or an HTTP date (RFC 9110 section 10.2.3). Header names are
    matched without regard to case. A negative, unparsable or infinite value is None; a value
    over :data:`MAX_RETRY_AFTER_S` is cut to it. ``now`` (seconds since the epoch) is for tests.
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        seconds = _number(millis)
        if seconds is not None:
            return min(seconds / 1000.0, MAX_RETRY_AFTER_S)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is None:
        try:
            import email.utils

            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    return min(seconds, MAX_RETRY_AFTER_S)


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def status_error(
    service: str,
    status: int,
    text: str,
    *,
    model: str,
    retry_after: float | None = None,
    quota_used_up: bool = False,
    key_advice: str = "",
    model_advice: str = "",
) -> LoraCapError:
    """The LoRACap error for an HTTP error answer of ``service`` (``"OpenAI-compatible server
    at http://…"``, ``"Claude"``), by the rules of the module docstring.

    ``text`` is the server's short text (:func:`server_text`); ``retry_after`` the seconds from
    :func:`parse_retry_after`; ``quota_used_up`` True when the service said the account's quota
    or credit is gone (then a 429 stops the batch). ``key_advice`` and ``model_advice`` end the
    messages of a refused key and an unknown model ("Save a new key with …").
    """
    def sentence(head: str, advice: str) -> str:
        return f"{head} {advice}".strip()

    if status == 429:
        if quota_used_up:
            return QuotaExhaustedError(f"The {service} quota is used up ({text}).")
        wait = f" It asks to wait {retry_after:g} s." if retry_after is not None else ""
        return TransientError(f"The rate limit of {service} was reached ({text}).{wait}",
                              kind="rate_limit", retry_after=retry_after)
    if status in _AUTH_STATUSES:
        return AuthenticationError(sentence(f"{service} refused the API key ({text}).",
                                            key_advice))
    if status in _SERVER_STATUSES or status >= 500:
        return TransientError(f"{service} had a temporary server problem ({text}).",
                              kind="server", retry_after=retry_after)
    if status == 404:
        return CaptionError(sentence(
            f"{service} does not offer the model '{model}' ({text}).", model_advice))
    if status in _REQUEST_STATUSES:
        return ImageRejectedError(f"{service} could not process this image ({text}).")
    return CaptionError(f"{service} refused the request ({text}).")


def timeout_error(service: str, timeout_s: float) -> TransientError:
    """The error of a request that got no answer within ``timeout_s`` seconds (retried)."""
    return TransientError(f"{service} did not answer within {timeout_s:g} s.", kind="timeout")


def connection_error(service: str, exc: BaseException) -> TransientError:
    """The error of a request that could not reach ``service`` (retried; the batch stops when
    the retries are used up)."""
    from loracap.core.prompts import sanitize_text

    detail = " ".join(sanitize_text(str(exc)).split())[:MAX_SERVER_TEXT]
    return TransientError(f"Could not reach {service} ({type(exc).__name__}: {detail}).",
                          kind="connection")


@dataclass(frozen=True)
class BackendConfig:
    """What a front end gives a backend to build its captioner.

    ``model`` -- the model name (a WD14 model's name); ``base_url`` -- the server's URL, ``""``
    for the backend's environment variable or default; ``api_key`` -- ``""`` when none is needed
    (a local server); ``timeout_s`` -- per request, seconds; ``options`` -- the backend's own
    settings stored in the project (JSON-compatible values: WD14 thresholds, whether a server
    takes structured output); ``tag_separator`` -- what joins tags in a caption (the project's);
    ``model_dir`` -- a folder holding a local model's files (WD14: ``model.onnx`` and
    ``selected_tags.csv``), or None; ``hints`` -- the WD14 tagger whose tags a vision model
    gets as hints (combined captions, :mod:`loracap.core.backends.combined`), or None.
    """

    backend: str
    model: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    timeout_s: float = 60.0
    options: Mapping[str, Any] = field(default_factory=dict)
    tag_separator: str = ", "
    model_dir: Path | None = None
    hints: BackendConfig | None = None


def resolve_base_url(config_url: str, env_variable: str, default: str, backend: str,
                     example: str = "") -> str:
    """The base URL a backend uses: ``config_url``, else the environment variable
    ``env_variable`` (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``), else the service's own
    ``default``; checked and tidied by :func:`check_base_url` (which raises
    :class:`~loracap.core.errors.InputError` naming ``backend`` and the fix)."""
    import os

    url = config_url.strip() or os.environ.get(env_variable, "").strip() or default
    return check_base_url(url, backend, env_variable=env_variable, example=example or default)
