"""Captioning through Anthropic's Message Batches: the real anthropic client against the fake
Message Batches API on 127.0.0.1, a real project file, real photos."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from loracap.core.backends.anthropic_claude import TOOL_NAME, ClaudeCaptioner
from loracap.core.backends.base import BackendConfig, TokenUsage
from loracap.core.batches.anthropic import MAX_BYTES, MAX_REQUESTS, AnthropicBatchService
from loracap.core.batches.base import BatchService, BatchTooLargeError, ItemState, JobState
from loracap.core.batches.flow import (
    batch_service,
    batch_settings,
    cancel_job,
    choose_images,
    fetch_results,
    refresh_job,
    submit_batch,
)
from loracap.core.errors import AuthenticationError
from loracap.core.project import CaptionMode, Project
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from tests.fakes.anthropic_batch_server import FakeAnthropicBatchServer
from tests.fakes.anthropic_server import (
    DEFAULT_KEY,
    DEFAULT_USAGE,
    ClaudeReply,
    FakeAnthropicServer,
    MessagesRequest,
)
from tests.fakes.http_fake import HttpReply, RecordedRequest
from tests.fakes.photos import make_photo

MODEL = "claude-haiku-4-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropicBatchServer]:
    with FakeAnthropicBatchServer(DEFAULT_KEY) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    for number in range(1, 6):
        make_photo(folder / f"IMG_{number:04d}.jpg", size=(320, 240), seed=number)
    return folder


def new_project(folder: Path) -> Project:
    project = Project.create(folder / "hall.loraproj", trigger="hall")
    project.add_scanned(scan_folder(folder))
    return project


def service(fake: FakeAnthropicBatchServer, *, key: str = DEFAULT_KEY, **limits: int
            ) -> AnthropicBatchService:
    return AnthropicBatchService(
        ClaudeCaptioner(key, MODEL, base_url=fake.base_url, timeout_s=10), **limits)


def ids(project: Project) -> dict[str, int]:
    return {record.path: record.id for record in project.images()}


def submit(project: Project, claude: BatchService) -> int:
    chosen, _, _ = choose_images(project, CaptionMode.MISSING)
    settings = batch_settings(project, max_side=512, overwrite_protected=False)
    return submit_batch(project, claude, chosen, settings).id


def image_tag(params: dict[str, object]) -> str:
    """The tag the fake derives each answer from: the hash of the image the request sent."""
    request = MessagesRequest.parse(RecordedRequest(0.0, "POST", "/v1/messages", body=params))
    assert request.image is not None
    return hashlib.sha256(request.image).hexdigest()[:8]


def test_results_out_of_order_land_on_their_images_across_a_restart(
        fake: FakeAnthropicBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        job_id = submit(project, claude)
        job = project.batch_job(job_id)
        assert job.state is JobState.RUNNING and job.remote_id.startswith("msgbatch_")
        assert job.remote_state == "in_progress" and job.waiting == 5 and not job.input_file
        assert fetch_results(project, claude, job).not_ready
        assert claude.status(job.remote_id).total == 5
    fake.finish()  # results served in reversed order
    # A new process: the job is found in the project, the service made from the backend's
    # configuration as the command line makes it.
    config = BackendConfig("anthropic", MODEL, base_url=fake.base_url, api_key=DEFAULT_KEY)
    with Project.open(folder / "hall.loraproj") as project, closing(batch_service(config)) as claude:
        assert isinstance(claude, AnthropicBatchService)
        (job,) = project.batch_jobs(open_only=True)
        summary = fetch_results(project, claude, job)
        assert (summary.stored, summary.failed, summary.gone) == (5, [], 0)
        sent = dict(fake.batches[job.remote_id].requests)
        for path, image_id in ids(project).items():
            record = project.image(image_id)
            assert record.caption is not None, path
            assert record.caption.provenance is Provenance.GENERATED
            assert record.caption.backend == "anthropic" and record.caption.model == MODEL
            # The answer to this image's own request: the fake derives every value of the
            # tool input from the image bytes it was sent under that custom_id.
            assert image_tag(sent[f"image-{image_id}"]) in record.caption.body, path
            assert project.batch_of_versions(image_id) == [job.remote_id]
        assert project.batch_jobs(open_only=True) == []
        finished = project.batch_job(job.id)
        assert finished.state is JobState.SUCCEEDED
        assert finished.counts == {ItemState.DONE.value: 5}
        assert fetch_results(project, claude, finished).stored == 0
        assert all(len(project.history(i)) == 1 for i in ids(project).values())
        status = claude.status(job.remote_id)
        assert (status.succeeded, status.failed, status.total) == (5, 0, 5)


def test_a_batch_request_is_what_the_backend_sends_one_by_one(
        fake: FakeAnthropicBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        submit(project, claude)
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
    custom_id, params = fake.batches["msgbatch_fake1"].requests[0]
    assert custom_id.startswith("image-")
    assert params["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    jpeg = base64.b64decode(params["messages"][0]["content"][0]["source"]["data"])
    with FakeAnthropicServer() as single, ClaudeCaptioner(
            DEFAULT_KEY, MODEL, base_url=single.base_url, timeout_s=10) as captioner:
        captioner.ask(jpeg, settings.prompt, json_schema=settings.json_schema)
        (sent,) = single.messages_requests
    assert sent.body == params


def test_a_plain_text_profile_sends_no_tool_and_stores_the_text(
        fake: FakeAnthropicBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        project.update_settings(profile="paragraph")
        job_id = submit(project, claude)
        params = fake.batches[project.batch_job(job_id).remote_id].requests[0][1]
        assert "tools" not in params and "tool_choice" not in params
        fake.finish(answer=lambda key, request: ClaudeReply.text(
            f"A hall with tall windows for {key}."))
        assert fetch_results(project, claude, project.batch_job(job_id)).stored == 5
        for image_id in ids(project).values():
            caption = project.image(image_id).caption
            assert caption is not None and f"image-{image_id}" in caption.body


def test_failed_items_keep_their_reason_and_stay_uncaptioned(
        fake: FakeAnthropicBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        by_path = ids(project)
        job_id = submit(project, claude)
        replies = {
            f"image-{by_path['IMG_0002.jpg']}": ClaudeReply.image_rejected(),
            f"image-{by_path['IMG_0003.jpg']}": ClaudeReply.refusal("It shows a person."),
            f"image-{by_path['IMG_0004.jpg']}": ClaudeReply.overloaded(),
        }

        def answer(key: str, request: MessagesRequest) -> HttpReply:
            return replies.get(key) or ClaudeReply.tool_use({
                "room_type": "marble hall", "key_objects": ["tall windows"],
                "lighting": "daylight", "contextual_details": "empty"})

        fake.finish(answer=answer)
        summary = fetch_results(project, claude, project.batch_job(job_id))
        assert summary.stored == 2 and len(summary.failed) == 3
        two = project.image(by_path["IMG_0002.jpg"])
        assert two.caption is None and "Could not process image" in two.last_error
        three = project.image(by_path["IMG_0003.jpg"])
        assert three.caption is None and "declined" in three.last_error
        assert "It shows a person" in three.last_error
        four = project.image(by_path["IMG_0004.jpg"])
        assert four.caption is None and "overloaded_error" in four.last_error
        one = project.image(by_path["IMG_0001.jpg"]).caption
        assert one is not None and "marble hall" in one.body and "tall windows" in one.body
        chosen, _, busy = choose_images(project, CaptionMode.FAILED)
        assert sorted(chosen) == sorted(by_path[name] for name in
                                        ("IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg"))
        assert busy == 0
        status = claude.status(project.batch_job(job_id).remote_id)
        assert (status.succeeded, status.failed, status.total) == (3, 2, 5)


def test_a_person_s_caption_written_meanwhile_is_kept(fake: FakeAnthropicBatchServer,
                                                      folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        by_path = ids(project)
        job_id = submit(project, claude)
        project.edit_caption(by_path["IMG_0001.jpg"], "my own words")
        fake.finish()
        summary = fetch_results(project, claude, project.batch_job(job_id))
        assert (summary.stored, summary.kept) == (4, 1)
        record = project.image(by_path["IMG_0001.jpg"])
        assert record.caption is not None and record.caption.body == "my own words"
        history = project.history(by_path["IMG_0001.jpg"])
        assert [v.provenance for v in history] == [Provenance.MANUAL, Provenance.GENERATED]


def test_expiry_and_cancel_keep_what_was_fetched(fake: FakeAnthropicBatchServer,
                                                 folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        first = submit(project, claude)
        assert choose_images(project, CaptionMode.MISSING)[0] == []
        fake.expire(done=2)
        summary = fetch_results(project, claude, project.batch_job(first))
        assert (summary.stored, summary.failed, summary.gone) == (2, [], 3)
        job = project.batch_job(first)
        assert job.state is JobState.EXPIRED and job.fetched
        assert job.counts == {"done": 2, "gone": 3}
        # The three left are free again; the next job answers one, then is cancelled.
        second = submit(project, claude)
        assert project.batch_job(second).requests == 3
        fake.progress(done=1)
        fake.cancel_at_once = False
        job = cancel_job(project, claude, project.batch_job(second))
        assert job.state is JobState.RUNNING and job.remote_state == "canceling"
        assert fetch_results(project, claude, job).not_ready
        fake.end_cancel()
        job = refresh_job(project, claude, job)
        assert job.state is JobState.CANCELLED
        summary = fetch_results(project, claude, job)
        assert (summary.stored, summary.failed, summary.gone) == (1, [], 2)
        assert project.stats().captioned == 3
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 2


def test_a_cancel_that_came_too_late_is_a_finished_job(fake: FakeAnthropicBatchServer,
                                                       folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        job_id = submit(project, claude)
        fake.progress(done=5)
        job = cancel_job(project, claude, project.batch_job(job_id))
        assert job.state is JobState.SUCCEEDED
        assert fetch_results(project, claude, job).stored == 5


def test_a_refused_key_stores_the_job_as_not_submitted(fake: FakeAnthropicBatchServer,
                                                       folder: Path) -> None:
    with new_project(folder) as project, service(fake, key="sk-ant-wrong") as claude:
        with pytest.raises(AuthenticationError):
            submit(project, claude)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and job.fetched and "not submitted" in job.error
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
    assert fake.batches == {}


@pytest.mark.parametrize(("max_requests", "max_bytes"), [(3, MAX_BYTES), (MAX_REQUESTS, 20_000)],
                         ids=["requests", "bytes"])
def test_too_many_requests_are_refused_before_sending(
        fake: FakeAnthropicBatchServer, folder: Path, max_requests: int, max_bytes: int) -> None:
    with new_project(folder) as project, service(fake, max_requests=max_requests, max_bytes=max_bytes) as claude:
        with pytest.raises(BatchTooLargeError, match="Submit fewer images"):
            submit(project, claude)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and "not submitted" in job.error
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
    assert fake.batches == {}


def test_usage_of_a_result_is_counted(fake: FakeAnthropicBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        job_id = submit(project, claude)
        fake.finish()
        fetch_results(project, claude, project.batch_job(job_id))
        (usage,) = [u for u in project.token_usage() if u.backend == "anthropic"]
        assert TokenUsage(usage.input_tokens, usage.output_tokens) == TokenUsage(
            DEFAULT_USAGE[0] * 5, DEFAULT_USAGE[1] * 5)
