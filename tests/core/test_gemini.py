"""The real google-genai client in GeminiCaptioner against the fake Gemini server on 127.0.0.1."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from loracap.core.backends.base import TokenUsage
from loracap.core.backends.gemini import (
    BACKEND_NAME,
    DEFAULT_MODEL,
    GeminiCaptioner,
    GeneratedCaption,
)
from loracap.core.errors import (
    AuthenticationError,
    CaptionError,
    ImageRejectedError,
    QuotaExhaustedError,
    TransientError,
)
from loracap.core.prompts import Profile, build_instructions
from tests.fakes.fixtures import TEST_API_KEY
from tests.fakes.gemini_server import FakeGeminiServer, Reply, default_responder

TRIGGER = "ide_main_hall"
PREFIX = "photo of ide_main_hall "
SPACE = build_instructions(Profile.SPACE)
CUSTOM = build_instructions(Profile.CUSTOM, "Describe the room briefly.")


def make_jpeg(color: tuple[int, int, int] = (180, 120, 60), size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeGeminiServer]:
    # One server and one client for the module: building a genai.Client costs ~0.1 s (SSL
    # contexts), so most tests share them; each test starts from a reset server.
    with FakeGeminiServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def shared_captioner(shared_server: FakeGeminiServer) -> Iterator[GeminiCaptioner]:
    with GeminiCaptioner(TEST_API_KEY, base_url=shared_server.base_url, timeout_s=5) as client:
        yield client


@pytest.fixture
def server(shared_server: FakeGeminiServer) -> FakeGeminiServer:
    shared_server.reset()
    shared_server.responder = default_responder
    shared_server.latency_s = 0.0
    return shared_server


@pytest.fixture
def captioner(shared_captioner: GeminiCaptioner, server: FakeGeminiServer) -> GeminiCaptioner:
    return shared_captioner


def caption_custom(captioner: GeminiCaptioner, jpeg: bytes | None = None) -> GeneratedCaption:
    return captioner.caption(jpeg or make_jpeg(), CUSTOM, trigger=TRIGGER, prefix=PREFIX)


# --- successful answers -----------------------------------------------------------------------


def test_plain_caption_is_cleaned_and_request_carries_image_and_prompt(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    jpeg = make_jpeg()
    server.queue_replies(Reply.messy(TRIGGER))
    result = captioner.caption(jpeg, CUSTOM, trigger=TRIGGER, prefix=PREFIX)

    assert result == GeneratedCaption(
        body="lecture hall, tiered seating",
        raw=f'**Caption:** "photo of {TRIGGER} lecture hall, tiered seating.\n"',
        backend=BACKEND_NAME,
        model=DEFAULT_MODEL,
        prompt=CUSTOM.prompt,
        usage=TokenUsage(input_tokens=270, output_tokens=20),
    )
    [request] = server.generate_requests
    assert request.model == DEFAULT_MODEL
    assert request.api_key == TEST_API_KEY
    assert request.image == jpeg
    assert request.image_mime_type == "image/jpeg"
    assert request.prompt == CUSTOM.prompt
    assert "responseMimeType" not in request.generation_config


def test_structured_answer_is_assembled_in_field_order(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    jpeg = make_jpeg((10, 200, 30))
    server.queue_replies(Reply.json({
        "lighting": "overhead fluorescent lighting",
        "contextual_details": "teaching space with rows of desks",
        "room_type": "lecture hall",
        "key_objects": ["tiered seating", "projection screen."],
    }))
    result = captioner.caption(jpeg, SPACE, trigger=TRIGGER, prefix=PREFIX)

    assert result.body == (
        "lecture hall, tiered seating, projection screen, overhead fluorescent lighting, "
        "teaching space with rows of desks"
    )
    [request] = server.generate_requests
    assert request.generation_config["responseMimeType"] == "application/json"
    assert request.generation_config["responseJsonSchema"] == SPACE.json_schema
    assert request.image == jpeg
    assert request.prompt == SPACE.prompt


def test_default_responder_gives_a_distinct_structured_caption_per_image(
    captioner: GeminiCaptioner,
) -> None:
    red = captioner.caption(make_jpeg((255, 0, 0)), SPACE, trigger=TRIGGER, prefix=PREFIX)
    blue = captioner.caption(make_jpeg((0, 0, 255)), SPACE, trigger=TRIGGER, prefix=PREFIX)
    assert red.body != blue.body
    assert red.body.startswith("room type ")
    assert red.body.split(", ")[1].startswith("key objects ")


def test_max_tokens_with_text_is_accepted(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.caption("lecture hall, tiered seat", finish_reason="MAX_TOKENS"))
    assert caption_custom(captioner).body == "lecture hall, tiered seat"


def test_base_url_from_environment_is_honoured(gemini_server: FakeGeminiServer) -> None:
    # The gemini_server fixture sets GOOGLE_GEMINI_BASE_URL; no base_url is passed here.
    with GeminiCaptioner(TEST_API_KEY, timeout_s=5) as captioner:
        gemini_server.queue_replies(Reply.caption("atrium"))
        assert caption_custom(captioner).body == "atrium"
    assert len(gemini_server.generate_requests) == 1


def test_model_name_is_sent_and_models_prefix_tolerated(server: FakeGeminiServer) -> None:
    with GeminiCaptioner(TEST_API_KEY, "models/gemini-2.5-flash", base_url=server.base_url) as c:
        assert caption_custom(c).model == "gemini-2.5-flash"
    assert server.generate_requests[0].model == "gemini-2.5-flash"


def test_list_models_returns_generate_content_models(captioner: GeminiCaptioner) -> None:
    names = captioner.list_models()
    assert DEFAULT_MODEL in names
    assert "gemini-2.5-flash" in names
    assert "gemini-embedding-001" not in names
    assert not any(name.startswith("models/") for name in names)


def test_one_captioner_serves_several_threads(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.latency_s = 0.05
    images = [make_jpeg((i * 30, 255 - i * 30, 100)) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda jpeg: caption_custom(captioner, jpeg).body, images))
    assert len(set(bodies)) == 8
    by_image = {request.image: request for request in server.generate_requests}
    assert set(by_image) == set(images)


# --- quota and rate limits --------------------------------------------------------------------


@pytest.mark.parametrize(("delay", "expected"), [(26.0, 26.0), (1.5, 1.5), (None, None)])
def test_per_minute_rate_limit_is_transient_with_the_server_delay(
    captioner: GeminiCaptioner, server: FakeGeminiServer,
    delay: float | None, expected: float | None,
) -> None:
    server.queue_replies(Reply.rate_limited(delay))
    with pytest.raises(TransientError) as caught:
        caption_custom(captioner)
    assert caught.value.kind == "rate_limit"
    assert caught.value.retry_after == expected
    assert len(server.generate_requests) == 1  # the SDK did not retry on its own


def test_per_day_quota_stops_with_a_clear_message(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.daily_quota())  # carries a RetryInfo too, like the real API
    with pytest.raises(QuotaExhaustedError) as caught:
        caption_custom(captioner)
    message = str(caught.value)
    assert message == ("The Gemini daily quota is used up "
                       "(GenerateRequestsPerDayPerProjectPerModel-FreeTier).")
    # What to do is said once, by the front end (the window's and the CLI's own words).
    from loracap.core.errors import stop_advice

    advice = stop_advice(caught.value, for_cli=True)
    assert "midnight Pacific time" in advice and "kept" in advice
    assert not isinstance(caught.value, TransientError)


def test_quota_simulator_limits_per_window_and_per_day() -> None:
    with FakeGeminiServer(rpm_limit=2, window_s=0.4, daily_limit=3) as server:
        with GeminiCaptioner(TEST_API_KEY, base_url=server.base_url, timeout_s=5) as client:
            caption_custom(client)
            caption_custom(client)
            with pytest.raises(TransientError) as caught:
                caption_custom(client)
            assert caught.value.kind == "rate_limit"
            assert caught.value.retry_after is not None
            assert 0 < caught.value.retry_after <= 0.4
            time.sleep(caught.value.retry_after)
            caption_custom(client)
            with pytest.raises(QuotaExhaustedError):
                caption_custom(client)
        assert (server.accepted_count, server.rate_limited_count, server.daily_limited_count) == (3, 1, 1)


# --- other HTTP errors ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_are_transient(
    captioner: GeminiCaptioner, server: FakeGeminiServer, code: int
) -> None:
    server.queue_replies(Reply.server_error(code))
    with pytest.raises(TransientError) as caught:
        caption_custom(captioner)
    assert caught.value.kind == "server"
    assert str(code) in str(caught.value)
    assert "<html" not in str(caught.value)
    assert len(server.generate_requests) == 1


def test_invalid_key_is_an_authentication_error(server: FakeGeminiServer) -> None:
    with GeminiCaptioner("bad-key", base_url=server.base_url) as captioner:
        with pytest.raises(AuthenticationError) as caught:
            caption_custom(captioner)
    assert "refused the API key" in str(caught.value)
    assert "https://aistudio.google.com/apikey" in str(caught.value)
    assert "bad-key" not in str(caught.value)


@pytest.mark.parametrize("code", [401, 403])
def test_401_and_403_are_authentication_errors(
    captioner: GeminiCaptioner, server: FakeGeminiServer, code: int
) -> None:
    server.queue_replies(Reply.error(code, "PERMISSION_DENIED", "Permission denied."))
    with pytest.raises(AuthenticationError):
        caption_custom(captioner)


def test_unknown_model_names_it_and_suggests_model_option(server: FakeGeminiServer) -> None:
    with GeminiCaptioner(TEST_API_KEY, "gemini-0.1-retired", base_url=server.base_url) as c:
        with pytest.raises(CaptionError) as caught:
            caption_custom(c)
    assert type(caught.value) is CaptionError
    assert "gemini-0.1-retired" in str(caught.value)
    assert "--model" in str(caught.value)


def test_a_400_about_the_image_fails_only_that_image(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(
        Reply.error(400, "INVALID_ARGUMENT", "Unable to process input image. Please retry.")
    )
    with pytest.raises(ImageRejectedError, match="Unable to process input image"):
        caption_custom(captioner)


def test_other_client_errors_carry_the_server_message(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.error(413, "FAILED_PRECONDITION", "Request payload too large."))
    with pytest.raises(CaptionError, match="payload too large") as caught:
        caption_custom(captioner)
    assert not isinstance(caught.value, (TransientError, AuthenticationError, ImageRejectedError))


# --- transport failures -----------------------------------------------------------------------


def test_hanging_server_times_out_quickly(server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.hang(5.0))
    with GeminiCaptioner(TEST_API_KEY, base_url=server.base_url, timeout_s=0.5) as c:
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            caption_custom(c)
        elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert elapsed < 3.0


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_closed_port_is_a_connection_error() -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    with GeminiCaptioner(TEST_API_KEY, base_url=base_url, timeout_s=2) as captioner:
        with pytest.raises(TransientError) as caught:
            caption_custom(captioner)
    assert caught.value.kind == "connection"


def test_dropped_connection_is_a_connection_error(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.disconnected())
    with pytest.raises(TransientError) as caught:
        caption_custom(captioner)
    assert caught.value.kind == "connection"


def test_list_models_errors_are_mapped_too() -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    with GeminiCaptioner(TEST_API_KEY, base_url=base_url, timeout_s=2) as captioner:
        with pytest.raises(TransientError):
            captioner.list_models()


# --- refused images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.blocked("SAFETY"), "Gemini blocked this image (SAFETY)"),
        (Reply.blocked("PROHIBITED_CONTENT"), "Gemini blocked this image (PROHIBITED_CONTENT)"),
        (Reply.finish_reason("SAFETY"), "Gemini blocked this image (SAFETY)"),
        (Reply.finish_reason("RECITATION", text="lecture"), "Gemini blocked this image (RECITATION)"),
        (Reply.finish_reason("IMAGE_SAFETY"), "Gemini blocked this image (IMAGE_SAFETY)"),
        (Reply.empty(), "Gemini returned an empty answer"),
        (Reply.caption("   "), "Gemini returned an empty answer"),
        (Reply.caption('"photo of ide_main_hall."'), "Gemini returned an empty answer"),
        (Reply.finish_reason("OTHER"), "Gemini returned an empty answer (finish reason OTHER)"),
    ],
)
def test_refused_or_empty_answers_reject_the_image(
    captioner: GeminiCaptioner, server: FakeGeminiServer, reply: Reply, message: str
) -> None:
    server.queue_replies(reply)
    with pytest.raises(ImageRejectedError) as caught:
        caption_custom(captioner)
    assert str(caught.value).startswith(message)


def test_request_timeout_408_is_transient(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.error(408, "DEADLINE_EXCEEDED", "Request timed out."))
    with pytest.raises(TransientError) as caught:
        caption_custom(captioner)
    assert caught.value.kind == "server"


def test_stopped_server_answers_nothing_on_kept_alive_connections() -> None:
    server = FakeGeminiServer().start()
    with GeminiCaptioner(TEST_API_KEY, base_url=server.base_url, timeout_s=2) as captioner:
        caption_custom(captioner)  # opens a kept-alive connection
        server.stop()
        with pytest.raises(TransientError) as caught:
            caption_custom(captioner)
    assert caught.value.kind == "connection"
    assert len(server.generate_requests) == 1


def test_server_stop_is_not_delayed_by_a_hanging_reply() -> None:
    server = FakeGeminiServer().start()
    thread_name = f"fake-gemini-server-{server.base_url.rsplit(':', 1)[1]}"
    server.queue_replies(Reply.hang(30.0))
    with GeminiCaptioner(TEST_API_KEY, base_url=server.base_url, timeout_s=0.3) as captioner:
        with pytest.raises(TransientError):
            caption_custom(captioner)
    assert any(t.name == thread_name and t.is_alive() for t in threading.enumerate())
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    assert not any(t.name == thread_name and t.is_alive() for t in threading.enumerate())


# --- bad answers: sanitised, bounded, or failing only their image ------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # "\ud800" in the JSON body: the SDK hands over a lone surrogate.
        (Reply.caption("lecture hall \ud800 seating"), "lecture hall \ufffd seating"),
        (Reply.caption("lecture\x00 hall\x1b[2J\x1b[31m, seating\x1b[0m\x07"),
         "lecture hall, seating"),
        (Reply.caption_bytes(b"caf\xe9 \xff hall"), "caf\ufffd \ufffd hall"),
    ],
)
def test_an_answer_is_sanitised_before_it_is_returned(
    captioner: GeminiCaptioner, server: FakeGeminiServer, reply: Reply, expected: str
) -> None:
    server.queue_replies(reply)
    result = caption_custom(captioner)
    assert result.body == expected
    result.body.encode("utf-8")


def test_structured_fields_are_sanitised_too(captioner: GeminiCaptioner,
                                             server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.json({"room_type": "atrium\udfff", "key_objects": ["\x1b]0;x\x07sofa"],
                                     "lighting": "day\x00light", "contextual_details": "busy"}))
    result = captioner.caption(make_jpeg(), SPACE, trigger=TRIGGER, prefix=PREFIX)
    assert result.body == "atrium\ufffd, sofa, daylight, busy"


def test_an_answer_of_controls_only_fails_the_image(captioner: GeminiCaptioner,
                                                   server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.caption("\x00\x1b[0m\x07"))
    with pytest.raises(ImageRejectedError, match="empty answer"):
        caption_custom(captioner)


def test_a_ten_megabyte_answer_fails_the_image_quickly(captioner: GeminiCaptioner,
                                                       server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.caption("a chair, " * 1_200_000))  # 10.8 MB
    started = time.monotonic()
    with pytest.raises(ImageRejectedError, match=r"too long to be a caption \(10,800,000 "
                                                 r"characters; at most 4,000 are kept\)"):
        caption_custom(captioner)
    assert time.monotonic() - started < 10  # read once, never cleaned


def test_a_long_answer_is_cut_to_the_profile_limit(captioner: GeminiCaptioner,
                                                   server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.caption("a chair, " * 2_000))  # 18,000 characters
    result = caption_custom(captioner)
    assert 3_900 < len(result.body) <= CUSTOM.limits.body == 4_000
    assert result.body.startswith("a chair, a chair") and result.body.endswith("a chair")


def test_server_error_text_reaches_no_terminal_as_escape_sequences(
    captioner: GeminiCaptioner, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.error(418, "TEAPOT\x1b[31m", "I am\x00 a \x1b]0;pwned\x07teapot"))
    with pytest.raises(CaptionError) as caught:
        caption_custom(captioner)
    assert str(caught.value) == "Gemini refused the request (418 TEAPOT: I am a teapot)."
