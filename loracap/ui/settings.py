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
from loracap.core.errors import InputError
from loracap.core.tags import parse_tags_txt
from loracap.core.userdirs import user_dirs

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
RECENT_TAGS = _Setting("tags/recent", list, [])
TAG_LIST_SOURCE = _Setting("tags/list_source", str, "")

#: File name of the user's tag list (a normalised copy of the file they imported).
TAG_LIST_FILE = "tag_list.txt"


class AppSettings:
    """Typed access to the user's settings. Pass one instance to the widgets that need it."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._q = qsettings if qsettings is not None else QSettings("LoRACap", "LoRACap")
        self._user_tags: tuple[float, list[str]] | None = None

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

    @property
    def recent_tags(self) -> list[str]:
        """Tags the user added recently, newest first (for one-click reuse)."""
        return list(self._get(RECENT_TAGS))

    @recent_tags.setter
    def recent_tags(self, tags: list[str]) -> None:
        self._set(RECENT_TAGS, list(tags))

    @property
    def tag_list_file(self) -> Path:
        """Where the imported tag list is kept: beside an INI settings file, else in the user
        settings folder (:func:`loracap.core.userdirs.user_dirs`)."""
        if self._q.format() == QSettings.Format.IniFormat and self._q.fileName():
            return Path(self._q.fileName()).parent / TAG_LIST_FILE
        return user_dirs().settings / TAG_LIST_FILE

    @property
    def tag_list_source(self) -> str:
        """The file name the tag list was imported from ("" when none)."""
        return str(self._get(TAG_LIST_SOURCE))

    def user_tags(self) -> list[str]:
        """The imported tag list, in file order (re-read only when the file changed)."""
        path = self.tag_list_file
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return []
        if self._user_tags is None or self._user_tags[0] != mtime:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return []
            self._user_tags = (mtime, parse_tags_txt(text))
        return list(self._user_tags[1])

    def import_tag_list(self, source: Path) -> int:
        """Use the tags of ``source`` (one per line, or a CSV such as a Danbooru tag list whose
        first column is the tag) for autocomplete; a normalised copy is kept, so the original
        may move. Returns the number of tags. Raises :class:`InputError` when the file cannot
        be read or holds no tags."""
        source = Path(source)
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read {source.name}: {exc.strerror or exc}.") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{source.name} is not UTF-8 text; save it as UTF-8 and try "
                             "again.") from exc
        tags = parse_tags_txt(text)
        if not tags:
            raise InputError(f"{source.name} holds no tags (one tag per line, or a CSV with "
                             "the tag in the first column).")
        target = self.tag_list_file
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_text("".join(f"{tag}\n" for tag in tags), encoding="utf-8")
            partial.replace(target)
        except OSError as exc:
            raise InputError(f"Cannot store the tag list in {target.parent}: "
                             f"{exc.strerror or exc}.") from exc
        self._set(TAG_LIST_SOURCE, source.name)
        self._user_tags = None
        return len(tags)

    def clear_tag_list(self) -> None:
        """Stop using the imported tag list."""
        self.tag_list_file.unlink(missing_ok=True)
        self._set(TAG_LIST_SOURCE, "")
        self._user_tags = None

    def sync(self) -> None:
        """Write pending changes to disk."""
        self._q.sync()
