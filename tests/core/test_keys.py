"""API key lookup: environment precedence, the OS keychain (in-memory in tests), messages."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import keyring.backends.fail
import keyring.errors
import pytest

from loracap.core.errors import ApiKeyMissingError, InputError, LoraCapError
from loracap.core.keys import (
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    ApiKey,
    ApiKeyFormatError,
    check_api_key,
    delete_api_key,
    find_api_key,
    keychain_available,
    store_api_key,
)
from tests.fakes.memory_keyring import MemoryKeyring


@pytest.fixture(autouse=True)
def clean_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    MemoryKeyring.store.clear()
    yield
    MemoryKeyring.store.clear()


def test_tests_use_the_memory_keyring() -> None:
    assert isinstance(keyring.get_keyring(), MemoryKeyring)
    assert keychain_available()


def test_google_api_key_wins_over_gemini_api_key_and_keychain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "google-value")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-value")
    store_api_key("keychain-value")
    assert find_api_key() == ApiKey("google-value", "GOOGLE_API_KEY")


def test_gemini_api_key_wins_over_keychain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "  gemini-value\n")
    store_api_key("keychain-value")
    assert find_api_key() == ApiKey("gemini-value", "GEMINI_API_KEY")


def test_blank_environment_values_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "   ")
    monkeypatch.setenv("GEMINI_API_KEY", "")
    store_api_key("keychain-value")
    assert find_api_key() == ApiKey("keychain-value", "OS keychain")


def test_store_then_find_then_delete() -> None:
    store_api_key("  stored-value  ")
    assert MemoryKeyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] == "stored-value"
    assert find_api_key() == ApiKey("stored-value", "OS keychain")
    assert delete_api_key() is True
    assert delete_api_key() is False
    with pytest.raises(ApiKeyMissingError):
        find_api_key()


def test_store_refuses_a_blank_key() -> None:
    with pytest.raises(InputError, match="empty"):
        store_api_key("  ")
    assert MemoryKeyring.store == {}


def test_missing_key_message_says_where_to_get_and_put_one() -> None:
    with pytest.raises(ApiKeyMissingError) as caught:
        find_api_key()
    message = str(caught.value)
    assert "Google AI Studio" in message
    assert "https://aistudio.google.com/apikey" in message
    assert "loracap key set" in message
    assert "GEMINI_API_KEY" in message
    assert caught.value.exit_code == 3


def test_repr_and_str_hide_the_value() -> None:
    key = ApiKey("AIzaSecretValue123", "GEMINI_API_KEY")
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "AIzaSecretValue123" not in text
        assert "GEMINI_API_KEY" in text


@pytest.mark.usefixtures("no_keychain")
def test_missing_key_without_keychain_points_to_the_environment_variable() -> None:
    assert not keychain_available()
    with pytest.raises(ApiKeyMissingError) as caught:
        find_api_key()
    message = str(caught.value)
    assert "keychain is not available" in message
    assert "GEMINI_API_KEY" in message
    assert "aistudio.google.com/apikey" in message
    assert "loracap key set" not in message


@pytest.mark.usefixtures("no_keychain")
def test_environment_still_works_without_keychain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "env-value")
    assert find_api_key() == ApiKey("env-value", "GEMINI_API_KEY")


@pytest.mark.usefixtures("no_keychain")
def test_store_and_delete_without_keychain_raise_a_clear_error() -> None:
    with pytest.raises(LoraCapError, match="keychain is not available.*GEMINI_API_KEY"):
        store_api_key("value")
    with pytest.raises(LoraCapError, match="keychain is not available"):
        delete_api_key()


class _BrokenKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("refused")


def test_keychain_errors_become_clear_messages() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(_BrokenKeyring())
    try:
        with pytest.raises(ApiKeyMissingError, match="keychain is not available"):
            find_api_key()
        with pytest.raises(LoraCapError, match="Cannot save the API key"):
            store_api_key("value")
    finally:
        keyring.set_keyring(previous)


@pytest.mark.parametrize(("value", "problem"), [
    ("first-half\nsecond-half", "a line break"),
    ("first-half\r\nsecond-half", "a line break"),
    ("first-half\u2028second-half", "a line break"),
    ("first-half second-half", "a space"),
    ("first-half\tsecond-half", "a space"),
    ("first-half\x1bsecond-half", "a control character"),
    ("first-half\u00e9second-half", "a character that is not plain ASCII"),
])
def test_a_value_that_cannot_be_a_key_is_refused_wherever_it_comes_from(
        monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    with pytest.raises(ApiKeyFormatError) as stored:
        store_api_key(value)
    assert MemoryKeyring.store == {}
    monkeypatch.setenv("GEMINI_API_KEY", value)
    with pytest.raises(ApiKeyFormatError) as from_env:
        find_api_key()
    monkeypatch.delenv("GEMINI_API_KEY")
    MemoryKeyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] = value  # saved by an older version
    with pytest.raises(ApiKeyFormatError) as from_keychain:
        find_api_key()
    assert str(stored.value).startswith(f"This API key contains {problem}, ")
    assert "nothing was stored" in str(stored.value)
    assert str(from_env.value).startswith(f"The Gemini API key in GEMINI_API_KEY contains {problem}")
    assert str(from_keychain.value).startswith(
        f"The Gemini API key saved in the OS keychain contains {problem}")
    for error in (stored.value, from_env.value, from_keychain.value):
        assert error.exit_code == 3 and isinstance(error, ApiKeyMissingError)
        assert "first-half" not in str(error) and "aistudio.google.com/apikey" in str(error)


def test_surrounding_whitespace_of_a_paste_is_removed_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_api_key(" \tAIza-key_0123456789~!\r\n") == "AIza-key_0123456789~!"
    store_api_key("\n  AIza-stored-key \r\n")
    assert MemoryKeyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] == "AIza-stored-key"
    MemoryKeyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] = "AIza-old-key\n"
    assert find_api_key() == ApiKey("AIza-old-key", "OS keychain")


def test_the_keychain_key_is_masked_in_logs() -> None:
    from loracap.core.logs import redact

    MemoryKeyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] = "keychain-only-secret"
    assert find_api_key().value == "keychain-only-secret"
    assert redact("header keychain-only-secret sent") == "header [redacted] sent"
