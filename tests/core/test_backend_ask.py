"""``ask`` of every vision backend (Gemini, OpenAI-compatible, Claude) with its real SDK against
its fake server: requests that are not captions (person detection, crop descriptions) get the
model's text as received, the schema sent the backend's way, usage, and the caption's error
rules; ``caption`` is ``ask`` plus the cleaning; ``HintedCaptioner`` forwards ``ask``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from PIL import Image

from loracap.core.backends import anthropic_claude, gemini, openai_compat
from loracap.core.backends.anthropic_claude import ClaudeCaptioner
from loracap.core.backends.base import Answer, GeneratedCaption, TokenUsage, VisionAsker
from loracap.core.backends.combined import HintedCaptioner
from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.backends.openai_compat import (
    STRUCTURED_OUTPUT_OPTION,
    OpenAICaptioner,
    schema_prompt,
)
from loracap.core.backends.wd14 import WD14Captioner
from loracap.core.defaults import DEFAULT_MODEL
from loracap.core.errors import CaptionError, ImageRejectedError, TransientError
from loracap.core.people import DETECTION_PROMPT, DETECTION_SCHEMA, parse_detection
from loracap.core.prompts import Profile, build_instructions
from tests.fakes.anthropic_server import DEFAULT_KEY, ClaudeReply, FakeAnthropicServer
from tests.fakes.fixtures import TEST_API_KEY
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.gemini_server import default_responder as gemini_responder
from tests.fakes.openai_server import FakeOpenAIServer, OpenAIReply
from tests.fakes.tiny_tagger import write_tagger

PERSON_PROMPT = "Describe the person in the bright part of this image in one sentence."
#: A plain answer with everything the caption cleaning would remove or change: a Markdown
#: lead-in, quotes, a line break, a final period, a non-ASCII letter.
MESSY = '**Description:** "A woman in a red coat, Zoë\'s café behind her."\n'
DETECTION = {
    "people": [
        {"box_2d": [100, 550, 950, 900], "gender": "man"},
        {"box_2d": [120, 80, 980, 400], "gender": "woman", "note": "à gauche"},
    ],
}
SPACE = build_instructions(Profile.SPACE)
TRIGGER = "ide_main_hall"
PREFIX = "photo of ide_main_hall "


def make_jpeg(color: tuple[int, int, int] = (90, 140, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass(frozen=True)
class Sent:
    """One request as the fake server saw it: the prompt text, the image bytes, and the JSON
    schema when it was sent the backend's structured way (None otherwise)."""

    prompt: str
    image: bytes | None
    schema: dict[str, Any] | None
    body: dict[str, Any]


class Kit(Protocol):
    """One backend with its fake server, for the parametrised tests."""

    name: str
    model: str
    text_usage: TokenUsage
    server: Any
    asker: Any

    def reset(self) -> None: ...
    def queue(self, reply: Any) -> None: ...
    def text_reply(self, text: str) -> Any: ...
    def json_reply(self, obj: Any) -> Any: ...
    def refusals(self) -> list[tuple[Any, str]]: ...
    def rate_limited(self, seconds: int) -> Any: ...
    def sent(self) -> list[Sent]: ...
    def close(self) -> None: ...


class _KitBase:
    """What every kit does alike: reset the server between tests, close both at the end."""

    server: Any
    asker: Any

    def reset(self) -> None:
        self.server.reset()

    def close(self) -> None:
        self.asker.close()
        self.server.stop()


class GeminiKit(_KitBase):
    name = gemini.BACKEND_NAME
    model = DEFAULT_MODEL
    text_usage = TokenUsage(270, 20)  # the fake's usageMetadata

    def __init__(self) -> None:
        self.server = FakeGeminiServer().start()
        self.asker = GeminiCaptioner(TEST_API_KEY, base_url=self.server.base_url, timeout_s=5)

    def reset(self) -> None:
        super().reset()
        self.server.responder = gemini_responder
        self.server.latency_s = 0.0

    def queue(self, reply: Reply) -> None:
        self.server.queue_replies(reply)

    def text_reply(self, text: str) -> Reply:
        return Reply.caption(text)

    def json_reply(self, obj: Any) -> Reply:
        return Reply.json(obj)

    def refusals(self) -> list[tuple[Reply, str]]:
        return [(Reply.blocked("PROHIBITED_CONTENT"), r"blocked this image \(PROHIBITED_CONTENT"),
                (Reply.finish_reason("SAFETY"), r"blocked this image \(SAFETY\)"),
                (Reply.empty(), "empty answer")]

    def rate_limited(self, seconds: int) -> Reply:
        return Reply.rate_limited(float(seconds))

    def sent(self) -> list[Sent]:
        found = []
        for request in self.server.generate_requests:
            config = request.generation_config
            schema = config.get("responseJsonSchema") if request.wants_json else None
            found.append(Sent(request.prompt, request.image, schema, request.body))
        return found


