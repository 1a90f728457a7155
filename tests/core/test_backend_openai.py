"""The real ``openai`` SDK in OpenAICaptioner against the fake OpenAI-compatible server."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from loracap.core.backends import openai_compat
from loracap.core.backends.base import BackendConfig, GeneratedCaption, TokenUsage
from loracap.core.backends.openai_compat import (
    DEFAULT_BASE_URL,
    NO_KEY,
    OPENAI_PRESETS,
    OpenAICaptioner,
    preset_for_url,
    resolve_base_url,
)
from loracap.core.backends.registry import create_captioner
from loracap.core.errors import (
    AuthenticationError,
    CaptionError,
    ImageRejectedError,
    InputError,
    QuotaExhaustedError,
    TransientError,
)
from loracap.core.prompts import Profile, build_instructions
from tests.fakes.http_fake import HttpReply
from tests.fakes.openai_server import FakeOpenAIServer, OpenAIReply

TRIGGER = "ide_main_hall"
PREFIX = "photo of ide_main_hall "
MODEL = "gpt-4o-mini"
KEY = "sk-test"
SPACE = build_instructions(Profile.SPACE)
CUSTOM = build_instructions(Profile.CUSTOM, "Describe the room briefly.")
SPACE_ANSWER = {
    "room_type": "lecture hall",
    "key_objects": ["tiered seating", "projection screen"],
    "lighting": "overhead fluorescent lighting",
    "contextual_details": "teaching space with rows of desks",
}
SPACE_BODY = ("lecture hall, tiered seating, projection screen, overhead fluorescent lighting, "
              "teaching space with rows of desks")


def make_jpeg(color: tuple[int, int, int] = (180, 120, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def server(shared_server: FakeOpenAIServer) -> FakeOpenAIServer:
    shared_server.reset()
    return shared_server


@pytest.fixture(scope="module")
def shared_captioner(shared_server: FakeOpenAIServer) -> Iterator[OpenAICaptioner]:
    # Building a client costs ~0.1 s, so the tests that change no captioner state share one.
    with OpenAICaptioner(shared_server.base_url, KEY, MODEL, timeout_s=5) as captioner:
        yield captioner


@pytest.fixture
def captioner(shared_captioner: OpenAICaptioner, server: FakeOpenAIServer) -> OpenAICaptioner:
    assert shared_captioner.structured_output, "a test changed the shared captioner"
    return shared_captioner


def config(server: FakeOpenAIServer, **changes: object) -> BackendConfig:
    values: dict[str, object] = {"backend": "openai", "model": MODEL,
                                 "base_url": server.base_url, "api_key": KEY, "timeout_s": 5.0}
    values.update(changes)
    return BackendConfig(**values)  # type: ignore[arg-type]


def caption(captioner: OpenAICaptioner, jpeg: bytes | None = None,
            instructions: object = CUSTOM) -> GeneratedCaption:
    return captioner.caption(jpeg or make_jpeg(), instructions,  # type: ignore[arg-type]
                             trigger=TRIGGER, prefix=PREFIX)


# --- answers and the request's shape ----------------------------------------------------------


def test_caption_request_has_text_first_then_the_jpeg_as_data_url(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    jpeg = make_jpeg()
    server.queue_replies(OpenAIReply.caption(f'**Caption:** "photo of {TRIGGER} lecture hall, '
                                             'tiered seating."', usage=(900, 31)), route="chat")
    result = caption(captioner, jpeg)

    assert result == GeneratedCaption(
        body="lecture hall, tiered seating",
        raw=f'**Caption:** "photo of {TRIGGER} lecture hall, tiered seating."',
        backend="openai", model=MODEL, prompt=CUSTOM.prompt,
        usage=TokenUsage(input_tokens=900, output_tokens=31),
    )
    [request] = server.chat_requests
    assert request.model == MODEL
    assert request.parts == ("text", "image_url")
    assert request.text == CUSTOM.prompt
    assert request.image_url is not None
    assert request.image_url.startswith("data:image/jpeg;base64,")
    assert request.image == jpeg
    assert request.response_format is None
    assert request.authorization == f"Bearer {KEY}"


def test_without_a_key_a_placeholder_is_sent(server: FakeOpenAIServer) -> None:
    with openai_compat.create(config(server, api_key="")) as captioner:
        caption(captioner)
    [request] = server.chat_requests
    assert request.authorization == f"Bearer {NO_KEY}"


def test_structured_profile_sends_the_schema_and_assembles_the_fields(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    server.queue_replies(OpenAIReply.json_answer(SPACE_ANSWER), route="chat")
    result = caption(captioner, instructions=SPACE)

    assert result.body == SPACE_BODY
    assert result.prompt == SPACE.prompt
    [request] = server.chat_requests
    assert request.response_format == {
        "type": "json_schema", "json_schema": {"name": "caption", "schema": SPACE.json_schema},
    }
    assert request.text == SPACE.prompt


def test_token_usage_is_zero_when_the_server_does_not_say(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    server.queue_replies(OpenAIReply.caption("a hall", usage=None), route="chat")
    assert caption(captioner).usage == TokenUsage(0, 0)


def test_a_leading_think_block_is_dropped(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    raw = "<think>The user wants a caption.\nI see a hall.</think>\nlecture hall, wooden desks"
    server.queue_replies(OpenAIReply.caption(raw), route="chat")
    result = caption(captioner)
    assert result.body == "lecture hall, wooden desks"
    assert result.raw == raw


def test_concurrent_callers_each_get_their_own_caption(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    images = [make_jpeg((i * 20, 255 - i * 20, 90)) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda jpeg: caption(captioner, jpeg).body, images))
    sent = {request.image: request for request in server.chat_requests}
    assert set(sent) == set(images)
    # Each answer is derived from the image its request carried: no answer went to the wrong
    # caller.
    for jpeg, body in zip(images, bodies, strict=True):
        assert body == openai_server_caption(jpeg)


def openai_server_caption(jpeg: bytes) -> str:
    import hashlib

    return f"fake caption {hashlib.sha256(jpeg).hexdigest()[:8]}, test scene"


# --- structured output refused ----------------------------------------------------------------


def test_refused_response_format_is_retried_once_without_it_and_remembered(
    server: FakeOpenAIServer,
) -> None:
    server.accepts_response_format = False
    server.queue_replies(OpenAIReply.json_answer(SPACE_ANSWER),
                         OpenAIReply.caption("small office, one desk"), route="chat")
    with OpenAICaptioner(server.base_url, KEY, MODEL, timeout_s=5) as captioner:
        assert captioner.learned_options() == {}
        first = caption(captioner, instructions=SPACE)

        assert first.body == SPACE_BODY
        refused, retried = server.chat_requests
        assert refused.response_format is not None
        assert retried.response_format is None
        assert retried.text.startswith(SPACE.prompt)
        assert "Answer with one JSON object that follows this JSON schema: " in retried.text
        assert '"room_type"' in retried.text
        assert first.prompt == retried.text
        assert captioner.structured_output is False
        assert captioner.learned_options() == {"structured_output": False}

        # From now on it is not sent at all; a plain answer is cleaned like free text.
        second = caption(captioner, instructions=SPACE)
    assert second.body == "small office, one desk"
    assert len(server.chat_requests) == 3
    assert server.chat_requests[2].response_format is None


def test_a_400_that_was_about_the_image_is_not_remembered(server: FakeOpenAIServer) -> None:
    server.queue_replies(OpenAIReply.image_rejected(), OpenAIReply.image_rejected(), route="chat")
    with OpenAICaptioner(server.base_url, KEY, MODEL, timeout_s=5) as captioner:
        with pytest.raises(ImageRejectedError, match="invalid or corrupted"):
            caption(captioner, instructions=SPACE)
        assert captioner.structured_output is True
        assert captioner.learned_options() == {}
    assert [r.response_format is not None for r in server.chat_requests] == [True, False]


def test_structured_output_option_false_never_sends_response_format(
    server: FakeOpenAIServer,
) -> None:
    server.queue_replies(OpenAIReply.json_answer(SPACE_ANSWER), route="chat")
    with openai_compat.create(config(server, options={"structured_output": False})) as captioner:
        result = caption(captioner, instructions=SPACE)
        assert captioner.learned_options() == {}
    assert result.body == SPACE_BODY
    [request] = server.chat_requests
    assert request.response_format is None
    assert "follows this JSON schema" in request.text


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "expected"), [
    (OpenAIReply.rate_limited(retry_after="7"), 7.0),
    (OpenAIReply.rate_limited(retry_after="7", retry_after_ms="1500"), 1.5),
    (OpenAIReply.rate_limited(retry_after=None), None),
])
def test_429_is_a_rate_limit_with_the_servers_wait(
    captioner: OpenAICaptioner, server: FakeOpenAIServer, reply: HttpReply,
    expected: float | None,
) -> None:
    server.queue_replies(reply, route="chat")
    with pytest.raises(TransientError) as caught:
        caption(captioner)
    assert caught.value.kind == "rate_limit"
    assert caught.value.retry_after == expected
    assert "Rate limit reached" in str(caught.value)
    assert len(server.chat_requests) == 1  # the SDK's own retry is off


def test_insufficient_quota_stops_the_batch(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    server.queue_replies(OpenAIReply.insufficient_quota(), route="chat")
    with pytest.raises(QuotaExhaustedError, match="quota is used up"):
        caption(captioner)


def test_a_refused_key_is_an_authentication_error_with_advice(server: FakeOpenAIServer) -> None:
    server.api_key = "sk-right"
    with OpenAICaptioner(server.base_url, "sk-wrong", MODEL, timeout_s=5) as captioner:
        with pytest.raises(AuthenticationError) as caught:
            caption(captioner)
    message = str(caught.value)
    assert "refused the API key" in message
    assert "Incorrect API key" in message
    assert "loracap key set --backend openai" in message
    assert "OPENAI_API_KEY" in message
    assert caught.value.exit_code == 3


def test_403_is_an_authentication_error(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    server.queue_replies(OpenAIReply.forbidden(), route="chat")
    with pytest.raises(AuthenticationError, match="does not have access"):
        caption(captioner)


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_a_transient_server_error(
    captioner: OpenAICaptioner, server: FakeOpenAIServer, status: int
) -> None:
    server.queue_replies(OpenAIReply.server_error(status), route="chat")
    with pytest.raises(TransientError) as caught:
        caption(captioner)
    assert caught.value.kind == "server"
    assert f"{status}:" in str(caught.value)


def test_an_unknown_model_stops_the_batch_with_what_to_choose(server: FakeOpenAIServer) -> None:
    with OpenAICaptioner(server.base_url, KEY, "gpt-9", timeout_s=5) as captioner:
        with pytest.raises(CaptionError) as caught:
            caption(captioner)
    assert type(caught.value) is CaptionError
    message = str(caught.value)
    assert "'gpt-9'" in message
    assert f"OpenAI-compatible server at {server.base_url}" in message
    assert "loracap models --backend openai" in message


def test_a_model_without_vision_stops_the_batch(server: FakeOpenAIServer) -> None:
    server.vision = False
    with OpenAICaptioner(server.base_url, KEY, MODEL, timeout_s=5) as captioner:
        with pytest.raises(CaptionError) as caught:
            caption(captioner, instructions=SPACE)
        assert captioner.structured_output is True
    assert type(caught.value) is CaptionError  # not ImageRejectedError: every image would fail
    assert str(caught.value).startswith(
        f"The model '{MODEL}' at {server.base_url} does not accept images")
    assert "choose a vision model" in str(caught.value)
    assert len(server.chat_requests) == 1  # no pointless retry without response_format


def test_openrouters_404_for_no_image_endpoint_is_a_model_without_vision(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    body = {"error": {"message": "No endpoints found that support image input", "code": 404}}
    server.queue_replies(HttpReply.json(body, 404), route="chat")
    with pytest.raises(CaptionError, match="does not accept images"):
        caption(captioner)


def test_a_400_about_the_image_fails_only_that_image(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    server.queue_replies(OpenAIReply.image_rejected(), route="chat")
    with pytest.raises(ImageRejectedError, match="could not process this image"):
        caption(captioner)


def test_a_hanging_server_is_a_timeout(server: FakeOpenAIServer) -> None:
    server.queue_replies(OpenAIReply.hang(3), route="chat")
    with OpenAICaptioner(server.base_url, KEY, MODEL, timeout_s=0.3) as captioner:
        with pytest.raises(TransientError) as caught:
            caption(captioner)
    assert caught.value.kind == "timeout"
    assert "did not answer within 0.3 s" in str(caught.value)


def test_a_dropped_connection_is_a_connection_error(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    server.queue_replies(OpenAIReply.dropped(), route="chat")
    with pytest.raises(TransientError) as caught:
        caption(captioner)
    assert caught.value.kind == "connection"
    assert "Could not reach OpenAI-compatible server" in str(caught.value)


def test_a_server_that_is_not_listening_is_a_connection_error() -> None:
    with FakeOpenAIServer() as gone:
        url = gone.base_url
    with OpenAICaptioner(url, KEY, MODEL, timeout_s=2) as captioner:
        with pytest.raises(TransientError) as caught:
            caption(captioner)
    assert caught.value.kind == "connection"


@pytest.mark.parametrize(("reply", "match"), [
    (OpenAIReply.refusal("I can't describe this image."), "refused.*I can't describe"),
    (OpenAIReply.content_filter(), "content_filter"),
    (OpenAIReply.content_filter("partial text"), "content_filter"),
    (OpenAIReply.empty_choices(), "no choices"),
    (OpenAIReply.empty_content(), "empty answer"),
    (OpenAIReply.caption("<think>hmm</think>"), "empty answer"),
    (OpenAIReply.caption('"photo of ide_main_hall."'), "nothing left after cleaning"),
])
def test_refused_filtered_and_empty_answers_fail_the_image(
    captioner: OpenAICaptioner, server: FakeOpenAIServer, reply: HttpReply, match: str
) -> None:
    server.queue_replies(reply, route="chat")
    with pytest.raises(ImageRejectedError, match=match):
        caption(captioner)


def test_an_answer_that_is_no_chat_completion_stops_the_batch(
    captioner: OpenAICaptioner, server: FakeOpenAIServer
) -> None:
    page = "<html><body>Open WebUI</body></html>"
    server.queue_replies(HttpReply(body=page, content_type="text/html"), route="chat")
    with pytest.raises(CaptionError, match="check the base URL") as caught:
        caption(captioner)
    assert not isinstance(caught.value, (ImageRejectedError, TransientError))


# --- base URL, models, presets ----------------------------------------------------------------


@pytest.mark.parametrize("url", ["localhost:11434/v1", "ftp://example.com/v1", "http://",
                                 "not a url", "http://[::1/v1"])
def test_a_bad_base_url_is_an_input_error_naming_the_fix(url: str) -> None:
    with pytest.raises(InputError) as caught:
        openai_compat.create(BackendConfig("openai", MODEL, base_url=url))
    message = str(caught.value)
    assert "The server URL of the openai backend" in message
    assert "http://" in message and "OPENAI_BASE_URL" in message


def test_the_base_url_comes_from_the_config_then_the_environment_then_openai(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_base_url("") == DEFAULT_BASE_URL
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    assert resolve_base_url("") == server.base_url
    assert resolve_base_url("http://localhost:1234/v1") == "http://localhost:1234/v1"
    with openai_compat.create(BackendConfig("openai", MODEL, timeout_s=5)) as captioner:
        caption(captioner)
    assert len(server.chat_requests) == 1


def test_list_models_gives_the_servers_ids_sorted(server: FakeOpenAIServer) -> None:
    server.models = ["qwen2.5vl:7b", "gemma3:12b", "llava:13b"]
    models = openai_compat.list_models(config(server, model=""))
    assert models == ["gemma3:12b", "llava:13b", "qwen2.5vl:7b"]
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


def test_without_a_model_the_servers_only_model_is_used(server: FakeOpenAIServer) -> None:
    server.models = ["Qwen/Qwen2.5-VL-7B-Instruct"]
    with openai_compat.create(config(server, model="")) as captioner:
        assert captioner.model == "Qwen/Qwen2.5-VL-7B-Instruct"
        result = caption(captioner)
    assert result.model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert server.chat_requests[0].model == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_without_a_model_several_models_are_listed_in_the_error(server: FakeOpenAIServer) -> None:
    server.models = ["llava:13b", "gemma3:12b"]
    with pytest.raises(InputError) as caught:
        openai_compat.create(config(server, model=""))
    assert "gemma3:12b, llava:13b" in str(caught.value)
    assert "choose one with --model" in str(caught.value)
    assert server.chat_requests == []


def test_without_a_model_an_unreadable_list_is_an_input_error(server: FakeOpenAIServer) -> None:
    server.queue_replies(OpenAIReply.model_not_found("list"), route="models")
    with pytest.raises(InputError, match="model list .* could not be read.*--model"):
        openai_compat.create(config(server, model=""))
    # A refused key stays what it is (exit 3), as for a caption.
    server.queue_replies(OpenAIReply.unauthorized(), route="models")
    with pytest.raises(AuthenticationError):
        openai_compat.create(config(server, model=""))


def test_presets_and_their_urls() -> None:
    by_name = {preset.name: preset for preset in OPENAI_PRESETS}
    assert set(by_name) == {"openai", "ollama", "lmstudio", "vllm", "openrouter"}
    for name in ("ollama", "lmstudio", "vllm"):
        assert by_name[name].rpm == 0
        assert 1 <= by_name[name].workers <= 2
        assert not by_name[name].needs_key
    assert by_name["openai"].needs_key and by_name["openrouter"].needs_key
    assert preset_for_url("http://127.0.0.1:11434/v1/") is by_name["ollama"]
    assert preset_for_url("http://LOCALHOST:1234/v1") is by_name["lmstudio"]
    assert preset_for_url("https://api.openai.com:443/v1") is by_name["openai"]
    assert preset_for_url("https://openrouter.ai/api/v1") is by_name["openrouter"]
    assert preset_for_url("http://localhost:8000/v1") is by_name["vllm"]
    assert preset_for_url("http://192.168.1.20:11434/v1") is None
    assert preset_for_url("http://localhost:11434") is None
    assert preset_for_url("nonsense") is None


def test_the_registry_builds_this_backend(server: FakeOpenAIServer) -> None:
    captioner = create_captioner(config(server))
    try:
        assert isinstance(captioner, OpenAICaptioner)
        assert captioner.backend == "openai"
    finally:
        captioner.close()


def test_a_key_in_the_url_is_not_shown_in_messages(server: FakeOpenAIServer) -> None:
    url = server.base_url.replace("http://", "http://user:secret@")
    server.queue_replies(OpenAIReply.server_error(500), route="chat")
    with OpenAICaptioner(url, KEY, MODEL, timeout_s=5) as captioner:
        with pytest.raises(TransientError) as caught:
            caption(captioner)
    assert "secret" not in str(caught.value)
    assert server.base_url in str(caught.value)

