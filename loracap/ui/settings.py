"""Per-user application settings, each declared once with its type and default.

Stored with ``QSettings`` (the platform's standard place). Project settings (trigger word,
profile, model) live in the project file instead; these are the user's preferences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QByteArray, QSettings

from loracap.core.defaults import DEFAULT_MODEL

#: How many entries File > Open Recent keeps.
MAX_RECENT = 10


@dataclass(frozen=True)
class _Setting:
    key: str
    type: type
    default: Any


WORKERS = _Setting("captioning/workers", int, 4)
RPM = _Setting("captioning/requests_per_minute", int, 10)
MAX_SIDE = _Setting("captioning/upload_max_side", int, 1536)
DEFAULT_MODEL_SETTING = _Setting("captioning/default_model", str, DEFAULT_MODEL)
RECENT = _Setting("projects/recent", list, [])
GEOMETRY = _Setting("window/geometry", QByteArray, QByteArray())
STATE = _Setting("window/state", QByteArray, QByteArray())
SPLITTER = _Setting("window/splitter", QByteArray, QByteArray())


class AppSettings:
    """Typed access to the user's settings. Pass one instance to the widgets that need it."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._q = qsettings if qsettings is not None else QSettings("LoRACap", "LoRACap")

    def _get(self, setting: _Setting) -> Any:
        value = self._q.value(setting.key, setting.default)
        if setting.type is list:
            if value is None:
                return []
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if setting.type is QByteArray:
            return value if isinstance(value, QByteArray) else QByteArray()
        try:
            return setting.type(value)
        except (TypeError, ValueError):
            return setting.default

    def _set(self, setting: _Setting, value: Any) -> None:
        self._q.setValue(setting.key, value)

    @property
    def workers(self) -> int:
        """Requests in flight at once (1–16)."""
        return max(1, min(16, int(self._get(WORKERS))))

    @workers.setter
    def workers(self, value: int) -> None:
        self._set(WORKERS, int(value))

    @property
    def rpm(self) -> int:
        """Requests per minute at most (1–1000); 10 fits the free tier."""
        return max(1, min(1000, int(self._get(RPM))))

    @rpm.setter
    def rpm(self, value: int) -> None:
        self._set(RPM, int(value))

    @property
    def max_side(self) -> int:
        """Long side, in pixels, of the images sent to the model (256–4096)."""
        return max(256, min(4096, int(self._get(MAX_SIDE))))

    @max_side.setter
    def max_side(self, value: int) -> None:
        self._set(MAX_SIDE, int(value))

    @property
    def default_model(self) -> str:
        """Model for new projects."""
        return str(self._get(DEFAULT_MODEL_SETTING)).strip() or DEFAULT_MODEL

    @default_model.setter
    def default_model(self, value: str) -> None:
        self._set(DEFAULT_MODEL_SETTING, value.strip())

    @property
    def recent_projects(self) -> list[Path]:
        """Recently opened project files, newest first."""
        return [Path(p) for p in self._get(RECENT)]

    def add_recent_project(self, path: Path) -> None:
        """Put ``path`` first in the recent list (kept to :data:`MAX_RECENT` entries)."""
        text = str(Path(path).absolute())
        items = [p for p in self._get(RECENT) if p != text]
        self._set(RECENT, [text, *items][:MAX_RECENT])

    def remove_recent_project(self, path: Path) -> None:
        """Drop ``path`` from the recent list (e.g. the file is gone)."""
        text = str(Path(path).absolute())
        self._set(RECENT, [p for p in self._get(RECENT) if p != text])

    def window_state(self) -> tuple[QByteArray, QByteArray, QByteArray]:
        """Saved ``(geometry, state, splitter)``; empty arrays when never saved."""
        return self._get(GEOMETRY), self._get(STATE), self._get(SPLITTER)

    def save_window_state(self, geometry: QByteArray, state: QByteArray,
                          splitter: QByteArray) -> None:
        """Remember the main window's geometry, dock state and splitter sizes."""
        self._set(GEOMETRY, geometry)
        self._set(STATE, state)
        self._set(SPLITTER, splitter)

    def sync(self) -> None:
        """Write pending changes to disk."""
        self._q.sync()