class OpenAIKit(_KitBase):
    name = openai_compat.BACKEND_NAME
    model = "gpt-4o-mini"
    text_usage = TokenUsage(900, 31)

    def __init__(self) -> None:
        self.server = FakeOpenAIServer().start()
        self.asker = OpenAICaptioner(self.server.base_url, "", self.model, timeout_s=5)

    def queue(self, reply: Any) -> None:
        self.server.queue_replies(reply, route="chat")

    def text_reply(self, text: str) -> Any:
        return OpenAIReply.caption(text, usage=(900, 31))

    def json_reply(self, obj: Any) -> Any:
        return OpenAIReply.json_answer(obj)

    def refusals(self) -> list[tuple[Any, str]]:
        return [(OpenAIReply.refusal("I can't help with that."), r"refused .*can't help"),
                (OpenAIReply.content_filter(), "content_filter"),
                (OpenAIReply.empty_content(), "empty answer")]

    def rate_limited(self, seconds: int) -> Any:
        return OpenAIReply.rate_limited(str(seconds))

    def sent(self) -> list[Sent]:
        found = []
        for chat in self.server.chat_requests:
            form = chat.response_format
            schema = chat.schema if isinstance(form, dict) and \
                form.get("type") == "json_schema" else None
            found.append(Sent(chat.text, chat.image, schema, chat.body))
        return found


class ClaudeKit(_KitBase):
    name = anthropic_claude.BACKEND_NAME
    model = anthropic_claude.DEFAULT_MODEL
    text_usage = TokenUsage(1500, 22)

    def __init__(self) -> None:
        self.server = FakeAnthropicServer().start()
        self.asker = ClaudeCaptioner(DEFAULT_KEY, base_url=self.server.base_url, timeout_s=5)

    def queue(self, reply: Any) -> None:
        self.server.queue_replies(reply, route="messages")

    def text_reply(self, text: str) -> Any:
        return ClaudeReply.text(text, usage=(1500, 22))

    def json_reply(self, obj: Any) -> Any:
        return ClaudeReply.tool_use(obj, name=anthropic_claude.TOOL_NAME)

    def refusals(self) -> list[tuple[Any, str]]:
        return [(ClaudeReply.refusal("It could be harmful."), r"declined .*It could be harmful"),
                (ClaudeReply.empty(), "empty answer")]

    def rate_limited(self, seconds: int) -> Any:
        return ClaudeReply.rate_limited(str(seconds))

    def sent(self) -> list[Sent]:
        found = []
        forced = {"type": "tool", "name": anthropic_claude.TOOL_NAME}
        for request in self.server.messages_requests:
            tools = request.tools if isinstance(request.tools, list) else []
            names = [tool.get("name") for tool in tools if isinstance(tool, dict)]
            schema = request.tool_schema if request.tool_choice == forced and \
                names == [anthropic_claude.TOOL_NAME] else None
            found.append(Sent(request.text, request.image, schema, request.body))
        return found


KITS: dict[str, Callable[[], Kit]] = {
    "gemini": GeminiKit, "openai": OpenAIKit, "anthropic": ClaudeKit,
}


@pytest.fixture(scope="module", params=list(KITS))
def shared_kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    # One server and one client per backend for the module; each test starts from a reset
    # server. Tests that change a client's state build their own.
    built = KITS[request.param]()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def kit(shared_kit: Kit) -> Kit:
    shared_kit.reset()
    return shared_kit


# --- answers ----------------------------------------------------------------------------------


def test_a_plain_ask_returns_the_text_as_received(kit: Kit) -> None:
    jpeg = make_jpeg()
    kit.queue(kit.text_reply(MESSY))

    answer = kit.asker.ask(jpeg, PERSON_PROMPT)

    assert answer == Answer(text=MESSY, backend=kit.name, model=kit.model,
                            prompt=PERSON_PROMPT, usage=kit.text_usage)
    [sent] = kit.sent()
    assert sent.prompt == PERSON_PROMPT
    assert sent.image == jpeg
    assert sent.schema is None


