"""Captioning through the OpenAI Batch API: the real openai client against the fake Batch and
Files APIs on 127.0.0.1, a real project file, real photos."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from loracap.core.backends.base import BackendConfig, TokenUsage, prepare_jpeg
from loracap.core.backends.openai_compat import OpenAICaptioner
from loracap.core.batches.base import (
    BatchRequest,
    BatchService,
    BatchTooLargeError,
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
from loracap.core.batches.openai import MAX_BYTES, MAX_REQUESTS, OpenAIBatchService
from loracap.core.errors import AuthenticationError, TransientError
from loracap.core.project import CaptionMode, Project
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from tests.fakes.http_fake import HttpReply, RecordedRequest
from tests.fakes.openai_batch_server import DEFAULT_KEY, FakeBatch, FakeOpenAIBatchServer
from tests.fakes.openai_server import (
    DEFAULT_USAGE,
    ChatRequest,
    FakeOpenAIServer,
    OpenAIReply,
)
from tests.fakes.photos import make_photo

MODEL = "gpt-4o-mini"
SPACE = {"room_type": "marble hall", "key_objects": ["tall windows"], "lighting": "daylight",
         "contextual_details": "empty"}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIBatchServer]:
    with FakeOpenAIBatchServer(DEFAULT_KEY) as server:
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


def service(fake: FakeOpenAIBatchServer, *, key: str = DEFAULT_KEY, model: str = MODEL,
            structured_output: bool = True, **limits: int) -> OpenAIBatchService:
    return OpenAIBatchService(OpenAICaptioner(fake.base_url, key, model, timeout_s=10,
                                              structured_output=structured_output), **limits)


def ids(project: Project) -> dict[str, int]:
    return {record.path: record.id for record in project.images()}


def submit(project: Project, openai: BatchService) -> int:
    chosen, _, _ = choose_images(project, CaptionMode.MISSING)
    settings = batch_settings(project, max_side=512, overwrite_protected=False)
    return submit_batch(project, openai, chosen, settings).id


def chat(body: dict[str, object]) -> ChatRequest:
    return ChatRequest.parse(RecordedRequest(0.0, "POST", "/v1/chat/completions", body=body))


def test_results_out_of_order_land_on_their_images_across_a_restart(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        job_id = submit(project, openai)
        job = project.batch_job(job_id)
        assert job.state is JobState.PENDING and job.remote_state == "validating"
        assert job.remote_id.startswith("batch_") and job.waiting == 5
        assert job.input_file in fake.files and fake.files[job.input_file].purpose == "batch"
        (description,) = fake.batches[job.remote_id].metadata.values()
        assert description.startswith(f"LoRACap hall job {job_id}")
        assert fetch_results(project, openai, job).not_ready
        fake.start_running()
        assert refresh_job(project, openai, job).state is JobState.RUNNING
    fake.finish()  # output lines in reversed order
    # A new process: the job is found in the project, the service made from the backend's
    # configuration as the command line makes it.
    config = BackendConfig("openai", MODEL, base_url=fake.base_url, api_key=DEFAULT_KEY)
    with Project.open(folder / "hall.loraproj") as project, closing(batch_service(config)) as openai:
        assert isinstance(openai, OpenAIBatchService)
        (job,) = project.batch_jobs(open_only=True)
        summary = fetch_results(project, openai, job)
        assert (summary.stored, summary.failed, summary.gone) == (5, [], 0)
        sent = dict(fake.batches[job.remote_id].requests)
        for path, image_id in ids(project).items():
            record = project.image(image_id)
            assert record.caption is not None, path
            assert record.caption.provenance is Provenance.GENERATED
            assert record.caption.backend == "openai" and record.caption.model == MODEL
            # The answer to this image's own request: the fake derives every value of the
            # JSON answer from the image bytes it was sent under that custom_id.
            image = chat(sent[f"image-{image_id}"]).image
            assert image is not None
            assert hashlib.sha256(image).hexdigest()[:8] in record.caption.body, path
            assert project.batch_of_versions(image_id) == [job.remote_id]
        finished = project.batch_job(job.id)
        assert finished.state is JobState.SUCCEEDED and finished.fetched
        assert finished.counts == {ItemState.DONE.value: 5}
        assert fetch_results(project, openai, finished).stored == 0
        assert all(len(project.history(i)) == 1 for i in ids(project).values())
        status = openai.status(job.remote_id)
        assert (status.succeeded, status.failed, status.total) == (5, 0, 5)
    # The request file was a JSONL of chat completion requests, deleted once fetched.
    assert fake.deleted == [job.input_file]


def test_a_batch_request_is_what_the_backend_sends_one_by_one(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        submit(project, openai)
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
    (batch,) = fake.batches.values()
    lines = [json.loads(line) for line in fake.files[batch.input_file_id].data.splitlines()]
    assert [set(line) for line in lines] == [{"custom_id", "method", "url", "body"}] * 5
    assert {(line["method"], line["url"]) for line in lines} == {("POST",
                                                                  "/v1/chat/completions")}
    body = lines[0]["body"]
    assert body["response_format"]["json_schema"]["schema"] == settings.json_schema
    jpeg = chat(body).image
    assert jpeg is not None
    with FakeOpenAIServer() as single, OpenAICaptioner(single.base_url, "", MODEL,
                                                       timeout_s=10) as captioner:
        captioner.ask(jpeg, settings.prompt, json_schema=settings.json_schema)
        (sent,) = single.chat_requests
    assert sent.body == body


def test_a_server_known_to_refuse_response_format_gets_the_schema_in_the_prompt(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    fake.accepts_response_format = False
    config = BackendConfig("openai", MODEL, base_url=fake.base_url, api_key=DEFAULT_KEY,
                           options={"structured_output": False})
    with new_project(folder) as project, closing(batch_service(config)) as openai:
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
        job_id = submit(project, openai)
        (batch,) = fake.batches.values()
        request = chat(batch.requests[0][1])
        assert request.response_format is None
        assert request.text.startswith(settings.prompt) and "JSON schema" in request.text
        fake.finish(answer=lambda key, request: OpenAIReply.json_answer(SPACE))
        assert fetch_results(project, openai, project.batch_job(job_id)).stored == 5
        caption = project.image(ids(project)["IMG_0001.jpg"]).caption
        assert caption is not None and "marble hall" in caption.body


def test_failed_items_keep_their_reason_and_stay_uncaptioned(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        by_path = ids(project)
        job_id = submit(project, openai)
        replies = {
            f"image-{by_path['IMG_0002.jpg']}": OpenAIReply.image_rejected(),
            f"image-{by_path['IMG_0003.jpg']}": OpenAIReply.refusal("I can't describe that."),
            f"image-{by_path['IMG_0004.jpg']}": OpenAIReply.server_error(500),
            f"image-{by_path['IMG_0005.jpg']}": OpenAIReply.caption(
                "<think>a hall, I think</think>" + json.dumps(SPACE)),
        }

        def answer(key: str, request: ChatRequest) -> HttpReply:
            return replies.get(key) or OpenAIReply.json_answer(SPACE)

        fake.finish(answer=answer)
        summary = fetch_results(project, openai, project.batch_job(job_id))
        assert summary.stored == 2 and len(summary.failed) == 3
        two = project.image(by_path["IMG_0002.jpg"])
        assert two.caption is None and "Could not process the image" in two.last_error
        three = project.image(by_path["IMG_0003.jpg"])
        assert three.caption is None and "I can't describe that" in three.last_error
        four = project.image(by_path["IMG_0004.jpg"])
        assert four.caption is None and "500" in four.last_error
        # A reasoning model's <think> block is dropped, as the one-by-one path drops it.
        five = project.image(by_path["IMG_0005.jpg"]).caption
        assert five is not None and "think" not in five.body and "marble hall" in five.body
        chosen, _, busy = choose_images(project, CaptionMode.FAILED)
        assert sorted(chosen) == sorted(by_path[name] for name in
                                        ("IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg"))
        assert busy == 0
        status = openai.status(project.batch_job(job_id).remote_id)
        assert (status.succeeded, status.failed, status.total) == (3, 2, 5)


def test_a_person_s_caption_written_meanwhile_is_kept(fake: FakeOpenAIBatchServer,
                                                      folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        by_path = ids(project)
        job_id = submit(project, openai)
        project.edit_caption(by_path["IMG_0001.jpg"], "my own words")
        fake.finish()
        summary = fetch_results(project, openai, project.batch_job(job_id))
        assert (summary.stored, summary.kept) == (4, 1)
        record = project.image(by_path["IMG_0001.jpg"])
        assert record.caption is not None and record.caption.body == "my own words"
        history = project.history(by_path["IMG_0001.jpg"])
        assert [v.provenance for v in history] == [Provenance.MANUAL, Provenance.GENERATED]


def test_expiry_and_cancel_keep_what_was_fetched(fake: FakeOpenAIBatchServer,
                                                 folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        first = submit(project, openai)
        assert choose_images(project, CaptionMode.MISSING)[0] == []
        fake.expire(done=2)
        summary = fetch_results(project, openai, project.batch_job(first))
        assert (summary.stored, summary.failed, summary.gone) == (2, [], 3)
        job = project.batch_job(first)
        assert job.state is JobState.EXPIRED and job.fetched
        assert job.counts == {"done": 2, "gone": 3}
        # The three left are free again; the next job answers one, then is cancelled.
        second = submit(project, openai)
        assert project.batch_job(second).requests == 3
        fake.progress(done=1)
        fake.cancel_at_once = False
        job = cancel_job(project, openai, project.batch_job(second))
        assert job.state is JobState.RUNNING and job.remote_state == "cancelling"
        assert fetch_results(project, openai, job).not_ready
        fake.end_cancel()
        job = refresh_job(project, openai, job)
        assert job.state is JobState.CANCELLED
        summary = fetch_results(project, openai, job)
        assert (summary.stored, summary.failed, summary.gone) == (1, [], 2)
        assert project.stats().captioned == 3
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 2
    assert len(fake.deleted) == 2  # both request files


def test_a_refused_request_file_fails_the_job_with_the_reason(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake, model="gpt-unknown") as openai:
        job_id = submit(project, openai)
        job = refresh_job(project, openai, project.batch_job(job_id))
        assert job.state is JobState.FAILED
        assert "line 1: The model `gpt-unknown` does not exist" in job.error
        assert "and 2 more" in job.error
        summary = fetch_results(project, openai, job)
        assert (summary.stored, summary.gone) == (0, 5)
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
        assert fake.deleted == [job.input_file]


def test_a_refused_key_stores_the_job_as_not_submitted(fake: FakeOpenAIBatchServer,
                                                       folder: Path) -> None:
    with new_project(folder) as project, service(fake, key="sk-wrong") as openai:
        with pytest.raises(AuthenticationError):
            submit(project, openai)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and job.fetched and "not submitted" in job.error
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
    assert fake.files == {} and fake.batches == {}


def test_a_job_that_cannot_start_deletes_its_uploaded_file(fake: FakeOpenAIBatchServer,
                                                          folder: Path) -> None:
    fake.queue_replies(OpenAIReply.server_error(503), route="batches")
    with new_project(folder) as project, service(fake) as openai:
        with pytest.raises(TransientError):
            submit(project, openai)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and "not submitted" in job.error
    assert fake.files == {} and len(fake.deleted) == 1 and fake.batches == {}


def test_a_submission_interrupted_before_its_id_was_stored_is_found_again(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        chosen, _, _ = choose_images(project, CaptionMode.MISSING)
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
        # What a crash right after OpenAI accepted the job leaves: the job stored as
        # "submitting", without the service's id for it.
        job_id = project.add_batch_job(
            backend="openai", model=openai.model, base_url=fake.base_url,
            settings=settings.to_json(),
            items=[(image_id, image_key(image_id)) for image_id in chosen])
        job = project.batch_job(job_id)
        requests = [BatchRequest(image_key(i), prepare_jpeg(project.image(i).abs_path, 512),
                                 settings.prompt, settings.json_schema) for i in chosen]
        accepted = openai.submit(requests, display_name=display_name(project, job))
        openai.submit(requests, display_name="LoRACap hall job 99 other project")
        assert project.batch_job(job_id).state is JobState.SUBMITTING
        assert choose_images(project, CaptionMode.MISSING)[0] == []  # not sent twice
        fake.finish(accepted.remote_id)
        summary = fetch_results(project, openai, project.batch_job(job_id))
        found = project.batch_job(job_id)
        assert (found.remote_id, found.input_file) == (accepted.remote_id, accepted.input_file)
        assert summary.stored == 5 and project.stats().captioned == 5
        assert fake.deleted == [accepted.input_file]


def test_a_job_is_found_by_the_name_it_was_submitted_with(
        fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with service(fake) as openai:
        jpeg = (folder / "IMG_0001.jpg").read_bytes()
        submitted = openai.submit([BatchRequest("image-1", jpeg, "Describe.")],
                                  display_name="LoRACap hall job 1 20261130T120000")
        fake.start_running(submitted.remote_id)
        for number in range(2, 131):  # newer jobs: the one looked for is on the second page
            fake.batches[f"batch_other{number}"] = FakeBatch(
                f"batch_other{number}", "file-other", [],
                {"description": f"LoRACap hall job {number} 20261130T120000"})
        found = openai.find("LoRACap hall job 1 20261130T120000")
        assert found is not None and found.remote_id == submitted.remote_id
        assert found.state is JobState.RUNNING and found.input_file == submitted.input_file
        assert openai.find("LoRACap hall job 131 20261130T120000") is None
        assert sum(1 for r in fake.requests if r.path == "/v1/batches" and r.method == "GET") > 2


@pytest.mark.parametrize(("max_requests", "max_bytes"), [(3, MAX_BYTES), (MAX_REQUESTS, 20_000)],
                         ids=["requests", "bytes"])
def test_too_many_requests_are_refused_before_sending(
        fake: FakeOpenAIBatchServer, folder: Path, max_requests: int, max_bytes: int) -> None:
    with new_project(folder) as project, service(fake, max_requests=max_requests, max_bytes=max_bytes) as openai:
        with pytest.raises(BatchTooLargeError, match="Submit fewer images"):
            submit(project, openai)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and "not submitted" in job.error
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5
    assert fake.files == {} and fake.batches == {}


def test_usage_of_a_result_is_counted(fake: FakeOpenAIBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        job_id = submit(project, openai)
        fake.finish()
        fetch_results(project, openai, project.batch_job(job_id))
        (usage,) = [u for u in project.token_usage() if u.backend == "openai"]
        assert TokenUsage(usage.input_tokens, usage.output_tokens) == TokenUsage(
            DEFAULT_USAGE[0] * 5, DEFAULT_USAGE[1] * 5)
