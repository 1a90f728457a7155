"""The app exits cleanly: no crash when the window and the QApplication are torn down.

A crash at exit loses nothing (every caption is committed when it is made) but shows users a
"quit unexpectedly" report. It happened about every other run when the window was left to
Python's frame teardown, so each check runs the real app several times in fresh processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loracap.core.project import Project
from loracap.core.scan import scan_folder
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RUNS = 6

CLOSE_AFTER = """
import sys
from pathlib import Path
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication
import loracap.ui.app as app_module
app = QApplication(sys.argv[:1])
def close_windows():
    for widget in app.topLevelWidgets():
        if widget.isVisible():
            widget.close()
QTimer.singleShot(700, close_windows)
sys.exit(app_module.run_gui(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env.update(QT_QPA_PLATFORM="offscreen", LORACAP_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO), **extra)
    return env


def test_quit_from_the_event_loop_exits_cleanly(tmp_path: Path) -> None:
    # LORACAP_STARTUP_TIMING quits with QApplication.quit(), without closing the window.
    for _ in range(RUNS):
        result = subprocess.run([sys.executable, "-m", "loracap"], cwd=REPO, timeout=60,
                                env=_env(tmp_path, LORACAP_STARTUP_TIMING="1"),
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.startswith("window-shown ")


def test_closing_the_window_with_a_project_exits_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 4)
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
    for _ in range(RUNS):
        result = subprocess.run([sys.executable, "-c", CLOSE_AFTER, str(path)], cwd=REPO,
                                timeout=60, env=_env(tmp_path), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    # Closed properly: the project is one file again, with no lock left behind.
    assert sorted(p.name for p in folder.glob("hall.loraproj*")) == ["hall.loraproj"]
    with Project.open(path) as again:
        assert len(again.images()) == 4