def test_a_structured_ask_sends_the_schema_the_backends_way_and_returns_json(kit: Kit) -> None:
    jpeg = make_jpeg((200, 40, 40))
    kit.queue(kit.json_reply(DETECTION))

    answer = kit.asker.ask(jpeg, DETECTION_PROMPT, json_schema=DETECTION_SCHEMA)

    assert json.loads(answer.text) == DETECTION
    # Non-ASCII letters arrive as they are (Claude's tool input is serialised by the backend).
    assert answer.text == json.dumps(DETECTION, ensure_ascii=False)
    assert answer.prompt == DETECTION_PROMPT
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    boxes = parse_detection(answer.text, 1000, 500)
    assert [box.gender for box in boxes] == ["man", "woman"]
    [sent] = kit.sent()
    assert sent.schema == DETECTION_SCHEMA
    assert sent.prompt == DETECTION_PROMPT
    assert sent.image == jpeg


def test_caption_sends_the_same_request_as_ask_and_cleans_its_text(kit: Kit) -> None:
    jpeg = make_jpeg((30, 160, 90))
    answer = kit.asker.ask(jpeg, SPACE.prompt, json_schema=SPACE.json_schema)
    result = kit.asker.caption(jpeg, SPACE, trigger=TRIGGER, prefix=PREFIX)

    asked, captioned = kit.sent()
    assert captioned.body == asked.body
    assert isinstance(result, GeneratedCaption)
    assert result.raw == answer.text
    assert (result.backend, result.model, result.prompt, result.usage) == \
        (answer.backend, answer.model, answer.prompt, answer.usage)
    assert result.body and result.body != answer.text
    assert not result.body.startswith("{")


def test_concurrent_asks_each_get_their_own_answer(kit: Kit) -> None:
    jpegs = [make_jpeg((40 * i, 255 - 30 * i, 100)) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda jpeg: kit.asker.ask(jpeg, PERSON_PROMPT), jpegs))

    # Each fake derives its default answer from the image's bytes.
    assert len({answer.text for answer in answers}) == len(jpegs)
    by_image = {sent.image: sent for sent in kit.sent()}
    assert set(by_image) == set(jpegs)


# --- errors -----------------------------------------------------------------------------------


def test_a_block_refusal_or_empty_answer_rejects_the_image(kit: Kit) -> None:
    for reply, message in kit.refusals():
        kit.queue(reply)
        with pytest.raises(ImageRejectedError, match=message):
            kit.asker.ask(make_jpeg(), PERSON_PROMPT)


def test_a_structured_ask_that_is_refused_rejects_the_image(kit: Kit) -> None:
    reply, message = kit.refusals()[0]
    kit.queue(reply)
    with pytest.raises(ImageRejectedError, match=message):
        kit.asker.ask(make_jpeg(), DETECTION_PROMPT, json_schema=DETECTION_SCHEMA)


def test_a_429_is_a_rate_limit_with_the_servers_wait(kit: Kit) -> None:
    kit.queue(kit.rate_limited(7))
    with pytest.raises(TransientError) as caught:
        kit.asker.ask(make_jpeg(), PERSON_PROMPT)
    assert caught.value.kind == "rate_limit"
    assert caught.value.retry_after == pytest.approx(7.0)


def test_a_text_answer_is_not_cut_to_a_captions_length(kit: Kit) -> None:
    # A caption answer this long is refused (prompts.ANSWER_LIMITS); ask leaves the length to
    # its caller.
    long_text = "word " * 20_000
    kit.queue(kit.text_reply(long_text))
    assert kit.asker.ask(make_jpeg(), PERSON_PROMPT).text == long_text


# --- OpenAI: servers that take no response_format ---------------------------------------------


@pytest.fixture
def openai_without_response_format() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        fake.accepts_response_format = False
        yield fake


def test_openai_ask_falls_back_to_the_schema_in_the_prompt_and_remembers_it(
    openai_without_response_format: FakeOpenAIServer,
) -> None:
    server = openai_without_response_format
    server.responder = lambda _chat: OpenAIReply.json_answer(DETECTION)
    with OpenAICaptioner(server.base_url, "", "gpt-4o-mini", timeout_s=5) as asker:
        answer = asker.ask(make_jpeg(), DETECTION_PROMPT, json_schema=DETECTION_SCHEMA)
        refused, retried = server.chat_requests
        assert refused.schema == DETECTION_SCHEMA
        assert retried.response_format is None
        assert retried.text == schema_prompt(DETECTION_PROMPT, DETECTION_SCHEMA)
        assert answer.prompt == retried.text
        assert json.loads(answer.text) == DETECTION
        assert asker.learned_options() == {STRUCTURED_OUTPUT_OPTION: False}

        again = asker.ask(make_jpeg((1, 2, 3)), DETECTION_PROMPT, json_schema=DETECTION_SCHEMA)

    third = server.chat_requests[2:]
    assert [chat.response_format for chat in third] == [None]
    assert third[0].text == schema_prompt(DETECTION_PROMPT, DETECTION_SCHEMA)
    assert again.prompt == third[0].text


