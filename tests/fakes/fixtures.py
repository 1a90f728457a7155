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
