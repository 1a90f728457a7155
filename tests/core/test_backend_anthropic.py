"""The real ``anthropic`` SDK in ClaudeCaptioner against the fake Messages API server."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.backends import anthropic_claude
from loracap.core.backends.anthropic_claude import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    MAX_IMAGE_SIDE,
    TOOL_NAME,
    ClaudeCaptioner,
    resolve_base_url,
)
from loracap.core.backends.base import BackendConfig, GeneratedCaption, TokenUsage
from loracap.core.backends.registry import create_captioner
from loracap.core.errors import (
    ApiKeyMissingError,
    AuthenticationError,
    CaptionError,
    ImageRejectedError,
    InputError,
    QuotaExhaustedError,
    TransientError,
)
from loracap.core.prompts import Instructions, Profile, build_instructions
from tests.fakes.anthropic_server import DEFAULT_KEY, ClaudeReply, FakeAnthropicServer
from tests.fakes.http_fake import HttpReply

TRIGGER = "ide_main_hall"
PREFIX = "photo of ide_main_hall "
SPACE = build_instructions(Profile.SPACE)
CUSTOM = build_instructions(Profile.CUSTOM, "Describe the room briefly.")
SPACE_ANSWER = {
    "room_type": "lecture hall",
    "key_objects": ["tiered seating", "projection screen"],
    "lighting": "overhead fluorescent lighting",
    "contextual_details": "teaching space with rows of desks",
}


def make_jpeg(color: tuple[int, int, int] = (60, 120, 180)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _no_anthropic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        yield fake


@pytest.fixture
def server(shared_server: FakeAnthropicServer) -> FakeAnthropicServer:
    shared_server.reset()
    return shared_server


@pytest.fixture(scope="module")
def shared_captioner(shared_server: FakeAnthropicServer) -> Iterator[ClaudeCaptioner]:
    with ClaudeCaptioner(DEFAULT_KEY, base_url=shared_server.base_url, timeout_s=5) as client:
        yield client


@pytest.fixture
def captioner(shared_captioner: ClaudeCaptioner, server: FakeAnthropicServer) -> ClaudeCaptioner:
    return shared_captioner


def caption(captioner: ClaudeCaptioner, jpeg: bytes | None = None,
            instructions: Instructions = CUSTOM) -> GeneratedCaption:
    return captioner.caption(jpeg or make_jpeg(), instructions, trigger=TRIGGER, prefix=PREFIX)


# --- answers and the request's shape ----------------------------------------------------------


def test_caption_request_has_the_image_block_then_the_text(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    jpeg = make_jpeg()
    server.queue_replies(ClaudeReply.text(f"Caption: photo of {TRIGGER} lecture hall, tiered "
                                          "seating.", usage=(1500, 22)), route="messages")
    result = caption(captioner, jpeg)

    assert result == GeneratedCaption(
        body="lecture hall, tiered seating",
        raw=f"Caption: photo of {TRIGGER} lecture hall, tiered seating.",
        backend="anthropic", model=DEFAULT_MODEL, prompt=CUSTOM.prompt,
        usage=TokenUsage(input_tokens=1500, output_tokens=22),
    )
    [request] = server.messages_requests
    assert request.model == DEFAULT_MODEL
    assert request.blocks == ("image", "text")
    assert request.image == jpeg
    assert request.media_type == "image/jpeg"
    assert request.text == CUSTOM.prompt
    assert request.tools is None and request.tool_choice is None
    assert isinstance(request.max_tokens, int) and request.max_tokens > 0
    assert request.api_key == DEFAULT_KEY
    assert request.version  # the SDK's anthropic-version header


def test_structured_profile_uses_a_forced_tool_and_assembles_its_input(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    server.queue_replies(ClaudeReply.tool_use(SPACE_ANSWER), route="messages")
    result = caption(captioner, instructions=SPACE)

    assert result.body == ("lecture hall, tiered seating, projection screen, overhead "
                           "fluorescent lighting, teaching space with rows of desks")
    assert json.loads(result.raw) == SPACE_ANSWER
    [request] = server.messages_requests
    assert [tool["name"] for tool in request.tools] == [TOOL_NAME]
    assert request.tools[0]["input_schema"] == SPACE.json_schema
    assert request.tool_choice == {"type": "tool", "name": TOOL_NAME}
    assert request.text == SPACE.prompt


def test_a_text_answer_to_a_structured_request_is_cleaned_as_text(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    server.queue_replies(ClaudeReply.text("small office, one desk."), route="messages")
    assert caption(captioner, instructions=SPACE).body == "small office, one desk"


def test_usage_counts_cache_tokens_as_input(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    reply = ClaudeReply.text("a hall")
    body = dict(reply.body)
    body["usage"] = {"input_tokens": 100, "output_tokens": 9,
                     "cache_read_input_tokens": 40, "cache_creation_input_tokens": 2}
    server.queue_replies(HttpReply.json(body), route="messages")
    assert caption(captioner).usage == TokenUsage(142, 9)


def test_concurrent_callers_each_get_their_own_caption(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    images = [make_jpeg((i * 25, 40, 255 - i * 25)) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda jpeg: caption(captioner, jpeg).body, images))
    expected = [f"fake caption {hashlib.sha256(j).hexdigest()[:8]}, test scene" for j in images]
    assert bodies == expected
    assert len(server.messages_requests) == 8


def test_prepare_caps_the_long_side_at_1568(tmp_path: Path, captioner: ClaudeCaptioner) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (3000, 1000), (10, 20, 30)).save(path)
    with Image.open(io.BytesIO(captioner.prepare(path, 4096))) as capped:
        assert capped.format == "JPEG"
        assert capped.size == (MAX_IMAGE_SIDE, 523)
    with Image.open(io.BytesIO(captioner.prepare(path, 1024))) as smaller:
        assert max(smaller.size) == 1024


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "expected"), [("12", 12.0), (None, None)])
def test_429_is_a_rate_limit_with_the_servers_wait(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer, retry_after: str | None,
    expected: float | None,
) -> None:
    server.queue_replies(ClaudeReply.rate_limited(retry_after), route="messages")
    with pytest.raises(TransientError) as caught:
        caption(captioner)
    assert caught.value.kind == "rate_limit"
    assert caught.value.retry_after == expected
    assert "rate_limit_error" in str(caught.value)
    assert len(server.messages_requests) == 1  # the SDK's own retry is off


@pytest.mark.parametrize(("reply", "text"), [
    (ClaudeReply.overloaded(), "529 overloaded_error: Overloaded"),
    (ClaudeReply.server_error(500), "500 api_error"),
])
def test_overloaded_and_5xx_are_temporary_server_errors(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer, reply: HttpReply, text: str
) -> None:
    server.queue_replies(reply, route="messages")
    with pytest.raises(TransientError) as caught:
        caption(captioner)
    assert caught.value.kind == "server"
    assert text in str(caught.value)


def test_a_refused_key_is_an_authentication_error_with_advice(server: FakeAnthropicServer) -> None:
    with ClaudeCaptioner("sk-ant-wrong", base_url=server.base_url, timeout_s=5) as captioner:
        with pytest.raises(AuthenticationError) as caught:
            caption(captioner)
    assert "refused the API key (401 authentication_error: invalid x-api-key)" in \
        str(caught.value)
    assert "loracap key set --backend anthropic" in str(caught.value)
    assert caught.value.exit_code == 3


def test_403_is_an_authentication_error(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    server.queue_replies(ClaudeReply.permission_denied(), route="messages")
    with pytest.raises(AuthenticationError, match="permission_error"):
        caption(captioner)


@pytest.mark.parametrize("reply", [ClaudeReply.credit_too_low(), ClaudeReply.billing_error()])
def test_no_credit_left_stops_the_batch(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer, reply: HttpReply
) -> None:
    server.queue_replies(reply, route="messages")
    with pytest.raises(QuotaExhaustedError) as caught:
        caption(captioner)
    assert caught.value.exit_code == 4


def test_an_unknown_model_stops_the_batch_with_what_to_choose(
    server: FakeAnthropicServer,
) -> None:
    with ClaudeCaptioner(DEFAULT_KEY, "claude-9", base_url=server.base_url,
                         timeout_s=5) as captioner:
        with pytest.raises(CaptionError) as caught:
            caption(captioner)
    assert type(caught.value) is CaptionError
    assert "does not offer the model 'claude-9'" in str(caught.value)
    assert "loracap models --backend anthropic" in str(caught.value)


def test_a_400_about_the_image_fails_only_that_image(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    server.queue_replies(ClaudeReply.image_rejected(), route="messages")
    with pytest.raises(ImageRejectedError, match="Could not process image"):
        caption(captioner)


def test_a_hanging_server_is_a_timeout(server: FakeAnthropicServer) -> None:
    server.queue_replies(ClaudeReply.hang(3), route="messages")
    with ClaudeCaptioner(DEFAULT_KEY, base_url=server.base_url, timeout_s=0.3) as captioner:
        with pytest.raises(TransientError) as caught:
            caption(captioner)
    assert caught.value.kind == "timeout"
    assert "did not answer within 0.3 s" in str(caught.value)


def test_a_dropped_connection_is_a_connection_error(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer
) -> None:
    server.queue_replies(ClaudeReply.dropped(), route="messages")
    with pytest.raises(TransientError) as caught:
        caption(captioner)
    assert caught.value.kind == "connection"


@pytest.mark.parametrize(("reply", "match"), [
    (ClaudeReply.refusal(), r"declined to caption this image \(The request could be related"),
    (ClaudeReply.refusal(None), r"declined to caption this image\.$"),
    (ClaudeReply.empty(), "empty answer"),
    (ClaudeReply.text("   "), "empty answer"),
    (ClaudeReply.text(f'"photo of {TRIGGER}."'), "nothing left after cleaning"),
])
def test_refusals_and_empty_answers_fail_the_image(
    captioner: ClaudeCaptioner, server: FakeAnthropicServer, reply: HttpReply, match: str
) -> None:
    server.queue_replies(reply, route="messages")
    with pytest.raises(ImageRejectedError, match=match):
        caption(captioner)


# --- configuration and models -----------------------------------------------------------------


def test_no_key_is_a_missing_key_error() -> None:
    with pytest.raises(ApiKeyMissingError, match="ANTHROPIC_API_KEY"):
        anthropic_claude.create(BackendConfig("anthropic", DEFAULT_MODEL))


@pytest.mark.parametrize("url", ["api.anthropic.com", "ftp://example.com", "http://"])
def test_a_bad_base_url_is_an_input_error(url: str) -> None:
    with pytest.raises(InputError, match="ANTHROPIC_BASE_URL"):
        anthropic_claude.create(BackendConfig("anthropic", DEFAULT_MODEL, base_url=url,
                                              api_key=DEFAULT_KEY))


def test_the_base_url_comes_from_the_config_then_the_environment_then_anthropic(
    server: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_base_url("") == DEFAULT_BASE_URL
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    config = BackendConfig("anthropic", "", api_key=DEFAULT_KEY, timeout_s=5)
    with anthropic_claude.create(config) as captioner:
        assert captioner.model == DEFAULT_MODEL
        caption(captioner)
    assert len(server.messages_requests) == 1


def test_list_models_reads_the_models_api(server: FakeAnthropicServer) -> None:
    server.models = ["claude-sonnet-4-5", "claude-haiku-4-5"]
    config = BackendConfig("anthropic", "", base_url=server.base_url, api_key=DEFAULT_KEY)
    assert anthropic_claude.list_models(config) == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


def test_list_models_with_a_refused_key_is_an_authentication_error(
    server: FakeAnthropicServer,
) -> None:
    config = BackendConfig("anthropic", "", base_url=server.base_url, api_key="sk-ant-wrong")
    with pytest.raises(AuthenticationError):
        anthropic_claude.list_models(config)


def test_the_registry_builds_this_backend(server: FakeAnthropicServer) -> None:
    captioner = create_captioner(BackendConfig("anthropic", "claude-sonnet-4-5",
                                               base_url=server.base_url, api_key=DEFAULT_KEY))
    try:
        assert isinstance(captioner, ClaudeCaptioner)
        assert (captioner.backend, captioner.model) == ("anthropic", "claude-sonnet-4-5")
    finally:
        captioner.close()