def test_openai_ask_with_structured_output_off_never_sends_response_format() -> None:
    with FakeOpenAIServer() as server:
        server.responder = lambda _chat: OpenAIReply.json_answer(DETECTION)
        with OpenAICaptioner(server.base_url, "", "gpt-4o-mini", timeout_s=5,
                             structured_output=False) as asker:
            answer = asker.ask(make_jpeg(), DETECTION_PROMPT, json_schema=DETECTION_SCHEMA)
        [chat] = server.chat_requests
    assert chat.response_format is None
    assert chat.text == answer.prompt == schema_prompt(DETECTION_PROMPT, DETECTION_SCHEMA)


def test_openai_ask_keeps_a_think_block_that_caption_drops() -> None:
    text = "<think>Two people, one on each side.</think>\nA man in a grey suit."
    with FakeOpenAIServer() as server:
        server.responder = lambda _chat: OpenAIReply.caption(text)
        with OpenAICaptioner(server.base_url, "", "gpt-4o-mini", timeout_s=5) as asker:
            answer = asker.ask(make_jpeg(), PERSON_PROMPT)
            result = asker.caption(make_jpeg(), build_instructions(Profile.CUSTOM, "Describe."),
                                   trigger=TRIGGER, prefix=PREFIX)
    assert answer.text == text
    assert result.raw == text
    assert "think" not in result.body and "Two people" not in result.body


def test_openai_a_400_about_the_image_is_not_taken_for_a_refused_response_format() -> None:
    with FakeOpenAIServer() as server:
        server.queue_replies(OpenAIReply.image_rejected(), OpenAIReply.image_rejected(),
                             route="chat")
        with OpenAICaptioner(server.base_url, "", "gpt-4o-mini", timeout_s=5) as asker:
            with pytest.raises(ImageRejectedError, match="invalid or corrupted"):
                asker.ask(make_jpeg(), DETECTION_PROMPT, json_schema=DETECTION_SCHEMA)
            assert asker.learned_options() == {}
            assert asker.structured_output is True
        # Asked again once without response_format; that answer (the same 400) is what counts.
        assert [chat.response_format is None for chat in server.chat_requests] == [False, True]


# --- the capability and the combined captioner ------------------------------------------------


class _NoTagger:
    """A tagger that must not be used: ask goes to the vision model alone."""

    backend = "wd14"
    model = "none"

    def prepare(self, path: Path, max_side: int) -> Any:
        raise AssertionError("the tagger was asked to prepare")

    def tag(self, image: Any) -> list[tuple[str, float]]:
        raise AssertionError("the tagger was run")

    def close(self) -> None:
        pass


def test_the_vision_backends_can_ask_and_the_tagger_cannot(kit: Kit, tmp_path: Path) -> None:
    assert isinstance(kit.asker, VisionAsker)
    with WD14Captioner(write_tagger(tmp_path / "tagger")) as tagger:
        assert not isinstance(tagger, VisionAsker)


def test_a_hinted_captioner_forwards_ask_to_its_vision_model(kit: Kit) -> None:
    hinted = HintedCaptioner(kit.asker, _NoTagger())
    kit.queue(kit.text_reply(MESSY))

    assert isinstance(hinted, VisionAsker)
    answer = hinted.ask(make_jpeg(), PERSON_PROMPT)

    assert answer == Answer(MESSY, kit.name, kit.model, PERSON_PROMPT, kit.text_usage)
    [sent] = kit.sent()
    assert sent.prompt == PERSON_PROMPT  # no tag-hint line
    kit.queue(kit.json_reply(DETECTION))
    assert json.loads(hinted.ask(make_jpeg(), DETECTION_PROMPT,
                                 json_schema=DETECTION_SCHEMA).text) == DETECTION
    assert kit.sent()[-1].schema == DETECTION_SCHEMA


def test_a_hinted_captioner_around_a_model_that_cannot_ask_says_so(tmp_path: Path) -> None:
    with WD14Captioner(write_tagger(tmp_path / "tagger")) as not_vision:
        hinted = HintedCaptioner(not_vision, _NoTagger())
        with pytest.raises(CaptionError, match="cannot answer requests other than captions"):
            hinted.ask(make_jpeg(), PERSON_PROMPT)

