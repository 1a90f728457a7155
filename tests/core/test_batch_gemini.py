"""Captioning through Gemini's Batch API, what only Gemini does: inline requests or a request
file. The scenarios every batch service shares are in ``test_batch_flow.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core.batches.flow import fetch_results
from loracap.core.batches.gemini import GeminiBatchService
from tests.core.test_batch_flow import make_hall, new_project, submit
from tests.fakes.fixtures import TEST_API_KEY
from tests.fakes.gemini_batch_server import FakeGeminiBatchServer


@pytest.fixture
def fake() -> Iterator[FakeGeminiBatchServer]:
    with FakeGeminiBatchServer(TEST_API_KEY) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_hall(tmp_path)


def service(fake: FakeGeminiBatchServer, inline_limit: int) -> GeminiBatchService:
    return GeminiBatchService(TEST_API_KEY, "gemini-2.5-flash", base_url=fake.base_url,
                              timeout_s=10, inline_limit=inline_limit)


def test_requests_within_the_inline_limit_go_inline(fake: FakeGeminiBatchServer,
                                                    folder: Path) -> None:
    with new_project(folder) as project, service(fake, 19_000_000) as gemini:
        job = project.batch_job(submit(project, gemini))
        assert job.input_file == "" and fake.jobs[job.remote_id].input_file == ""
        assert fake.files == {}
        fake.finish()
        assert fetch_results(project, gemini, job).stored == 5
    assert fake.deleted == []


def test_requests_over_the_inline_limit_go_as_a_jsonl_file(fake: FakeGeminiBatchServer,
                                                           folder: Path) -> None:
    with new_project(folder) as project, service(fake, 1000) as gemini:
        job = project.batch_job(submit(project, gemini))
        fake_job = fake.jobs[job.remote_id]
        assert job.input_file and fake_job.input_file == job.input_file
        # The request file is a JSONL of {"key", "request"} lines, one per image.
        lines = [json.loads(line) for line in fake.files[job.input_file].decode().splitlines()]
        assert [set(line) for line in lines] == [{"key", "request"}] * 5
        assert [line["key"] for line in lines] == [key for key, _ in fake_job.requests]
        fake.finish()  # the results come back as a file too
        assert fetch_results(project, gemini, job).stored == 5
        assert fake_job.result_file in fake.files
    assert fake.deleted == [job.input_file]
