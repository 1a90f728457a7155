"""Small formatting helpers shared by the command line and the window."""

from __future__ import annotations


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


def progress_text(done: int, failed: int, total: int, eta_s: float) -> str:
    """``"Captioning 12 of 32 · 1 failed · about 2 min 05 s left"``: 12 images finished (one of
    them failed) of 32. ``eta_s`` < 0 means not known yet."""
    processed = done + failed
    if processed >= total:
        text = f"Captioned {done} of {total}"
    else:
        text = f"Captioning {processed} of {total}"
    if failed:
        text += f" · {failed} failed"
    if eta_s >= 0 and processed < total:
        text += f" · about {human_duration(eta_s)} left"
    return text
