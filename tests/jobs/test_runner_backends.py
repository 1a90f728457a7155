"""The runner's rules, once for every backend: each real SDK (google-genai, openai, anthropic)
against its fake server on 127.0.0.1, built through the backend registry as the CLI and the
window build them, and the local WD14 tagger with a tiny model. One parametrised suite: a rule
that holds for Gemini must hold for every service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loracap.core.backends.base import BackendConfig
from loracap.core.backends.registry import create_captioner, load_captioner
from loracap.core.errors import AuthenticationError, NetworkError
from loracap.core.project import Project, Provenance
from loracap.core.prompts import Profile, build_instructions
from loracap.core.scan import scan_folder
from loracap.jobs.runner import WAIT_RATE_LIMIT, BatchOptions, BatchSummary, CaptionRunner
from tests.fakes.anthropic_server import DEFAULT_KEY, ClaudeReply, FakeAnthropicServer
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.openai_server import FakeOpenAIServer, OpenAIReply
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow

HTTP_BACKENDS = ("gemini", "openai", "anthropic")


@dataclass
class Service:
    """One backend's fake server, the configuration that points at it, and its replies."""

    name: str
    server: Any
    config: BackendConfig
    caption: Callable[[str], Any]
    rate_limited: Callable[[], Any]
    server_error: Callable[[], Any]
    bad_key: Callable[[], Any]
    refused: Callable[[], Any]
    hang: Callable[[float], Any]
    route: str | None

    def queue(self, *replies: Any) -> None:
        if self.route is None:
            self.server.queue_replies(*replies)
        else:
            self.server.queue_replies(*replies, route=self.route)

    def requests(self) -> int:
        if self.name == "gemini":
            return len(self.server.generate_requests)
        if self.name == "openai":
            return len(self.server.chat_requests)
        return len(self.server.messages_requests)


def _service(name: str, server: Any, timeout_s: float) -> Service:
    if name == "gemini":
        return Service(
            name, server, BackendConfig("gemini", "gemini-flash-latest", server.base_url,
                                        "test-key", timeout_s),
            Reply.caption, lambda: Reply.rate_limited(0.3), lambda: Reply.server_error(503),
            Reply.invalid_key, Reply.blocked, Reply.hang, None)
    if name == "openai":
        return Service(
            name, server, BackendConfig("openai", "gpt-4o-mini", server.base_url, "", timeout_s),
            OpenAIReply.caption, lambda: OpenAIReply.rate_limited("0.3"),
            lambda: OpenAIReply.server_error(503), OpenAIReply.unauthorized,
            OpenAIReply.refusal, OpenAIReply.hang, "chat")
    return Service(
        name, server, BackendConfig("anthropic", "claude-haiku-4-5", server.base_url,
                                    DEFAULT_KEY, timeout_s),
        ClaudeReply.text, lambda: ClaudeReply.rate_limited("0.3"), ClaudeReply.overloaded,
        ClaudeReply.unauthorized, ClaudeReply.refusal, ClaudeReply.hang, "messages")


@pytest.fixture(params=HTTP_BACKENDS)
def service(request: pytest.FixtureRequest) -> Iterator[Service]:
    servers = {"gemini": FakeGeminiServer, "openai": FakeOpenAIServer,
               "anthropic": FakeAnthropicServer}
    with servers[request.param]() as server:
        yield _service(request.param, server, timeout_s=5.0)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 4, size=(320, 240))
    proj = Project.create(folder / "hall.loraproj", trigger="hall")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


def run(qtbot: Any, project: Project, config: BackendConfig, **options: Any
        ) -> tuple[BatchSummary, dict[str, list[Any]]]:
    options.setdefault("base_delay_s", 0.01)
    options.setdefault("workers", 1)
    captioner = create_captioner(config)
    load_captioner(captioner)
    runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT),
                           BatchOptions(**options))
    seen: dict[str, list[Any]] = {"waiting": [], "retrying": [], "failed": []}
    runner.waiting.connect(lambda *a: seen["waiting"].append(a))
    runner.retrying.connect(lambda *a: seen["retrying"].append(a))
    runner.failed.connect(lambda *a: seen["failed"].append(a))
    try:
        with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
            runner.start()
        runner.wait()
    finally:
        captioner.close()
    return blocker.args[0], seen


def generated(project: Project) -> dict[str, tuple[str, str | None, str | None]]:
    return {rec.path: (rec.caption.body, rec.caption.backend, rec.caption.model)
            for rec in project.images() if rec.caption
            and rec.caption.provenance is Provenance.GENERATED}


def test_every_image_is_captioned_with_its_provenance_and_tokens(
        qtbot: Any, project: Project, service: Service) -> None:
    summary, _ = run(qtbot, project, service.config, workers=2)
    assert (summary.done, summary.failed, summary.stop_error) == (4, [], None)
    stored = generated(project)
    assert len(stored) == 4 and len({body for body, _, _ in stored.values()}) == 4
    assert {(backend, model) for _, backend, model in stored.values()} == {
        (service.name, service.config.model)}
    [usage] = project.token_usage()
    assert (usage.backend, usage.answers) == (service.name, 4)
    assert usage.input_tokens > 0 and usage.output_tokens > 0


