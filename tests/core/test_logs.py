"""The log file and the user folders (portable mode)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from loracap.core.logs import LOG_FILE_NAME, add_secret, configure_logging, redact
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


def test_redact_masks_the_quoted_forms_of_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "first-half-of-key\nsecond-half-of-key"
    monkeypatch.setenv("GEMINI_API_KEY", key)
    messages = [
        f"Illegal header value {key.encode()!r}",  # h11's words for a key with a line break
        f"value={key!r}",
        f"json: {json.dumps(key)}",
        f"url: ?key={quote(key, safe='')}",
        "only the second-half-of-key of it",
        f"raw {key} in the middle",
    ]
    for message in messages:
        text = redact(message)
        assert "first-half-of-key" not in text and "second-half-of-key" not in text, text
        assert "[redacted]" in text
    assert redact(f"header {key.encode()!r}") == "header b'[redacted]'"
    assert redact("short words such as test stay") == "short words such as test stay"


def test_redact_masks_keys_given_to_add_secret() -> None:
    add_secret("keychain-secret-value")
    assert redact("a 'keychain-secret-value' b") == "a '[redacted]' b"


def test_a_record_that_is_not_utf8_is_written_escaped(tmp_path: Path, restore_logging) -> None:
    path = configure_logging(tmp_path / "logs")
    assert path is not None
    logging.getLogger("loracap.test").warning("No project file at %s", "/tmp/caf\udce9.loraproj")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "No project file at /tmp/caf\\udce9.loraproj" in path.read_text(encoding="utf-8")


def test_a_log_file_that_cannot_be_written_is_dropped_quietly(tmp_path, capsys) -> None:
    import logging

    from loracap.core.logs import QuietFileHandler, configure_logging

    path = configure_logging(tmp_path / "logs", stream=None)
    assert path is not None
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, QuietFileHandler)]

    class FullDisk:
        def write(self, _text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    handler.stream = FullDisk()  # type: ignore[assignment]
    QuietFileHandler._warned = False
    logging.getLogger("loracap.test").warning("first")
    logging.getLogger("loracap.test").warning("second")
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    assert err.count("cannot be written") == 1
    configure_logging(None)
