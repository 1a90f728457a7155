"""The layers: core is plain Python (no Qt at all), jobs use QtCore only."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "loracap"


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(PACKAGE.parent))] = names
    return found


def test_core_source_never_imports_qt() -> None:
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] in ("PyQt6", "PySide6"))
        for path, names in imported_modules(PACKAGE / "core").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_jobs_source_imports_only_qtcore() -> None:
    offenders = {
        path: sorted(n for n in names if n.startswith(("PyQt6.QtWidgets", "PyQt6.QtGui",
                                                        "loracap.ui")))
        for path, names in imported_modules(PACKAGE / "jobs").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("loracap.core", "PyQt6"), ("loracap.jobs", "PyQt6.QtWidgets"),
     ("loracap.jobs", "PyQt6.QtGui")],
)
def test_importing_a_layer_loads_nothing_forbidden(package: str, forbidden: str) -> None:
    modules = sorted(
        f"{package}.{path.stem}" for path in (PACKAGE / package.split(".")[1]).glob("*.py")
        if path.stem != "__init__"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print({forbidden!r} in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=True)
    assert result.stdout.strip() == "False"


def test_first_window_loads_no_database_pillow_or_gemini(tmp_path: Path) -> None:
    """The window of a normal launch (no project open) loads neither SQLAlchemy nor Pillow nor
    google-genai: they load with the first project, image decode or captioning batch."""
    code = (
        "import json, os, sys\n"
        "from PyQt6.QtCore import QTimer\n"
        "from PyQt6.QtWidgets import QApplication\n"
        "from loracap.ui.app import run_gui\n"
        "from loracap.ui.main_window import MainWindow\n"
        "def report():\n"
        "    app = QApplication.instance()\n"
        "    shown = [w for w in app.topLevelWidgets()\n"
        "             if isinstance(w, MainWindow) and w.isVisible()]\n"
        "    heavy = [m for m in ('sqlalchemy', 'google.genai', 'PIL') if m in sys.modules]\n"
        "    core = sorted(m for m in sys.modules if m.startswith('loracap.core.'))\n"
        "    print(json.dumps({'shown': len(shown), 'heavy': heavy, 'core': core}), flush=True)\n"
        # Skip interpreter teardown: it has nothing to do with what is checked here.
        "    os._exit(0)\n"
        # run_gui() uses this application; the report runs after half a second of event loop
        # with the window shown (deferred startup work included).
        "app = QApplication(sys.argv[:1])\n"
        "QTimer.singleShot(500, report)\n"
        "run_gui()\n"
        "sys.exit('run_gui() returned before the report')\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LORACAP_HOME=str(tmp_path))
    env.pop("LORACAP_STARTUP_TIMING", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shown"] == 1
    assert report["heavy"] == [], f"loaded at startup: {report['heavy']}; core: {report['core']}"
