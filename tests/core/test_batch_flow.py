"""The batch flow (:mod:`loracap.core.batches.flow`) through each of the three batch services:
the real google-genai, anthropic and openai clients against the fakes of their batch APIs on
127.0.0.1, a real project file, real photos.

Each scenario is written once and runs for every service through a :class:`Adapter` (how to
start its fake, make its service, end or cancel the fake's job, answer a request with an
error or a refusal, read what a request sent). What only one service does is tested in
``test_batch_gemini.py``, ``test_batch_anthropic.py`` and ``test_batch_openai.py``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loracap.core.backends.anthropic_claude import ClaudeCaptioner
from loracap.core.backends.base import BackendConfig, TokenUsage, prepare_jpeg
from loracap.core.backends.openai_compat import OpenAICaptioner
from loracap.core.batches import anthropic as anthropic_batches
from loracap.core.batches import flow
from loracap.core.batches import gemini as gemini_batches
from loracap.core.batches import openai as openai_batches
from loracap.core.batches.anthropic import AnthropicBatchService
from loracap.core.batches.base import (
    BatchJobRecord,
    BatchRequest,
    BatchService,
    BatchTooLargeError,
    FindsJobs,
    ItemState,
    JobState,
)
from loracap.core.batches.flow import (
    batch_service,
    batch_settings,
    cancel_job,
    choose_images,
    display_name,
    fetch_results,
    image_key,
    refresh_job,
    submit_batch,
)
from loracap.core.batches.gemini import GeminiBatchService
from loracap.core.batches.openai import OpenAIBatchService
from loracap.core.errors import AuthenticationError, InputError
from loracap.core.project import CaptionMode, Project
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from loracap.selftest.fake_gemini import Reply
from tests.core.test_export_undecodable import make_garbage_jpeg
from tests.fakes import anthropic_server, openai_server
from tests.fakes.anthropic_batch_server import FakeAnthropicBatchServer
from tests.fakes.anthropic_server import ClaudeReply, MessagesRequest
from tests.fakes.fixtures import TEST_API_KEY
from tests.fakes.gemini_batch_server import FakeGeminiBatchServer
from tests.fakes.http_fake import RecordedRequest
from tests.fakes.openai_batch_server import FakeOpenAIBatchServer
from tests.fakes.openai_server import ChatRequest, OpenAIReply
from tests.fakes.photos import make_photo

#: The answer every service's fake gives in the scenario of failed items, as a caption.
SPACE = {"room_type": "marble hall", "key_objects": ["tall windows"], "lighting": "daylight",
         "contextual_details": "empty"}


# -- the project --------------------------------------------------------------------------------


def make_hall(tmp_path: Path) -> Path:
    """A folder of five photos, IMG_0001.jpg to IMG_0005.jpg."""
    folder = tmp_path / "hall"
    for number in range(1, 6):
        make_photo(folder / f"IMG_{number:04d}.jpg", size=(320, 240), seed=number)
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_hall(tmp_path)


def new_project(folder: Path) -> Project:
    project = Project.create(folder / "hall.loraproj", trigger="hall")
    project.add_scanned(scan_folder(folder))
    return project


def ids(project: Project) -> dict[str, int]:
    return {record.path: record.id for record in project.images()}


def submit(project: Project, service: BatchService, **kwargs: Any) -> int:
    chosen, _, _ = choose_images(project, CaptionMode.MISSING)
    settings = batch_settings(project, max_side=512, overwrite_protected=False)
    return submit_batch(project, service, chosen, settings, **kwargs).id


def tag(image: bytes | None) -> str:
    """The tag every fake derives its answer from: the hash of the image a request sent."""
    assert image is not None
    return hashlib.sha256(image).hexdigest()[:8]


# -- one adapter per service ---------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What the fake answers one image in the scenario of failed items: ``reply``; the words
    the image's error holds; ``errored``, whether the service counts the request as failed (a
    refusal is an answer it counts as succeeded)."""

    reply: Any
    reasons: tuple[str, ...]
    errored: bool = True


