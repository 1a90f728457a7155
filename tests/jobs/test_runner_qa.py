"""Question-answer pairs through the captioning runner (issue 14), with the real SDKs against
the fake Gemini, OpenAI-compatible and Anthropic servers: one request per image with structured
output, two where a server refuses it, the same pacing and retries as captions, nothing asked
twice, a person's confirmed answer never overwritten by a regenerate unless asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loracap.core.backends.base import BackendConfig
from loracap.core.backends.registry import create_captioner
from loracap.core.errors import InputError
from loracap.core.project import Project
from loracap.core.prompts import Profile, build_instructions
from loracap.core.qa.generate import QAOptions, answer_again
from loracap.core.scan import scan_folder
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.openai_server import FakeOpenAIServer, OpenAIReply
from tests.fakes.photos import make_photo_folder
from tests.jobs.test_runner_backends import Service, service  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "market"
    make_photo_folder(folder, 3, size=(320, 240))
    proj = Project.create(folder / "market.loraproj", trigger="market")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


def run(qtbot: Any, project: Project, config: BackendConfig, qa: QAOptions,
        **options: Any) -> BatchSummary:
    options.setdefault("base_delay_s", 0.01)
    options.setdefault("workers", 1)
    captioner = create_captioner(config)
    runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT),
                           BatchOptions(qa=qa, **options))
    try:
        with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
            runner.start()
        runner.wait()
    finally:
        captioner.close()
    return blocker.args[0]


def test_every_vision_backend_writes_pairs_in_one_request_per_image(
        qtbot: Any, project: Project, service: Service) -> None:  # noqa: F811
    summary = run(qtbot, project, service.config, QAOptions(questions=2))
    assert (summary.done, summary.failed) == (3, [])
    assert service.requests() == 3
    stats = project.qa_stats()
    assert (stats.entries, stats.images_with_qa) == (6, 3)
    for image in project.qa_images():
        assert [entry.model for entry in image.entries] == [service.config.model] * 2
    # Captions are untouched: a QA batch is not a captioning batch.
    assert all(record.caption is None for record in project.images())


def test_a_server_without_structured_output_gets_two_requests(
        qtbot: Any, project: Project) -> None:
    with FakeOpenAIServer() as server:
        server.accepts_response_format = False  # a 400 to any request with a schema
        server.queue_replies(
            # The first request is sent again without its schema and answered in prose…
            OpenAIReply.caption("Sure, here they are: What is on the table? / two"),
            # …so the questions are asked for alone, then answered.
            OpenAIReply.caption("1. What fruit is on the table?\n2. How many baskets?"),
            OpenAIReply.caption("1. Red apples.\n2. Three baskets."),
            route="chat")
        config = BackendConfig("openai", "gpt-4o-mini", server.base_url, "", 5.0)
        first = project.images()[0].id
        summary = run(qtbot, project, config, QAOptions(questions=2, only="selected"),
                      image_ids=(first,))
        assert (summary.done, summary.failed) == (1, [])
        pairs = [(e.question, e.answer) for e in project.qa_entries(first)]
        assert pairs == [("What fruit is on the table?", "Red apples."),
                         ("How many baskets?", "Three baskets.")]
        chats = server.chat_requests
        assert [chat.schema is not None for chat in chats] == [True, False, False, False]


def test_nothing_is_asked_twice_and_confirmed_answers_stay(
        qtbot: Any, project: Project) -> None:
    with FakeGeminiServer() as server:
        config = BackendConfig("gemini", "gemini-flash-latest", server.base_url, "test-key",
                               5.0)
        image = project.images()[0].id
        server.queue_replies(Reply.json({"pairs": [
            {"question": "What colour is the awning?", "answer": "Green."},
            {"question": "what colour is  the awning?", "answer": "Green and white."}]}))
        run(qtbot, project, config, QAOptions(questions=2, only="selected"),
            image_ids=(image,))
        [entry] = project.qa_entries(image)
        assert entry.answer == "Green."
        project.edit_qa(entry.id, confirmed=True, label="Confirm")
        server.queue_replies(Reply.json({"pairs": [
            {"question": "What colour is the awning?", "answer": "Blue."}]}))
        run(qtbot, project, config, QAOptions(questions=1, only="selected"),
            image_ids=(image,))
        assert [e.answer for e in project.qa_entries(image)] == ["Green."]
        captioner = create_captioner(config)
        try:
            with pytest.raises(InputError, match="confirmed"):
                answer_again(project, entry.id, captioner)
            assert len(server.generate_requests) == 2  # nothing was sent
            server.queue_replies(Reply.json({"answers": ["Green with white stripes."]}))
            again = answer_again(project, entry.id, captioner, overwrite_confirmed=True)
        finally:
            captioner.close()
        assert again.answer == "Green with white stripes." and not again.confirmed
        assert [v.answer for v in project.qa_history(entry.id)] == [
            "Green.", "Green with white stripes."]


def test_rate_limits_are_retried_as_for_captions(qtbot: Any, project: Project) -> None:
    with FakeGeminiServer() as server:
        config = BackendConfig("gemini", "gemini-flash-latest", server.base_url, "test-key",
                               5.0)
        server.queue_replies(Reply.rate_limited(0.2), Reply.server_error(503))
        summary = run(qtbot, project, config, QAOptions(questions=1))
        assert (summary.done, summary.failed) == (3, [])
        assert project.qa_stats().entries == 3