def test_a_rate_limit_waits_for_the_server_and_loses_no_image(
        qtbot: Any, project: Project, service: Service) -> None:
    service.queue(service.rate_limited())
    summary, seen = run(qtbot, project, service.config)
    assert (summary.done, summary.failed, summary.stop_error) == (4, [], None)
    assert service.requests() == 5
    assert any(reason == WAIT_RATE_LIMIT for _, reason in seen["waiting"])


def test_server_errors_are_retried(qtbot: Any, project: Project, service: Service) -> None:
    service.queue(service.server_error(), service.server_error())
    summary, seen = run(qtbot, project, service.config)
    assert (summary.done, summary.failed) == (4, [])
    assert len(seen["retrying"]) == 2 and service.requests() == 6


def test_a_refused_key_stops_the_batch_and_fails_no_image(
        qtbot: Any, project: Project, service: Service) -> None:
    service.queue(service.bad_key())
    summary, seen = run(qtbot, project, service.config)
    assert isinstance(summary.stop_error, AuthenticationError)
    assert summary.stop_error.exit_code == 3
    assert summary.done == 0 and summary.failed == [] and seen["failed"] == []
    assert not any(rec.failed for rec in project.images())
    assert service.requests() == 1


def test_a_refused_image_fails_alone_and_the_batch_goes_on(
        qtbot: Any, project: Project, service: Service) -> None:
    service.queue(service.refused())
    summary, _ = run(qtbot, project, service.config)
    assert summary.done == 3 and len(summary.failed) == 1 and summary.stop_error is None
    assert sum(rec.failed for rec in project.images()) == 1


def test_a_service_that_stops_answering_stops_the_batch(
        qtbot: Any, project: Project, service: Service) -> None:
    config = BackendConfig(service.config.backend, service.config.model,
                           service.config.base_url, service.config.api_key, timeout_s=0.4)
    service.queue(*(service.hang(30) for _ in range(8)))
    summary, _ = run(qtbot, project, config, max_attempts=5)
    assert isinstance(summary.stop_error, NetworkError)
    assert "not answering" in str(summary.stop_error)
    assert summary.done == 0 and summary.failed == []


def test_a_caption_a_person_wrote_is_never_replaced(
        qtbot: Any, project: Project, service: Service) -> None:
    first = project.images()[0]
    project.edit_caption(first.id, "my own words")
    summary, _ = run(qtbot, project, service.config)
    assert summary.skipped_protected == 0  # MISSING mode never takes a captioned image
    assert project.image(first.id).caption.body == "my own words"  # type: ignore[union-attr]
    assert summary.done == 3


# --- the local tagger -------------------------------------------------------------------------


@pytest.fixture
def tagger_dir(tmp_path: Path) -> Path:
    pytest.importorskip("onnxruntime")
    from tests.fakes.tiny_tagger import write_tagger

    return write_tagger(tmp_path / "tiny-tagger")


def test_the_tagger_captions_every_image_at_no_cost_and_a_broken_image_fails_alone(
        qtbot: Any, project: Project, tagger_dir: Path) -> None:
    broken = project.folder / "IMG_0001.jpg"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated after the scan
    config = BackendConfig("wd14", "", model_dir=tagger_dir,
                           options={"general_threshold": 0.01, "character_threshold": 0.01})
    summary, _ = run(qtbot, project, config, workers=2, rpm=0)
    assert summary.done == 3 and len(summary.failed) == 1 and summary.stop_error is None
    assert summary.failed[0][1] == "IMG_0001.jpg"
    stored = generated(project)
    assert len(stored) == 3 and all(backend == "wd14" for _, backend, _ in stored.values())
    assert all(body for body, _, _ in stored.values())
    [usage] = project.token_usage()
    assert (usage.answers, usage.input_tokens, usage.output_tokens) == (3, 0, 0)


def test_combined_captions_give_the_taggers_tags_to_the_vision_model(
        qtbot: Any, project: Project, tagger_dir: Path) -> None:
    with FakeOpenAIServer() as server:
        tagger = BackendConfig("wd14", "", model_dir=tagger_dir,
                               options={"general_threshold": 0.01,
                                        "character_threshold": 0.01})
        config = BackendConfig("openai", "gpt-4o-mini", server.base_url, hints=tagger)
        summary, _ = run(qtbot, project, config)
        prompts = [chat.text for chat in server.chat_requests]
    assert summary.done == 4
    assert all("Tags an image tagger saw" in text for text in prompts)
    stored = generated(project)
    assert {backend for _, backend, _ in stored.values()} == {"openai"}
    recorded = {rec.caption.prompt for rec in project.images() if rec.caption}
    assert all("Tags an image tagger saw" in (prompt or "") for prompt in recorded)
