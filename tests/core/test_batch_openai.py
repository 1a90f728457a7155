"""Captioning through the OpenAI Batch API, what only OpenAI does: the request the one-by-one
backend would send, a server that refuses ``response_format``, a reasoning model's answer, a
request file the service refuses, the error file, finding a job page by page. The scenarios
every batch service shares are in ``test_batch_flow.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from loracap.core.backends.base import BackendConfig
from loracap.core.backends.openai_compat import OpenAICaptioner
from loracap.core.batches.base import BatchRequest, JobState
from loracap.core.batches.flow import (
    batch_service,
    batch_settings,
    choose_images,
    fetch_results,
    refresh_job,
)
from loracap.core.batches.openai import OpenAIBatchService
from loracap.core.errors import CaptionError, TransientError
from loracap.core.project import CaptionMode
from loracap.core.records import Provenance
from tests.core.test_batch_flow import SPACE, ids, make_hall, new_project, submit
from tests.fakes.http_fake import RecordedRequest
from tests.fakes.openai_batch_server import DEFAULT_KEY, FakeBatch, FakeOpenAIBatchServer
from tests.fakes.openai_server import ChatRequest, FakeOpenAIServer, OpenAIReply

MODEL = "gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIBatchServer]:
    with FakeOpenAIBatchServer(DEFAULT_KEY) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_hall(tmp_path)


def service(fake: FakeOpenAIBatchServer, *, model: str = MODEL) -> OpenAIBatchService:
    return OpenAIBatchService(OpenAICaptioner(fake.base_url, DEFAULT_KEY, model, timeout_s=10))


def chat(body: dict[str, object]) -> ChatRequest:
    return ChatRequest.parse(RecordedRequest(0.0, "POST", "/v1/chat/completions", body=body))


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


def test_a_reasoning_model_s_think_block_is_dropped(fake: FakeOpenAIBatchServer,
                                                    folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        job_id = submit(project, openai)
        # As the one-by-one path drops it.
        fake.finish(answer=lambda key, request: OpenAIReply.caption(
            "<think>a hall, I think</think>" + json.dumps(SPACE)))
        assert fetch_results(project, openai, project.batch_job(job_id)).stored == 5
        for image_id in ids(project).values():
            caption = project.image(image_id).caption
            assert caption is not None and caption.provenance is Provenance.GENERATED
            assert "think" not in caption.body and "marble hall" in caption.body


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


def test_failed_requests_come_from_the_error_file(fake: FakeOpenAIBatchServer,
                                                  folder: Path) -> None:
    with new_project(folder) as project, service(fake) as openai:
        job_id = submit(project, openai)
        failing = fake.batches[project.batch_job(job_id).remote_id].requests[1][0]
        batch = fake.finish(answer=lambda key, request: OpenAIReply.server_error(500)
                            if key == failing else OpenAIReply.json_answer(SPACE), done=3)
        assert batch.output_file_id and batch.error_file_id  # 2 answers; 1 error, 2 expired
        summary = fetch_results(project, openai, project.batch_job(job_id))
        assert (summary.stored, len(summary.failed), summary.gone) == (2, 1, 2)
        image_id = int(failing.removeprefix("image-"))
        assert "500" in project.image(image_id).last_error
        assert project.batch_job(job_id).counts == {"done": 2, "failed": 1, "gone": 2}


def test_a_job_that_cannot_start_deletes_its_uploaded_file(fake: FakeOpenAIBatchServer,
                                                          folder: Path) -> None:
    fake.queue_replies(OpenAIReply.server_error(503), route="batches")
    with new_project(folder) as project, service(fake) as openai:
        with pytest.raises(TransientError):
            submit(project, openai)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and "not submitted" in job.error
    assert fake.files == {} and len(fake.deleted) == 1 and fake.batches == {}


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


def test_a_server_without_a_batch_api_is_said_before_anything_is_prepared() -> None:
    """vLLM and llama.cpp serve chat completions but no ``/v1/batches``: the key check says
    so in plain words, not as an unknown model."""
    with FakeOpenAIServer(api_key="k") as server, closing(OpenAIBatchService(
            OpenAICaptioner(server.base_url, "k", MODEL, timeout_s=10))) as batches:
        with pytest.raises(CaptionError) as raised:
            batches.check()
    message = str(raised.value)
    assert "has no Batch API (/v1/batches answered 404)" in message
    assert "Caption without --batch, one image at a time." in message
    assert "does not offer the model" not in message
