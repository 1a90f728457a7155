"""Where LoRACap keeps the user's settings, logs and caches.

Normally the platform's standard per-user folders (through ``platformdirs``): on Linux
``~/.config/LoRACap``, ``~/.local/state/LoRACap/log``, ``~/.cache/LoRACap``; on macOS
``~/Library/Application Support/LoRACap``, ``~/Library/Logs/LoRACap``, ``~/Library/Caches/LoRACap``;
on Windows ``%LOCALAPPDATA%\\LoRACap\\...``.

Portable mode, for lab computers: when a file named ``portable`` lies beside the executable
(or beside ``LoRACap.app`` on macOS), everything goes into ``LoRACap-data/`` next to it instead.
``LORACAP_HOME`` set in the environment does the same for any folder (tests, scripts).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "LoRACap"

#: Name of the marker file that turns on portable mode.
PORTABLE_MARKER = "portable"

#: Folder created beside the executable in portable mode.
PORTABLE_DATA = "LoRACap-data"


@dataclass(frozen=True)
class UserDirs:
    """The folders LoRACap writes to (created on first use by the callers)."""

    settings: Path
    logs: Path
    cache: Path
    portable: bool

    @property
    def settings_file(self) -> Path:
        """The INI file used for settings in portable mode."""
        return self.settings / "settings.ini"


def _portable_root(executable: Path) -> Path | None:
    candidates = [executable.parent]
    for parent in executable.parents:
        if parent.suffix == ".app":  # macOS: LoRACap.app/Contents/MacOS/LoRACap
            candidates.append(parent.parent)
            break
    for folder in candidates:
        if (folder / PORTABLE_MARKER).is_file():
            return folder / PORTABLE_DATA
    return None


def user_dirs(executable: Path | None = None) -> UserDirs:
    """The folders to use now. ``executable`` defaults to the frozen app's executable (in a
    source checkout, portable mode needs ``LORACAP_HOME``)."""
    home = os.environ.get("LORACAP_HOME")
    if home:
        root = Path(home).expanduser().absolute()
        return UserDirs(root / "settings", root / "logs", root / "cache", portable=True)
    if executable is None and getattr(sys, "frozen", False):
        executable = Path(sys.executable)
    if executable is not None:
        root_or_none = _portable_root(Path(executable).absolute())
        if root_or_none is not None:
            return UserDirs(root_or_none / "settings", root_or_none / "logs",
                            root_or_none / "cache", portable=True)
    return UserDirs(
        settings=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        logs=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        cache=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
        portable=False,
    )
