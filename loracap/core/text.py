"""Small formatting helpers shared by the command line and the window."""

from __future__ import annotations

import math


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


def progress_text(done: int, failed: int, total: int, eta_s: float,
                  wait_s: float = 0.0, wait_reason: str = "") -> str:
    """``"Captioning 12 of 32 · 1 failed · about 2 min 05 s left"``: 12 images finished (one of
    them failed) of 32. ``eta_s`` < 0 means not known yet. With a ``wait_reason`` (see
    :func:`waiting_text`) the wait comes before the estimate: ``"Captioning 10 of 30 · waiting
    for the rate limit · next request in 42 s · about 1 min 58 s left"``. Both are rounded up
    (:func:`countdown`), so the estimate never reads less than the wait it includes."""
    processed = done + failed
    if processed >= total:
        text = f"Captioned {done} of {total}"
    else:
        text = f"Captioning {processed} of {total}"
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
