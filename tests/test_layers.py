"""The layers: core is plain Python (no Qt at all), jobs use QtCore only."""

from __future__ import annotations

import ast
import json
import os
import sqlite3
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


@pytest.mark.parametrize("options", [["--json"], ["--list"], ["--json", "--list"], []])
def test_info_reads_a_project_without_sqlalchemy(tmp_path: Path, options: list[str]) -> None:
    """``loracap info`` reads the project with plain sqlite3 (issue 15: at most twice what
    Python, one query and a stat of each file take): neither SQLAlchemy nor the modules of
    captioning, exports or Pillow load, and the answer is still the project's."""
    from loracap.core.backends.base import TokenUsage
    from loracap.core.project import Project
    from loracap.core.records import PersonPart

    folder = tmp_path / "hall"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"")
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        conn = sqlite3.connect(project._db_path)
        conn.executemany(
            "INSERT INTO images (path, file_size, mtime, width, height, format, valid, "
            "invalid_reason, added_at) VALUES (?, 0, 0, 8, 8, 'JPEG', 1, '', "
            "'2025-03-01 10:00:00.000000')", [("a.jpg",), ("b.jpg",), ("gone.jpg",)])
        conn.commit()
        conn.close()
        ids = {rec.path: rec.id for rec in project.images()}
        project.store_generated(ids["a.jpg"], "a hall", backend="gemini",
                                model="gemini-flash-latest", prompt="Describe.",
                                usage=TokenUsage(100, 10))
        project.record_failure(ids["b.jpg"], "500 INTERNAL", backend="gemini",
                               model="gemini-flash-latest")
        project.store_person_part(ids["a.jpg"], PersonPart(
            kind="detection", backend="gemini", model="gemini-flash-latest", file_size=0,
            mtime=0.0, text='[{"box": [0, 0, 4, 4], "gender": "woman"}]'))
        project.update_settings(language="de")
    heavy = ("sqlalchemy", "PIL", "psutil", "google.genai", "loracap.core.project",
             "loracap.core.prompts", "loracap.core.presets", "loracap.core.people",
             "loracap.core.exports", "loracap.core.qa.exports", "loracap.cli_qa",
             "loracap.cli_batch")
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['loracap', 'info', *{options!r}, {str(path)!r}]\n"
        "try:\n"
        "    runpy.run_module('loracap', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"loaded = [name for name in {heavy!r} if name in sys.modules]\n"
        "sys.stderr.write(f'exit {code}; loaded {loaded}')\n"
    )
    env = dict(os.environ, LORACAP_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, env=env, timeout=120, check=False)
    assert result.stderr == "exit 0; loaded []"
    if "--json" in options:
        data = json.loads(result.stdout)
        assert (data["images"], data["captioned"], data["failed"], data["missing_files"]) \
            == (3, 1, 1, 1)
        assert [row["input_tokens"] for row in data["usage"]] == [100]
        if "--list" in options:
            assert [f["people"] for f in data["files"]] == [1, None, None]
    else:
        assert "captions in German" in result.stdout
        assert "1 image file(s) missing on disk, e.g. gone.jpg" in result.stdout
        assert ("a.jpg\tgenerated (1 person)" in result.stdout) == ("--list" in options)
