"""Shared test setup.

Qt runs offscreen and no test ever touches the real OS keychain: keyring is pointed at
``tests.fakes.memory_keyring.MemoryKeyring`` through its documented environment variable
before anything imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["PYTHON_KEYRING_BACKEND"] = "tests.fakes.memory_keyring.MemoryKeyring"
# Settings, logs and caches of the code under test go to a throw-away folder, never the user's.
os.environ["LORACAP_HOME"] = tempfile.mkdtemp(prefix="loracap-test-home-")
# Every backend's key and server address of the machine running the tests is ignored.
for _name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "OPENAI_API_KEY",
              "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
              "ANTHROPIC_AUTH_TOKEN"):
    os.environ.pop(_name, None)

# Imported after the environment is set up above, so nothing sees the real keychain.
from tests.fakes.fixtures import gemini_server, no_keychain, server  # noqa: E402, F401


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files whose pixels an export decodes (``imaging.pixel_problem``,
    which the export's writer looks up at each call), in any order."""
    from loracap.core import imaging

    seen: list[str] = []
    real = imaging.pixel_problem

    def counted(path: Path) -> str:
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(imaging, "pixel_problem", counted)
    return seen
