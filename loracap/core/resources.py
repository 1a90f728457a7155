"""Where the files of ``resources/`` are at run time."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path | None:
    """The ``resources`` folder: in a PyInstaller bundle, beside the code (``sys._MEIPASS``); in
    a source checkout, at the repository root. None when neither exists (an installed wheel
    does not carry it; callers then do without)."""
    bundle = getattr(sys, "_MEIPASS", None)
    candidates = [Path(bundle) / "resources"] if bundle else []
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def resource(*parts: str) -> Path | None:
    """A file under ``resources/``, or None when it is not there."""
    folder = resources_dir()
    if folder is None:
        return None
    path = folder.joinpath(*parts)
    return path if path.exists() else None