class Adapter:
    """How the scenarios drive one service and its fake (see the module's description)."""

    backend = ""
    model = ""
    #: The state and the service's word for a job just submitted, its id's start.
    first_state = JobState.PENDING
    first_remote_state = ""
    id_prefix = ""
    #: The service's word for a job whose cancel is under way ("" when the fake cannot run
    #: a job part way, so a cancel ends it at once).
    cancelling = ""
    #: Input and output tokens of one default answer.
    usage = (0, 0)
    #: The limits a lowered one of which refuses the five images ("requests", "bytes").
    limits: tuple[str, ...] = ()
    #: How the caption of the answer :meth:`caption_reply` reads ("": not said).
    caption = ""
    #: The key the fake takes, and the words of its refusal of another one.
    key = ""
    refusal = ""
    #: The service's class and module (its ``MAX_REQUESTS`` and ``MAX_BYTES``).
    service_class: type = object
    module: Any = None

    def start(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def service(self, fake: Any, *, key: str = "", **limits: int) -> BatchService:
        """The service against ``fake``; a refused one with ``key``; ``limits`` its
        ``max_requests`` and ``max_bytes``."""
        raise NotImplementedError

    def service_again(self, fake: Any) -> BatchService:
        """The service as a new process makes it: from the backend's configuration, as the
        command line makes it."""
        service = batch_service(BackendConfig(self.backend, self.model, base_url=fake.base_url,
                                              api_key=self.key))
        assert isinstance(service, self.service_class)
        return service

    def limited(self, fake: Any, limit: str, monkeypatch: pytest.MonkeyPatch) -> BatchService:
        """The service with its ``limit`` lowered below what five images need."""
        lowered = {"max_requests": self.module.MAX_REQUESTS, "max_bytes": self.module.MAX_BYTES}
        if limit == "requests":
            lowered["max_requests"] = 3
        else:
            lowered["max_bytes"] = 20_000
        return self.service(fake, **lowered)

    def held(self, fake: Any) -> dict[str, Any]:
        """The fake's jobs by id."""
        return dict(fake.batches)

    def sent(self, fake: Any, remote_id: str) -> dict[str, Any]:
        """The requests the job ``remote_id`` holds, by key."""
        return dict(self.held(fake)[remote_id].requests)

    def image(self, request: Any) -> bytes | None:
        """The image one request sent."""
        raise NotImplementedError

    def run_some(self, fake: Any, done: int) -> int:
        """Start the fake's job; answer its first ``done`` requests where it can (how many)."""
        fake.progress(done=done)
        return done

    def deleted(self, fake: Any) -> list[str]:
        """The files the service deleted."""
        return []

    def nothing_left(self, fake: Any) -> bool:
        """True when the fake holds neither jobs nor files."""
        return self.held(fake) == {}

    def caption_reply(self) -> Any:
        raise NotImplementedError

    def failures(self) -> dict[str, Failure]:
        """What the fake answers images 2 (an error), 3 (blocked or refused) and more."""
        raise NotImplementedError

    def after_submit(self, fake: Any, service: BatchService, project: Project,
                     job: BatchJobRecord) -> None:
        """What the service says of a job just submitted, beside the flow."""

    def after_fetch(self, fake: Any, service: BatchService, job: BatchJobRecord) -> None:
        """What the service says of the job of the five images, fetched, beside the flow."""
        status = service.status(job.remote_id)
        assert (status.succeeded, status.failed, status.total) == (5, 0, 5)

    def check_counts(self, service: BatchService, job: BatchJobRecord, errored: int) -> None:
        status = service.status(job.remote_id)
        assert (status.succeeded, status.failed, status.total) == (5 - errored, errored, 5)


class Gemini(Adapter):
    backend = "gemini"
    model = "gemini-2.5-flash"
    id_prefix = "batches/"
    usage = (270, 20)
    limits = ("bytes",)
    caption = "a marble hall, tall windows"
    key = TEST_API_KEY
    refusal = "API key not valid"

    def __init__(self, inline_limit: int = 19_000_000) -> None:
        self.inline_limit = inline_limit

    def start(self) -> AbstractContextManager[Any]:
        return FakeGeminiBatchServer(TEST_API_KEY)

    def service(self, fake: Any, *, key: str = "", **limits: int) -> BatchService:
        return GeminiBatchService(key or TEST_API_KEY, self.model, base_url=fake.base_url,
                                  timeout_s=10, inline_limit=self.inline_limit)

    def service_again(self, fake: Any) -> BatchService:
        return self.service(fake)  # with the same inline limit

    def limited(self, fake: Any, limit: str, monkeypatch: pytest.MonkeyPatch) -> BatchService:
        monkeypatch.setattr(gemini_batches, "FILE_LIMIT_BYTES", 20_000)
        return self.service(fake)

    def held(self, fake: Any) -> dict[str, Any]:
        return dict(fake.jobs)

    def image(self, request: Any) -> bytes | None:
        for part in request["contents"][0]["parts"]:
            inline = part.get("inlineData") or part.get("inline_data")
            if inline:
                data = str(inline["data"])
                return base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_")
        return None

    def run_some(self, fake: Any, done: int) -> int:
        fake.start_running()
        return 0

    def deleted(self, fake: Any) -> list[str]:
        return list(fake.deleted)

    def nothing_left(self, fake: Any) -> bool:
        return bool(fake.jobs == {} and fake.files == {})

    def caption_reply(self) -> Any:
        return Reply.caption(self.caption)

    def failures(self) -> dict[str, Failure]:
        return {"IMG_0002.jpg": Failure({"code": 400, "message": "Unable to process input "
                                                                 "image."},
                                        ("Unable to process input image",)),
                "IMG_0003.jpg": Failure(Reply.blocked("SAFETY"), ("SAFETY",), errored=False)}

    def after_submit(self, fake: Any, service: BatchService, project: Project,
                     job: BatchJobRecord) -> None:
        assert bool(job.input_file) == (self.inline_limit < 19_000_000)

    def after_fetch(self, fake: Any, service: BatchService, job: BatchJobRecord) -> None:
        assert service.status(job.remote_id).state is JobState.SUCCEEDED

    def check_counts(self, service: BatchService, job: BatchJobRecord, errored: int) -> None:
        assert service.status(job.remote_id).total is None  # Gemini does not count them


class Anthropic(Adapter):
    backend = "anthropic"
    model = "claude-haiku-4-5"
    first_state = JobState.RUNNING
    first_remote_state = "in_progress"
    id_prefix = "msgbatch_"
    cancelling = "canceling"
    usage = anthropic_server.DEFAULT_USAGE
    limits = ("requests", "bytes")
    key = anthropic_server.DEFAULT_KEY
    refusal = "invalid x-api-key"
    service_class = AnthropicBatchService
    module = anthropic_batches

    def start(self) -> AbstractContextManager[Any]:
        return FakeAnthropicBatchServer(self.key)

    def service(self, fake: Any, *, key: str = "", **limits: int) -> BatchService:
        return AnthropicBatchService(ClaudeCaptioner(key or self.key, self.model,
                                                     base_url=fake.base_url, timeout_s=10),
                                     **limits)

    def image(self, request: Any) -> bytes | None:
        return MessagesRequest.parse(RecordedRequest(0.0, "POST", "/v1/messages",
                                                     body=request)).image

    def caption_reply(self) -> Any:
        return ClaudeReply.tool_use(SPACE)

    def failures(self) -> dict[str, Failure]:
        return {"IMG_0002.jpg": Failure(ClaudeReply.image_rejected(),
                                        ("Could not process image",)),
                "IMG_0003.jpg": Failure(ClaudeReply.refusal("It shows a person."),
                                        ("declined", "It shows a person"), errored=False),
                "IMG_0004.jpg": Failure(ClaudeReply.overloaded(), ("overloaded_error",))}

    def after_submit(self, fake: Any, service: BatchService, project: Project,
                     job: BatchJobRecord) -> None:
        assert not job.input_file
        assert service.status(job.remote_id).total == 5


class OpenAI(Adapter):
    backend = "openai"
    model = "gpt-4o-mini"
    first_remote_state = "validating"
    id_prefix = "batch_"
    cancelling = "cancelling"
    usage = openai_server.DEFAULT_USAGE
    limits = ("requests", "bytes")
    key = "sk-test"
    refusal = "Incorrect API key provided"
    service_class = OpenAIBatchService
    module = openai_batches

    def start(self) -> AbstractContextManager[Any]:
        return FakeOpenAIBatchServer(self.key)

    def service(self, fake: Any, *, key: str = "", **limits: int) -> BatchService:
        return OpenAIBatchService(OpenAICaptioner(fake.base_url, key or self.key, self.model,
                                                  timeout_s=10), **limits)

    def image(self, request: Any) -> bytes | None:
        return ChatRequest.parse(RecordedRequest(0.0, "POST", "/v1/chat/completions",
                                                 body=request)).image

    def deleted(self, fake: Any) -> list[str]:
        return list(fake.deleted)

    def nothing_left(self, fake: Any) -> bool:
        return bool(fake.files == {} and fake.batches == {})

    def caption_reply(self) -> Any:
        return OpenAIReply.json_answer(SPACE)

    def failures(self) -> dict[str, Failure]:
        return {"IMG_0002.jpg": Failure(OpenAIReply.image_rejected(),
                                        ("Could not process the image",)),
                "IMG_0003.jpg": Failure(OpenAIReply.refusal("I can't describe that."),
                                        ("I can't describe that",), errored=False),
                "IMG_0004.jpg": Failure(OpenAIReply.server_error(500), ("500",))}

    def after_submit(self, fake: Any, service: BatchService, project: Project,
                     job: BatchJobRecord) -> None:
        assert job.input_file in fake.files and fake.files[job.input_file].purpose == "batch"
        (description,) = fake.batches[job.remote_id].metadata.values()
        assert description.startswith(f"LoRACap hall job {job.id}")
        fake.start_running()
        assert refresh_job(project, service, job).state is JobState.RUNNING


ADAPTERS = [Gemini(), Anthropic(), OpenAI()]
NAMES = [adapter.backend for adapter in ADAPTERS]


@pytest.fixture(params=ADAPTERS, ids=NAMES)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def fake(adapter: Adapter) -> Iterator[Any]:
    with adapter.start() as server:
        yield server


def answering(adapter: Adapter, by_path: dict[str, int], replies: dict[str, Any]
              ) -> Callable[[str, object], Any]:
    """The fake's ``answer``: ``replies`` by image name, the caption for the others."""
    by_key = {f"image-{by_path[name]}": reply for name, reply in replies.items()}
    return lambda key, request: by_key.get(key) or adapter.caption_reply()


# -- the scenarios ------------------------------------------------------------------------------


@pytest.mark.parametrize("flow_adapter", [Gemini(), Gemini(inline_limit=1000), Anthropic(),
                                          OpenAI()],
                         ids=["gemini-inline", "gemini-file", "anthropic", "openai"])
def test_results_out_of_order_land_on_their_images_across_a_restart(
        flow_adapter: Adapter, folder: Path) -> None:
    adapter = flow_adapter
    prepared: list[tuple[int, int]] = []
    with adapter.start() as fake:
        with new_project(folder) as project, closing(adapter.service(fake)) as service:
            job_id = submit(project, service, on_prepared=lambda d, t: prepared.append((d, t)))
            job = project.batch_job(job_id)
            assert job.state is adapter.first_state and job.remote_id.startswith(adapter.id_prefix)
            assert job.remote_state == adapter.first_remote_state or not adapter.first_remote_state
            assert job.waiting == 5 and prepared[-1] == (5, 5)
            assert fetch_results(project, service, job).not_ready  # not ended: nothing fetched
            assert project.stats().captioned == 0
            adapter.after_submit(fake, service, project, job)
        fake.finish()  # the results in reversed order
        # A new process: the job is found in the project and followed from there.
        with Project.open(folder / "hall.loraproj") as project, closing(
                adapter.service_again(fake)) as service:
            (job,) = project.batch_jobs(open_only=True)
            seen: list[tuple[int, str]] = []
            summary = fetch_results(project, service, job,
                                    on_result=lambda i, s, _: seen.append((i, s)))
            assert (summary.stored, summary.failed, summary.gone) == (5, [], 0)
            sent = adapter.sent(fake, job.remote_id)
            for path, image_id in ids(project).items():
                record = project.image(image_id)
                assert record.caption is not None, path
                assert record.caption.provenance is Provenance.GENERATED
                assert record.caption.backend == adapter.backend
                assert record.caption.model == adapter.model
                # The answer to this image's own request: the fake derives the caption from
                # the image bytes it was sent under that key, so a mix-up by position shows.
                assert tag(adapter.image(sent[f"image-{image_id}"])) in record.caption.body
                assert project.batch_of_versions(image_id) == [job.remote_id]
            assert sorted(i for i, _ in seen) == sorted(ids(project).values())
            assert project.batch_jobs(open_only=True) == []
            finished = project.batch_job(job.id)
            assert finished.state is JobState.SUCCEEDED and finished.fetched
            assert finished.counts == {ItemState.DONE.value: 5}
            usage = {u.model: u for u in project.token_usage()}[adapter.model]
            assert usage.answers == 5
            # A second fetch stores nothing twice.
            assert fetch_results(project, service, finished).stored == 0
            assert all(len(project.history(i)) == 1 for i in ids(project).values())
            adapter.after_fetch(fake, service, finished)
        # The request file, if any, is deleted once fetched.
        assert adapter.deleted(fake) == ([job.input_file] if job.input_file else [])


def test_failed_items_keep_their_reason_and_stay_uncaptioned(
        adapter: Adapter, fake: Any, folder: Path) -> None:
    failures = adapter.failures()
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        by_path = ids(project)
        job_id = submit(project, service)
        fake.finish(answer=answering(adapter, by_path, {
            name: failure.reply for name, failure in failures.items()}))
        summary = fetch_results(project, service, project.batch_job(job_id))
        assert summary.stored == 5 - len(failures) and len(summary.failed) == len(failures)
        for name, failure in failures.items():
            record = project.image(by_path[name])
            assert record.caption is None, name
            for reason in failure.reasons:
                assert reason in record.last_error, name
        one = project.image(by_path["IMG_0001.jpg"]).caption
        assert one is not None and "marble hall" in one.body and "tall windows" in one.body
        assert one.body == adapter.caption or not adapter.caption
        # The failed images are taken again by the next run ("failed" mode), not "missing"
        # images waiting in an open job.
        chosen, _, busy = choose_images(project, CaptionMode.FAILED)
        assert sorted(chosen) == sorted(by_path[name] for name in failures)
        assert busy == 0
        adapter.check_counts(service, project.batch_job(job_id),
                             sum(failure.errored for failure in failures.values()))


def test_a_person_s_caption_written_meanwhile_is_kept(adapter: Adapter, fake: Any,
                                                      folder: Path) -> None:
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        by_path = ids(project)
        job_id = submit(project, service)
        project.edit_caption(by_path["IMG_0001.jpg"], "my own words")
        fake.finish()
        summary = fetch_results(project, service, project.batch_job(job_id))
        assert (summary.stored, summary.kept) == (4, 1)
        record = project.image(by_path["IMG_0001.jpg"])
        assert record.caption is not None and record.caption.body == "my own words"
        history = project.history(by_path["IMG_0001.jpg"])
        assert [v.provenance for v in history] == [Provenance.MANUAL, Provenance.GENERATED]


def test_expiry_and_cancel_keep_what_was_fetched(adapter: Adapter, fake: Any,
                                                 folder: Path) -> None:
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        first = submit(project, service)
        # Images waiting in an open job are not sent again.
        assert choose_images(project, CaptionMode.MISSING)[0] == []
        fake.expire(done=2)
        summary = fetch_results(project, service, project.batch_job(first))
        assert (summary.stored, summary.failed, summary.gone) == (2, [], 3)
        job = project.batch_job(first)
        assert job.state is JobState.EXPIRED and job.fetched
        assert job.counts == {"done": 2, "gone": 3}
        # The three left are free again; the next job takes them (and answers one where the
        # fake can), then is cancelled.
        second = submit(project, service)
        assert project.batch_job(second).requests == 3
        done = adapter.run_some(fake, 1)
        assert refresh_job(project, service, project.batch_job(second)).state is JobState.RUNNING
        if adapter.cancelling:
            fake.cancel_at_once = False
        job = cancel_job(project, service, project.batch_job(second))
        if adapter.cancelling:  # the cancel takes a while: the job runs until it ends
            assert job.state is JobState.RUNNING and job.remote_state == adapter.cancelling
            assert fetch_results(project, service, job).not_ready
            fake.end_cancel()
            job = refresh_job(project, service, job)
        assert job.state is JobState.CANCELLED
        summary = fetch_results(project, service, job)
        assert (summary.stored, summary.failed, summary.gone) == (done, [], 3 - done)
        assert project.stats().captioned == 2 + done
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 3 - done
        inputs = [project.batch_job(i).input_file for i in (first, second)]
    assert adapter.deleted(fake) == [name for name in inputs if name]  # the request files


def test_a_refused_key_is_said_before_any_image_is_prepared_and_stores_no_job(
        adapter: Adapter, fake: Any, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepared: list[Path] = []

    def prepare(path: Path, max_side: int) -> bytes:
        prepared.append(path)
        return prepare_jpeg(path, max_side)

    monkeypatch.setattr(flow, "prepare_jpeg", prepare)
    with new_project(folder) as project:
        with closing(adapter.service(fake, key="wrong-key")) as service:
            with pytest.raises(AuthenticationError) as refused:
                submit(project, service, on_prepared=lambda d, t: pytest.fail("prepared"))
        assert "refused the API key" in str(refused.value)
        assert adapter.refusal in str(refused.value)  # the service's own words
        assert prepared == []
        assert project.batch_jobs() == []  # nothing was sent: no job to follow or forget
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
        # Only the check reached the service: one read, nothing uploaded or created.
        assert fake.requests and {request.method for request in fake.requests} == {"GET"}
        assert adapter.nothing_left(fake)
        # With the right key the same images are prepared (through the function counted
        # above) and sent.
        with closing(adapter.service(fake)) as service:
            job = project.batch_job(submit(project, service))
        assert len(prepared) == 5 and job.requests == 5 and job.remote_id
        assert [record.id for record in project.batch_jobs()] == [job.id]


@pytest.mark.parametrize(("limit_adapter", "limit"),
                         [(adapter, limit) for adapter in ADAPTERS for limit in adapter.limits],
                         ids=[f"{adapter.backend}-{limit}" for adapter in ADAPTERS
                              for limit in adapter.limits])
def test_too_many_requests_are_refused_before_sending(
        limit_adapter: Adapter, limit: str, folder: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = limit_adapter
    with adapter.start() as fake:
        with new_project(folder) as project, closing(
                adapter.limited(fake, limit, monkeypatch)) as service:
            with pytest.raises(BatchTooLargeError, match="Submit fewer images"):
                submit(project, service)
            (job,) = project.batch_jobs()
            assert job.state is JobState.FAILED and "not submitted" in job.error
            assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
        assert adapter.nothing_left(fake)


def test_an_undecodable_image_is_marked_invalid_and_left_out(adapter: Adapter, fake: Any,
                                                            folder: Path) -> None:
    make_garbage_jpeg(folder / "IMG_0004.jpg")  # passes the scan's structure checks
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        by_path = ids(project)
        assert project.image(by_path["IMG_0004.jpg"]).valid
        job_id = submit(project, service)
        job = project.batch_job(job_id)
        assert len(adapter.sent(fake, job.remote_id)) == 4
        assert job.counts == {"waiting": 4, "failed": 1}
        record = project.image(by_path["IMG_0004.jpg"])
        assert not record.valid and record.invalid_reason


def test_the_prepared_images_are_recorded_for_the_next_export(
        adapter: Adapter, fake: Any, folder: Path) -> None:
    make_garbage_jpeg(folder / "IMG_0004.jpg")
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        by_path = ids(project)
        submit(project, service)
        # The file state of each image prepared (taken before the preparation, as an export
        # takes it); none for the one whose pixels did not decode.
        expected = {}
        for name, image_id in by_path.items():
            if name != "IMG_0004.jpg":
                info = (folder / name).lstat()
                expected[image_id] = (info.st_size, info.st_mtime)
        assert project.decoded_states() == expected


def test_no_images_is_an_input_error(adapter: Adapter, fake: Any, folder: Path) -> None:
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
        with pytest.raises(InputError, match="No images"):
            submit_batch(project, service, [], settings)
        assert project.batch_jobs() == []
    assert adapter.nothing_left(fake)


def test_usage_of_a_result_is_counted(adapter: Adapter, fake: Any, folder: Path) -> None:
    with new_project(folder) as project, closing(adapter.service(fake)) as service:
        job_id = submit(project, service)
        fake.finish()
        fetch_results(project, service, project.batch_job(job_id))
        (usage,) = [u for u in project.token_usage() if u.backend == adapter.backend]
        assert TokenUsage(usage.input_tokens, usage.output_tokens) == TokenUsage(
            adapter.usage[0] * 5, adapter.usage[1] * 5)


@pytest.mark.parametrize("find_adapter", [Gemini(), Gemini(inline_limit=1000), OpenAI()],
                         ids=["gemini-inline", "gemini-file", "openai"])
def test_a_submission_interrupted_before_its_name_was_stored_is_found_again(
        find_adapter: Adapter, folder: Path) -> None:
    adapter = find_adapter
    with adapter.start() as fake, new_project(folder) as project, closing(
            adapter.service(fake)) as service:
        assert isinstance(service, FindsJobs)
        chosen, _, _ = choose_images(project, CaptionMode.MISSING)
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
        # What a crash right after the service accepted the job leaves: the job stored as
        # "submitting", without the service's name for it.
        job_id = project.add_batch_job(
            backend=adapter.backend, model=service.model, base_url=fake.base_url,
            settings=settings.to_json(),
            items=[(image_id, image_key(image_id)) for image_id in chosen])
        job = project.batch_job(job_id)
        requests = [BatchRequest(image_key(i), prepare_jpeg(project.image(i).abs_path, 512),
                                 settings.prompt, settings.json_schema) for i in chosen]
        # Jobs of another project, older and newer, do not mislead the search.
        service.submit(requests, display_name="LoRACap hall job 99 other project")
        accepted = service.submit(requests, display_name=display_name(project, job))
        service.submit(requests, display_name="LoRACap hall job 98 other project")
        assert project.batch_job(job_id).state is JobState.SUBMITTING
        assert choose_images(project, CaptionMode.MISSING)[0] == []  # not sent twice
        fake.finish(accepted.remote_id)
        summary = fetch_results(project, service, project.batch_job(job_id))
        found = project.batch_job(job_id)
        assert (found.remote_id, found.input_file) == (accepted.remote_id, accepted.input_file)
        assert summary.stored == 5 and project.stats().captioned == 5
        assert adapter.deleted(fake) == ([accepted.input_file] if accepted.input_file else [])
