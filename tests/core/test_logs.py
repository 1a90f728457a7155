"""The log file and the user folders (portable mode)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from loracap.core.logs import LOG_FILE_NAME, configure_logging, redact
from loracap.core.userdirs import PORTABLE_DATA, user_dirs

KEY = "AIza" + "x" * 35


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_log_file_keeps_tracebacks_but_never_the_key(tmp_path: Path, restore_logging,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "my-secret-gemini-key")
    path = configure_logging(tmp_path / "logs")
    assert path == tmp_path / "logs" / LOG_FILE_NAME
    log = logging.getLogger("loracap.test")
    try:
        raise RuntimeError(f"request with key {KEY} and my-secret-gemini-key failed")
    except RuntimeError:
        log.exception("Captioning failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text(encoding="utf-8")
    assert "Captioning failed" in text and "Traceback" in text and "RuntimeError" in text
    assert KEY not in text and "my-secret-gemini-key" not in text
    assert "[redacted]" in text


def test_unwritable_log_folder_is_not_fatal(tmp_path: Path, restore_logging) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert configure_logging(blocker / "logs") is None
    logging.getLogger("loracap.test").error("still works")


def test_redact_masks_google_keys() -> None:
    assert redact(f"key={KEY}&x=1") == "key=[redacted]&x=1"


def test_portable_marker_beside_the_executable(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORACAP_HOME", raising=False)
    exe = tmp_path / "LoRACap" / "loracap"
    exe.parent.mkdir()
    exe.write_text("")
    assert not user_dirs(exe).portable
    (exe.parent / "portable").write_text("")
    dirs = user_dirs(exe)
    assert dirs.portable and dirs.logs == exe.parent / PORTABLE_DATA / "logs"
    app_exe = tmp_path / "mac" / "LoRACap.app" / "Contents" / "MacOS" / "LoRACap"
    app_exe.parent.mkdir(parents=True)
    (tmp_path / "mac" / "portable").write_text("")
    assert user_dirs(app_exe).settings == tmp_path / "mac" / PORTABLE_DATA / "settings"


def test_loracap_home_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORACAP_HOME", str(tmp_path))
    dirs = user_dirs()
    assert (dirs.settings, dirs.logs, dirs.cache) == (
        tmp_path / "settings", tmp_path / "logs", tmp_path / "cache")
