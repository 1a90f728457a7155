"""``loracap --smoke-window``: the hidden check that a (packaged) build opens its real window."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_smoke_window_shows_the_window_and_quits(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LORACAP_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "loracap", "--smoke-window"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("LoRACap ")
    assert "window test passed: Qt offscreen, main window " in lines[0]
    # Throw-away settings: the user's settings (here LORACAP_HOME) are not written.
    assert not (tmp_path / "home" / "settings" / "settings.ini").exists()
