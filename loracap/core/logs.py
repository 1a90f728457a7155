"""The log file: errors with tracebacks, for a student to send to the workshop teacher.

``configure_logging`` writes ``loracap.log`` (rotated at 1 MB, three old files kept) in the user
log folder (:mod:`loracap.core.userdirs`). API keys never reach the file: a filter masks the
keys in the environment and those read from or saved in the keychain (:func:`add_secret`), also
in the forms an error message quotes them (``repr``, a ``b'…'`` bytes literal, JSON or URL
escapes, each part of a key broken by whitespace), and anything shaped like a Google API key
(``AIza`` + 35 characters). Text that is not valid UTF-8 (a file name) is written with
backslash escapes instead of failing the record.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

LOG_FILE_NAME = "loracap.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"

#: Google API keys: "AIza" followed by 35 URL-safe characters.
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
#: Shorter strings are not masked: they would mask ordinary words (and no key is that short).
_MIN_SECRET = 8
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Mask ``value`` (and its quoted forms, see :func:`redact`) in every log record from now on.

    :mod:`loracap.core.keys` adds each key it reads from or saves in the keychain; keys in the
    environment variables are masked without being added.
    """
    if value.strip():
        _secrets.add(value)


def _quoted_forms(value: str) -> set[str]:
    """``value`` as messages may quote it: as it is, stripped, in a ``str`` or ``bytes`` repr
    (``\\n`` for a line break, as in "Illegal header value b'…'"), JSON- and URL-escaped, and
    each whitespace-separated part (a key broken by a bad paste); the short ones left out."""
    stripped = value.strip()
    forms = {value, stripped, repr(value)[1:-1], repr(stripped)[1:-1],
             value.encode("unicode_escape").decode("ascii"),
             repr(value.encode("utf-8", "surrogateescape"))[2:-1],
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             quote(value, safe=""), quote(stripped, safe="")}
    forms.update(value.split())
    return {form for form in forms if len(form) >= _MIN_SECRET}


def redact(text: str) -> str:
    """``text`` with API keys replaced by ``[redacted]``: the values of ``GEMINI_API_KEY`` and
    ``GOOGLE_API_KEY``, the keys given to :func:`add_secret`, each also in its quoted forms, and
    any Google API key (``AIza`` + 35 characters)."""
    secrets = set(_secrets)
    secrets.update(os.environ.get(name, "") for name in _KEY_VARIABLES)
    forms: set[str] = set()
    for secret in secrets:
        if len(secret.strip()) >= _MIN_SECRET:
            forms |= _quoted_forms(secret)
    for form in sorted(forms, key=len, reverse=True):  # a whole key before its parts
        text = text.replace(form, "[redacted]")
    return _GOOGLE_KEY.sub("[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message and traceback) never contains an API key."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _no_traceback(record: logging.LogRecord) -> bool:
    return not record.exc_info


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """The log file's handler: a record that cannot be written (a full disk, a log folder gone
    read-only) is dropped instead of printing logging's "--- Logging error ---" traceback on
    standard error, which would bury the one line the user is shown about that very disk. One
    notice goes to the stream's log (the console) the first time."""

    _warned = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not QuietFileHandler._warned:
            QuietFileHandler._warned = True
            sys.stderr.write(f"loracap: the log file {self.baseFilename} cannot be written; "
                             "logging to it stops for this run.\n")
        try:
            self.close()
        except OSError:
            pass


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
        handler = QuietFileHandler(
            path, maxBytes=1_000_000, backupCount=3, encoding="utf-8", delay=True,
            errors="backslashreplace")
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
