"""Captioning through Anthropic's Message Batches, what only Anthropic does: the request the
one-by-one backend would send, plain text without a tool, a job's state from its counts and
``cancel_initiated_at``. The scenarios every batch service shares are in
``test_batch_flow.py``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core.backends.anthropic_claude import TOOL_NAME, ClaudeCaptioner
from loracap.core.batches.anthropic import AnthropicBatchService
from loracap.core.batches.base import JobState
from loracap.core.batches.flow import batch_settings, cancel_job, fetch_results
from tests.core.test_batch_flow import ids, make_hall, new_project, submit
from tests.fakes.anthropic_batch_server import FakeAnthropicBatchServer
from tests.fakes.anthropic_server import DEFAULT_KEY, ClaudeReply, FakeAnthropicServer

MODEL = "claude-haiku-4-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropicBatchServer]:
    with FakeAnthropicBatchServer(DEFAULT_KEY) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_hall(tmp_path)


def service(fake: FakeAnthropicBatchServer) -> AnthropicBatchService:
    return AnthropicBatchService(
        ClaudeCaptioner(DEFAULT_KEY, MODEL, base_url=fake.base_url, timeout_s=10))


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


def test_a_cancel_that_came_too_late_is_a_finished_job(fake: FakeAnthropicBatchServer,
                                                       folder: Path) -> None:
    with new_project(folder) as project, service(fake) as claude:
        job_id = submit(project, claude)
        fake.progress(done=5)
        job = cancel_job(project, claude, project.batch_job(job_id))
        assert job.state is JobState.SUCCEEDED
        assert fetch_results(project, claude, job).stored == 5
