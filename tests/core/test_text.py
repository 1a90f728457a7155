"""The words the command line and the window share: progress, waits, stops, empty folders."""

from __future__ import annotations

import pytest

from loracap.core.errors import (
    ApiKeyMissingError,
    AuthenticationError,
    CaptionError,
    LoraCapError,
    NetworkError,
    QuotaExhaustedError,
    stop_advice,
)
from loracap.core.text import no_usable_images_message, progress_text, waiting_text


def test_progress_while_waiting_for_the_rate_limit_reads_like_the_issue() -> None:
    assert progress_text(10, 0, 30, 118, 41.3, "rate_limit") == (
        "Captioning 10 of 30 · waiting for the rate limit · next request in 42 s · "
        "about 1 min 58 s left")


@pytest.mark.parametrize(("reason", "cause"), [
    ("server", "a server error"), ("timeout", "a timeout"),
    ("connection", "a connection problem"),
])
def test_a_retry_says_what_it_waits_after(reason: str, cause: str) -> None:
    assert waiting_text(11.2, reason) == f"retrying in 12 s after {cause}"
    assert progress_text(3, 1, 8, 30, 11.2, reason) == (
        f"Captioning 4 of 8 · 1 failed · retrying in 12 s after {cause} · about 30 s left")


def test_no_wait_no_words() -> None:
    assert waiting_text(5.0, "") == ""
    assert progress_text(2, 0, 5, 20, 0.0, "") == "Captioning 2 of 5 · about 20 s left"
    # A finished batch shows no wait and no estimate.
    assert progress_text(5, 0, 5, 0, 3.0, "rate_limit") == "Captioned 5 of 5"


def test_a_countdown_never_reads_0_s_while_waiting() -> None:
    assert waiting_text(0.2, "rate_limit") == "waiting for the rate limit · next request in 1 s"
    assert progress_text(4, 0, 6, 0.3) == "Captioning 4 of 6 · about 1 s left"


def test_stop_advice_for_the_command_line() -> None:
    key = ("Set a valid Gemini API key with `loracap key set` (or in the GEMINI_API_KEY "
           "environment variable), then run the same command again.")
    assert stop_advice(AuthenticationError("refused"), for_cli=True) == key
    assert stop_advice(ApiKeyMissingError("none"), for_cli=True) == key
    assert stop_advice(QuotaExhaustedError("used up"), for_cli=True) == (
        "Finished captions are kept; run the same command again after midnight Pacific time, "
        "when the daily quota resets, or use a key with a paid plan.")
    assert stop_advice(NetworkError("offline"), for_cli=True) == (
        "Check the internet connection, then run the same command again; finished captions "
        "are kept.")
    assert "--model" in stop_advice(CaptionError("no such model"), for_cli=True)
    assert stop_advice(LoraCapError("odd"), for_cli=True) == (
        "Finished captions are kept; run the same command again to continue.")


def test_stop_advice_for_the_window_names_its_menus() -> None:
    assert stop_advice(AuthenticationError("refused"), for_cli=False) == (
        "Set a valid Gemini API key in File > Settings…, then choose Generate Captions again.")
    quota = stop_advice(QuotaExhaustedError("used up"), for_cli=False)
    assert "choose Generate Captions again after midnight Pacific time" in quota
    assert "loracap" not in quota and "command" not in quota
    assert stop_advice(NetworkError("offline"), for_cli=False).startswith(
        "Check the internet connection, then choose Generate Captions again")


def test_the_empty_folder_message_matches_the_new_project_dialog() -> None:
    assert no_usable_images_message(0, 0) == "No photos in this folder (JPEG, PNG, WebP or BMP)."
    assert no_usable_images_message(2, 2) == "No usable photos in this folder (2 invalid)."
