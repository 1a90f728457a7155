"""The log file: errors with tracebacks, for a student to send to the workshop teacher.

``configure_logging`` writes ``loracap.log`` (rotated at 1 MB, three old files kept) in the user
log folder (:mod:`loracap.core.userdirs`). API keys never reach the file: a filter masks the
current key and anything shaped like a Google API key (``AIza`` + 35 characters).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path
from typing import TextIO

LOG_FILE_NAME = "loracap.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"

#: Google API keys: "AIza" followed by 35 URL-safe characters.
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def redact(text: str) -> str:
    """``text`` with API keys replaced by ``[redacted]``."""
    text = _GOOGLE_KEY.sub("[redacted]", text)
    for name in _KEY_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 8:
            text = text.replace(value, "[redacted]")
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message and traceback) never contains an API key."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _no_traceback(record: logging.LogRecord) -> bool:
    return not record.exc_info


def configure_logging(log_dir: Path | None, *, level: int = logging.WARNING,
                      stream: TextIO | None = None,
                      stream_tracebacks: bool = False) -> Path | None:
    """Log to ``log_dir/loracap.log`` (INFO and up) and to ``stream`` at ``level``.

    Records that carry a traceback go to the file only, unless ``stream_tracebacks``: the
    program shows the user one plain line of its own instead.

    Returns the log file's path, or None when ``log_dir`` is None or cannot be written (logging
    then goes to ``stream`` only; a read-only home folder must not stop the program).
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_loracap", False):
            root.removeHandler(handler)
            handler.close()
    if stream is not None:
        console = logging.StreamHandler(stream)
        console.setLevel(level)
        console.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
        if not stream_tracebacks:
            console.addFilter(_no_traceback)
        console._loracap = True  # type: ignore[attr-defined]
        root.addHandler(console)
    if log_dir is None:
        return None
    path = Path(log_dir) / LOG_FILE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=1_000_000, backupCount=3, encoding="utf-8", delay=True)
    except OSError:
        logging.getLogger(__name__).warning("Cannot write the log file in %s", log_dir)
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(RedactingFormatter(_FORMAT))
    handler._loracap = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for noisy in ("httpx", "httpx2", "httpcore", "google_genai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # one line per request otherwise
    return path
