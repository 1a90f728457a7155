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


#: Requests at once and per minute; 0 = automatic (the backend's own pace, see
#: :func:`loracap.core.backends.registry.batch_defaults`). Kept under new keys: the old ones
#: (``captioning/workers`` 4, ``captioning/requests_per_minute`` 10) were written by every OK
#: of the Settings dialog, so only a value other than those old defaults is taken over.
WORKERS = _Setting("captioning/pace_workers", int, 0)
RPM = _Setting("captioning/pace_rpm", int, 0)
OLD_WORKERS = _Setting("captioning/workers", int, 4)
OLD_RPM = _Setting("captioning/requests_per_minute", int, 10)
MAX_SIDE = _Setting("captioning/upload_max_side", int, 1536)
DEFAULT_MODEL_SETTING = _Setting("captioning/default_model", str, DEFAULT_MODEL)
DEFAULT_BACKEND = _Setting("captioning/default_backend", str, "gemini")
DEFAULT_BASE_URL = _Setting("captioning/default_base_url", str, "")
DEFAULT_LANGUAGE = _Setting("captioning/default_language", str, "en")
DEFAULT_BACKEND_OPTIONS = _Setting("captioning/default_backend_options", str, "")
WD14_MODEL_DIR = _Setting("wd14/model_dir", str, "")
#: View > Show People (multi-person projects): "true" or "false".
SHOW_PEOPLE = _Setting("view/show_people", str, "true")
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

    def _pace(self, setting: _Setting, old: _Setting, high: int) -> int:
        if not self._q.contains(setting.key) and self._q.contains(old.key):
            value = int(self._get(old))
            return 0 if value == old.default else max(1, min(high, value))
        return max(0, min(high, int(self._get(setting))))

    @property
    def workers(self) -> int:
        """Requests in flight at once (1–16), or 0: automatic, the backend's own number."""
        return self._pace(WORKERS, OLD_WORKERS, 16)

    @workers.setter
    def workers(self, value: int) -> None:
        self._set(WORKERS, int(value))

    @property
    def rpm(self) -> int:
        """Requests per minute at most (1–1000), or 0: automatic, the backend's own limit."""
        return self._pace(RPM, OLD_RPM, 1000)

    @rpm.setter
    def rpm(self, value: int) -> None:
        self._set(RPM, int(value))

    def batch_pace(self, default: tuple[int, int]) -> tuple[int, int]:
        """``(workers, rpm)`` of a batch: each of the user's numbers that is set, else the
        backend's (``default``, from :func:`loracap.core.backends.registry.batch_defaults`;
        rpm 0 there means no limit)."""
        return (self.workers or default[0], self.rpm or default[1])

    @property
    def show_people(self) -> bool:
        """View > Show People: draw the people found in the preview (on unless turned off)."""
        return str(self._get(SHOW_PEOPLE)).strip().lower() not in ("false", "0", "no")

    @show_people.setter
    def show_people(self, value: bool) -> None:
        self._set(SHOW_PEOPLE, "true" if value else "false")

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
    def default_backend(self) -> str:
        """Captioning backend of new projects (a name of the backend registry)."""
        return str(self._get(DEFAULT_BACKEND)).strip() or "gemini"

    @default_backend.setter
    def default_backend(self, value: str) -> None:
        self._set(DEFAULT_BACKEND, value.strip())

    @property
    def default_base_url(self) -> str:
        """Server URL of new projects (``""``: the backend's default)."""
        return str(self._get(DEFAULT_BASE_URL)).strip()

    @default_base_url.setter
    def default_base_url(self, value: str) -> None:
        self._set(DEFAULT_BASE_URL, value.strip())

    @property
    def default_language(self) -> str:
        """Caption language of new projects (a code of ``loracap.core.prompts.LANGUAGES``)."""
        return str(self._get(DEFAULT_LANGUAGE)).strip() or "en"

    @default_language.setter
    def default_language(self, value: str) -> None:
        self._set(DEFAULT_LANGUAGE, value.strip())

    @property
    def default_backend_options(self) -> dict[str, dict[str, Any]]:
        """The backends' own settings for new projects, by backend name (``{}`` when none or
        when the stored text is not such an object)."""
        import json

        text = str(self._get(DEFAULT_BACKEND_OPTIONS))
        try:
            value = json.loads(text) if text.strip() else {}
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {str(k): dict(v) for k, v in value.items() if isinstance(v, dict)}

    @default_backend_options.setter
    def default_backend_options(self, value: dict[str, dict[str, Any]]) -> None:
        import json

        self._set(DEFAULT_BACKEND_OPTIONS, json.dumps(value, sort_keys=True))

    @property
    def wd14_model_dir(self) -> Path | None:
        """A folder holding a WD14 tagger's files to use instead of a downloaded model (kept
        per computer, not in the project: the folder is this machine's), or None."""
        text = str(self._get(WD14_MODEL_DIR)).strip()
        return Path(text) if text else None

    @wd14_model_dir.setter
    def wd14_model_dir(self, value: Path | None) -> None:
        self._set(WD14_MODEL_DIR, str(value) if value is not None else "")

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
