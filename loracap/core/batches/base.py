"""What every batch API shares: the protocol of a service's batch API, and the words for a job.

A provider's batch API takes many requests at once, answers them within a day at half the
price, and returns the results in any order, each with the key it was sent with. LoRACap uses
them for big captioning jobs (issue 15): the flow (:mod:`loracap.core.batches.flow`) prepares
the images, submits one job, stores it in the project, and later stores each result on the
image its key names. One module per service fits :class:`BatchService`:

* ``gemini`` -- Gemini's Batch API (``batches.create``): inline requests up to 20 MB in all,
  else a JSONL file of ``{"key", "request"}`` lines uploaded through the File API (up to 2 GB).
  Results: inline ``inlinedResponses`` with each request's ``metadata``, or a JSONL file.
* ``anthropic`` -- Anthropic's Message Batches: up to 100,000 requests or 256 MB, matched by
  ``custom_id``.
* ``openai`` -- the OpenAI Batch API: a JSONL file of ``{"custom_id", "method", "url",
  "body"}`` lines uploaded with purpose ``batch``; results in an output file (and an error
  file), matched by ``custom_id``.

All three: 50 % of the standard price (:data:`BATCH_DISCOUNT`), results within 24 hours, and
"results are not in request order" (google-genai issue #1909, Anthropic's and OpenAI's
documentation), so results are always matched by key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from loracap.core.backends.base import Answer
from loracap.core.errors import CaptionError

#: What a batch job costs beside the same requests sent one by one: half (Gemini Batch API,
#: Anthropic Message Batches and OpenAI Batch API pricing pages, 2026).
BATCH_DISCOUNT = 0.5

_S = TypeVar("_S", bound="Closing")

#: The backends whose service has a batch API LoRACap can use.
BATCH_BACKENDS = ("gemini", "anthropic", "openai")


class JobState(StrEnum):
    """Where a batch job is. ``submitting``: LoRACap was sending it when it last stopped (it
    may or may not have reached the service); ``pending``/``running``: the service has it;
    ``succeeded``, ``failed``, ``cancelled``, ``expired``: it ended (a cancelled or expired job
    may still hold the results it finished before)."""

    SUBMITTING = "submitting"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def ended(self) -> bool:
        """True when the service will do no more work on the job."""
        return self in _ENDED

    @property
    def label(self) -> str:
        """The state as a user reads it (``"waiting to start"``)."""
        return _LABELS[self]


_ENDED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})
_LABELS = {
    JobState.SUBMITTING: "being submitted", JobState.PENDING: "waiting to start",
    JobState.RUNNING: "running", JobState.SUCCEEDED: "finished", JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled", JobState.EXPIRED: "expired",
}


class ItemState(StrEnum):
    """What became of one image of a batch job (``batch_items.state``)."""

    #: No result stored yet.
    WAITING = "waiting"
    #: The caption is stored.
    DONE = "done"
    #: A person's caption was kept; the result went to the history.
    KEPT = "kept"
    #: The service answered with an error, or the answer could not be made a caption.
    FAILED = "failed"
    #: The job ended without a result for it (cancelled or expired first); the image is as
    #: it was and the next run takes it again.
    GONE = "gone"


@dataclass(frozen=True)
class BatchRequest:
    """One request of a job: ``key`` (unique in the job; the service returns it with the
    result), the prepared image (``jpeg`` bytes), the ``prompt`` and the JSON schema of a
    structured answer (None: plain text)."""

    key: str
    jpeg: bytes
    prompt: str
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Submitted:
    """A job the service accepted: ``remote_id`` its name there, ``input_file`` the uploaded
    request file (``""`` for inline requests), its state."""

    remote_id: str
    state: JobState
    remote_state: str = ""
    input_file: str = ""


@dataclass(frozen=True)
class JobStatus:
    """A job as the service reports it: its state, the service's own word for it, the
    requests it counts as ``succeeded``/``failed``/``total`` (None when it does not say),
    and ``error``, its reason for a failed job."""

    state: JobState
    remote_state: str = ""
    succeeded: int | None = None
    failed: int | None = None
    total: int | None = None
    error: str = ""


@dataclass(frozen=True)
class BatchResult:
    """One result of a job: the ``key`` it was sent with, and either the model's ``answer``
    or ``error``, the service's reason (``kind`` ``rejected`` for a refused or blocked image,
    ``server`` for the service's own failure, ``expired``/``cancelled`` for a request the job
    never ran)."""

    key: str
    answer: Answer | None = None
    error: str = ""
    kind: str = ""


class BatchService(Protocol):
    """A service's batch API, for one backend and model.

    ``check`` asks the service the cheapest question the key must be good for (one job of
    the key's list, one small request) and raises as ``submit`` would for a refused key, a
    lost connection, ...: the flow asks it before it stores a job or prepares an image, so a
    wrong or revoked key is said at once, not after minutes of preparing thousands of images.
    ``submit`` sends the requests as one job; it decides how (inline or an uploaded file) and
    raises :class:`~loracap.core.errors.CaptionError` subclasses as the backend would
    (:class:`~loracap.core.errors.AuthenticationError` for a refused key, ...), or
    :class:`BatchTooLargeError` when the requests pass the service's limits. ``status`` asks
    where the job is. ``results`` yields every result the job has (an ended job's; a cancelled
    or expired job's may be partial), in the service's order. ``cancel`` asks the service to
    stop the job (it ends as cancelled, keeping the results it finished). ``cleanup`` deletes
    what the job left on the service (an uploaded request file), quietly. ``close`` frees
    connections.
    """

    backend: str
    model: str

    def check(self) -> None: ...

    def submit(self, requests: Iterable[BatchRequest], *, display_name: str) -> Submitted: ...

    def status(self, remote_id: str) -> JobStatus: ...

    def results(self, remote_id: str) -> Iterator[BatchResult]: ...

    def cancel(self, remote_id: str) -> None: ...

    def cleanup(self, remote_id: str, input_file: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class FindsJobs(Protocol):
    """A service that can find a job by the display name it was submitted with, so a job
    whose submission was interrupted before LoRACap stored the service's name for it (a crash,
    a lost connection after the upload) is found again instead of paid for twice."""

    def find(self, display_name: str) -> Submitted | None: ...


class Closing:
    """Makes a service a context manager that calls its ``close()`` on the way out."""

    def close(self) -> None:
        """Free connections (a service overrides it)."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Captioner(Protocol):
    """What :class:`CaptionerBatchService` needs of the one-by-one captioner it is built on."""

    @property
    def model(self) -> str: ...

    def close(self) -> None: ...


_C = TypeVar("_C", bound=_Captioner)


class CaptionerBatchService(Closing, Generic[_C]):
    """What a batch service built on the one-by-one captioner of its SDK shares (Anthropic's
    and OpenAI's): it owns the captioner (``_captioner``: its SDK client, its error mapping
    ``call``; closed by :meth:`close`), answers for its ``model``, and holds the limits of one
    job: ``max_requests`` (requests) and ``max_bytes`` (bytes of the request body or file;
    tests lower both). A subclass gives the defaults, its service's limits."""

    def __init__(self, captioner: _C, *, max_requests: int, max_bytes: int) -> None:
        self._captioner = captioner
        self.model = captioner.model
        self.max_requests = max_requests
        self.max_bytes = max_bytes

    def close(self) -> None:
        """Close the captioner's HTTP connection pool."""
        self._captioner.close()


class BatchTooLargeError(CaptionError):
    """The requests pass what one job of the service may hold (count or bytes): submit fewer
    images (``--image``, or a filter in the window) or several jobs."""


@dataclass(frozen=True)
class BatchSettings:
    """What a job's answers are read with, stored with the job (``batch_jobs.settings``) so
    results fetched days later are cleaned as they would have been at submission: the
    caption profile and custom prompt, the caption language, the prompt sent, the JSON schema
    of a structured answer, its field order, the trigger word and prefix, the image size
    (``max_side``, px) and whether a person's caption may be replaced."""

    profile: str
    custom_prompt: str
    language: str
    prompt: str
    json_schema: dict[str, Any] | None
    field_order: tuple[str, ...]
    trigger: str
    prefix: str
    max_side: int = 1536
    overwrite_protected: bool = False

    def to_json(self) -> str:
        """The settings as JSON text."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["field_order"] = list(self.field_order)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BatchSettings:
        """Settings from :meth:`to_json`'s text; raises ValueError for anything else."""
        data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError("batch settings are not a JSON object")
        try:
            return cls(
                profile=str(data["profile"]), custom_prompt=str(data["custom_prompt"]),
                language=str(data["language"]), prompt=str(data["prompt"]),
                json_schema=data["json_schema"] if isinstance(data["json_schema"], dict)
                else None,
                field_order=tuple(str(name) for name in data["field_order"]),
                trigger=str(data["trigger"]), prefix=str(data["prefix"]),
                max_side=int(data.get("max_side", 1536)),
                overwrite_protected=bool(data.get("overwrite_protected", False)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"batch settings lack a field ({exc})") from exc


@dataclass(frozen=True)
class BatchJobRecord:
    """A batch job of the project (``batch_jobs``) with what became of its images: ``counts``
    maps each :class:`ItemState` value to its number of images."""

    id: int
    backend: str
    model: str
    base_url: str
    remote_id: str
    input_file: str
    state: JobState
    remote_state: str
    settings: str
    requests: int
    fetched: bool
    error: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def waiting(self) -> int:
        """Images with no result stored yet."""
        return self.counts.get(ItemState.WAITING.value, 0)

    @property
    def open(self) -> bool:
        """True while the job still needs LoRACap: running on the service, or ended with
        results not all fetched."""
        return not self.fetched

    @property
    def name(self) -> str:
        """How the job is named to a user: ``"job 3 (batches/abc)"``."""
        remote = f" ({self.remote_id})" if self.remote_id else ""
        return f"job {self.id}{remote}"
