"""Small formatting helpers shared by the command line and the window."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any


def human_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"`` for a number of seconds."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def human_size(size: int) -> str:
    """A file size in decimal units: ``"512 bytes"``, ``"1.5 MB"``."""
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


#: What a retry waits after, by ``TransientError.kind`` (see :mod:`loracap.core.errors`).
_RETRY_CAUSES = {
    "server": "a server error",
    "timeout": "a timeout",
    "connection": "a connection problem",
}


def countdown(seconds: float) -> str:
    """A wait as the user reads it, rounded up to whole seconds: ``"42 s"``, ``"1 min 05 s"``.

    Rounded up so a countdown never shows "0 s" while something is still waiting.
    """
    return human_duration(math.ceil(max(0.0, seconds)))


def waiting_text(seconds: float, reason: str) -> str:
    """What holds a captioning batch back, or ``""`` when nothing does (``reason`` empty).

    ``reason`` is the runner's (``CaptionRunner.waiting``): ``"rate_limit"`` gives
    ``"waiting for the rate limit · next request in 42 s"``; ``"server"``, ``"timeout"`` and
    ``"connection"`` give ``"retrying in 12 s after a server error"`` (a timeout, a connection
    problem).
    """
    if not reason:
        return ""
    if reason == "rate_limit":
        return f"waiting for the rate limit · next request in {countdown(seconds)}"
    cause = _RETRY_CAUSES.get(reason)
    after = f" after {cause}" if cause else ""
    return f"retrying in {countdown(seconds)}{after}"


#: How :func:`progress_text` names a batch under way and done: captions (the default), or
#: question-answer pairs.
CAPTION_VERBS = ("Captioning", "Captioned")
QA_VERBS = ("Asking about", "Asked about")


def progress_text(done: int, failed: int, total: int, eta_s: float,
                  wait_s: float = 0.0, wait_reason: str = "",
                  verbs: tuple[str, str] = CAPTION_VERBS) -> str:
    """``"Captioning 12 of 32 · 1 failed · about 2 min 05 s left"``: 12 images finished (one of
    them failed) of 32. ``eta_s`` < 0 means not known yet. With a ``wait_reason`` (see
    :func:`waiting_text`) the wait comes before the estimate: ``"Captioning 10 of 30 · waiting
    for the rate limit · next request in 42 s · about 1 min 58 s left"``. Both are rounded up
    (:func:`countdown`), so the estimate never reads less than the wait it includes.
    ``verbs`` name the batch under way and done (:data:`CAPTION_VERBS`, :data:`QA_VERBS`)."""
    processed = done + failed
    if processed >= total:
        text = f"{verbs[1]} {done} of {total}"
    else:
        text = f"{verbs[0]} {processed} of {total}"
    if failed:
        text += f" · {failed} failed"
    waiting = waiting_text(wait_s, wait_reason) if processed < total else ""
    if waiting:
        text += f" · {waiting}"
    if eta_s >= 0 and processed < total:
        text += f" · about {countdown(eta_s)} left"
    return text


def no_usable_images_message(files: int, invalid: int) -> str:
    """Why a folder cannot become a project: ``files`` image files found, ``invalid`` of them
    unusable (all of them, or there would be no message). The words the New Project dialog and
    ``loracap new``/``run`` share: "No photos in this folder (JPEG, PNG, WebP or BMP)." or
    "No usable photos in this folder (2 invalid)."."""
    if files == 0:
        return "No photos in this folder (JPEG, PNG, WebP or BMP)."
    return f"No usable photos in this folder ({invalid} invalid)."


# ---------------------------------------------------------------- machine-readable output

#: What a field of a tab-separated output line escapes: the backslash, control characters
#: (C0, DEL, C1 -- tab, line feed and carriage return among them), the line and paragraph
#: separators (``str.splitlines`` splits on them) and lone surrogates (file names that are not
#: valid UTF-8, read with ``surrogateescape``).
_TSV_SPECIAL = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TSV_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_TSV_UNNAMED = {escaped: char for char, escaped in _TSV_NAMED.items()}
_TSV_ESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|(.)|$)", re.DOTALL)

#: What :func:`json_text` writes as ``\uXXXX`` although JSON allows it raw: DEL, C1 controls,
#: the line and paragraph separators (a JSON Lines reader using ``str.splitlines`` would split
#: on them) and lone surrogates (not encodable as UTF-8).
_JSON_SPECIAL = re.compile(r"[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _TSV_NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def tsv_field(text: str) -> str:
    """``text`` as one field of a tab-separated output line (``path<TAB>caption``).

    The rule, the same for every field of every such line LoRACap prints: a backslash becomes
    ``\\\\``, tab ``\\t``, line feed ``\\n``, carriage return ``\\r``; any other control
    character (U+0000-U+001F, U+007F-U+009F) becomes ``\\xHH``, the line and paragraph
    separators U+2028/U+2029 and lone surrogates (a file name that is not valid UTF-8)
    ``\\uHHHH`` (lower-case hex). Everything else is written as it is, so a field never holds a
    tab or a line break and :func:`tsv_unescape` gives the exact text back. The escapes are
    those of PostgreSQL's ``COPY`` text format, plus ``\\x``/``\\u`` as in Python literals.
    """
    return _TSV_SPECIAL.sub(_escape_char, text)


def tsv_unescape(field: str) -> str:
    """The text :func:`tsv_field` escaped as ``field``.

    Raises :class:`ValueError` for a backslash that starts no escape of that rule.
    """

    def unescape(match: re.Match[str]) -> str:
        byte, unit, other = match.groups()
        if byte is not None or unit is not None:
            return chr(int(byte or unit, 16))
        char = _TSV_UNNAMED.get(f"\\{other}") if other is not None else None
        if char is None:
            raise ValueError(f"Not an escape of a tab-separated field: {match.group()!r}")
        return char

    return _TSV_ESCAPE.sub(unescape, field)


def json_text(data: Any, *, indent: int | None = None) -> str:
    """``data`` as JSON text for standard output (no trailing line feed).

    Non-ASCII text stays readable (``ensure_ascii=False``); control characters are escaped as
    JSON requires, and DEL, C1 controls, U+2028/U+2029 and lone surrogates are written as
    ``\\uXXXX`` too, so the text is valid UTF-8 and one JSON value per line (without
    ``indent``) stays one line for every reader.
    """
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _JSON_SPECIAL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def path_labels(paths: Sequence[str]) -> list[str]:
    """Labels for images stored at ``paths`` (POSIX, relative to the project folder): the file
    name, or, where several images share a file name (``a/IMG_2.jpg`` and ``b/IMG_2.jpg``; names
    compared case-insensitively, as macOS and Windows do), the shortest end of the path that
    tells them apart (``a/IMG_2.jpg``, ``b/IMG_2.jpg``). See :func:`path_label_changes`."""
    changes = path_label_changes(paths)
    return [changes.get(index) or path[path.rfind("/") + 1:]
            for index, path in enumerate(paths)]


def path_label_changes(paths: Sequence[str]) -> dict[int, str]:
    """The labels of :func:`path_labels` that are not the file name, by index into ``paths``:
    few in most projects, so a million paths need no million labels (issue 15).

    Two passes over the names, keeping no object per path: the first counts the names by a
    part of their hash in a table of bytes (:data:`_NAME_BUCKETS`), the second groups by name
    only the paths whose part is shared (the names shared by several paths, and a few others),
    which are then labelled."""
    def name(path: str) -> str:
        return path[path.rfind("/") + 1:].casefold()

    mask = _NAME_BUCKETS - 1
    seen = bytearray(_NAME_BUCKETS)  # 0, 1 or 2: no name, one, more than one
    for path in paths:
        bucket = hash(name(path)) & mask
        if seen[bucket] < 2:
            seen[bucket] += 1
    groups: dict[str, list[int]] = {}
    for index, path in enumerate(paths):
        key = name(path)
        if seen[hash(key) & mask] == 2:
            groups.setdefault(key, []).append(index)
    del seen
    changes: dict[int, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        parts = {i: paths[i].split("/") for i in members}
        depth = 1
        longest = max(len(components) for components in parts.values())
        while depth < longest:
            depth += 1
            ends = ["/".join(parts[i][-depth:]).casefold() for i in members]
            if len(set(ends)) == len(ends):
                break
        for i in members:
            changes[i] = "/".join(parts[i][-depth:])
    return changes


#: Buckets of :func:`path_label_changes`' first pass (a power of two): 8 MB, so that few of a
#: million names share a bucket with another name.
_NAME_BUCKETS = 1 << 23
