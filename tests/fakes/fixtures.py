"""Pytest fixtures around the fake Gemini server; tests/conftest.py imports them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.gemini_server import FakeGeminiServer

TEST_API_KEY = "test-key"


@pytest.fixture
def gemini_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGeminiServer]:
    """A started :class:`FakeGeminiServer`; ``GOOGLE_GEMINI_BASE_URL`` points at it and
    ``GEMINI_API_KEY`` is ``"test-key"`` for the test's duration. Stopped afterwards."""
    with FakeGeminiServer() as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)
        yield server


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    """A started :class:`FakeGeminiServer` that tests point a client at explicitly (no
    environment changes). Stopped afterwards."""
    with FakeGeminiServer() as fake:
        yield fake


@pytest.fixture
def no_keychain() -> Iterator[None]:
    """keyring's "fail" backend, as on a machine without an OS keychain; restored afterwards."""
    import keyring
    import keyring.backends.fail

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)
