"""The layers: core is plain Python (no Qt at all), jobs use QtCore only."""

from __future__ import annotations

import ast
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
