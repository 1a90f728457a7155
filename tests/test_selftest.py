"""``loracap --self-test``, as the packaged build runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_self_test_passes_with_one_line_and_no_stderr() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    env.pop("GOOGLE_GEMINI_BASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "loracap", "--self-test"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "self-test passed: 3 images captioned and exported" in lines[0]
    assert result.stderr == ""


def test_self_test_is_not_in_the_help() -> None:
    result = subprocess.run([sys.executable, "-m", "loracap", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "self-test" not in result.stdout
