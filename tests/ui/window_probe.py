"""Run the real LoRACap window on a screen of a given size and report where everything is.

Used by ``tests/ui/test_window_fits.py`` in a fresh process per screen: Qt's offscreen platform
takes its screen (size, device pixel ratio) from a JSON file given in ``QT_QPA_PLATFORM``
(``offscreen:configfile=...``), and a process has one platform. Prints one JSON object per
``report`` step on standard output.

Usage: ``python -m tests.ui.window_probe SETTINGS.ini PROJECT STEP [STEP ...]`` where a step is

* ``open`` -- open the project (first image current);
* ``docks`` -- show every dock panel (View menu), as a user would;
* ``error`` -- make the current image one with the longest error message the service gives, and
  show the longest progress text in the progress strip;
* ``next`` -- go to the next image;
* ``check`` -- run the dataset check and wait for its findings;
* ``report`` -- print the geometry report;
* ``close`` -- close the window (saves its layout to SETTINGS.ini);
* ``reopen`` -- make a new window with the same settings (the saved layout restored).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PyQt6.QtCore import QPoint, QRect, QSettings
from PyQt6.QtWidgets import QApplication, QWidget

LONG_ERROR = (
    "Gemini refused the API key (400 INVALID_ARGUMENT: API key not valid. Please pass a valid "
    "API key. reason API_KEY_INVALID, domain googleapis.com, metadata service "
    "generativelanguage.googleapis.com); check the key in File > Settings and try again. "
    "/home/student/Documents/Workshop/2026/very_long_folder_name_of_the_dataset/IMG_0001.jpg"
)


def _rect(widget: QWidget) -> list[int]:
    top_left = widget.mapToGlobal(QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]


def report(window: object) -> dict[str, object]:
    """Where the window and its main controls are, in global logical pixels."""
    from loracap.ui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    screen = window.screen()
    assert screen is not None
    available: QRect = screen.availableGeometry()
    frame = window.frameGeometry()
    controls = {
        "generate": window.generate_button,
        "previous": window.previous_button,
        "next": window.next_button,
        "editor": window.editor.body,
        "status_counts": window.review_status,
        "grid": window.view.viewport(),
        "preview": window.preview.image_label,
        "note": window.note_edit,
        "word_count": window.editor.word_count,
        "tags_panel": window.tag_panel,
        "history_panel": window.history_panel,
        "checks_panel": window.checks_panel,
    }
    grid_cell = window.view.gridSize().width()

    def columns(tree: object) -> list[list[int]]:
        """``[shown width, width its text needs]`` of each visible column."""
        from PyQt6.QtWidgets import QTreeView

        assert isinstance(tree, QTreeView)
        header = tree.header()
        assert header is not None
        return [[tree.columnWidth(c), max(tree.sizeHintForColumn(c), header.sectionSizeHint(c))]
                for c in range(header.count()) if not tree.isColumnHidden(c)]

    return {
        "screen": [available.x(), available.y(), available.width(), available.height()],
        "dpr": screen.devicePixelRatio(),
        "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
        "minimum": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
        "controls": {name: _rect(w) for name, w in controls.items()},
        "visible": {name: w.isVisible() and not w.visibleRegion().isEmpty()
                    for name, w in controls.items()},
        "grid_columns": window.view.viewport().width() // max(1, grid_cell),
        "word_count_lines": window.editor.word_count.height()
        // max(1, window.editor.word_count.fontMetrics().lineSpacing()),
        "columns": {"history": columns(window.history_panel.tree),
                    "checks": columns(window.checks_panel.list_view)},
        "docks": {dock.objectName(): [dock.isVisible(), dock.width()]
                  for dock in (window.tags_dock, window.history_dock, window.checks_dock)},
        "tab_bars": tab_bars(window),
    }


def tab_bars(window: QWidget) -> list[list[object]]:
    """``[titles, shown width, width the titles need]`` of the tab bar of every group of tabbed
    dock panels, and of the preview's tabs: a bar narrower than it needs cuts its titles.
    (Qt keeps the bars of earlier layouts as children; only those of the groups now tabbed
    together count.)"""
    from PyQt6.QtWidgets import QDockWidget, QMainWindow, QTabBar, QTabWidget

    assert isinstance(window, QMainWindow)
    groups = set()
    for dock in window.findChildren(QDockWidget):
        if dock.isVisible() and not dock.isFloating():
            tabbed = window.tabifiedDockWidgets(dock)
            if tabbed:
                groups.add(frozenset(d.windowTitle() for d in [dock, *tabbed]))
    bars = []
    for bar in window.findChildren(QTabBar):
        titles = [bar.tabText(i) for i in range(bar.count())]
        shown = bar.isVisible()
        if bar.parent() is window:  # a dock group's bar, not one left from a former layout
            shown = shown and not bar.visibleRegion().isEmpty() \
                and window.rect().contains(bar.geometry())
        if shown and (frozenset(titles) in groups or isinstance(bar.parent(), QTabWidget)):
            bars.append([titles, bar.width(), bar.sizeHint().width()])
    return bars


def main(argv: list[str]) -> int:
    from loracap.ui.app import build_window
    from loracap.ui.settings import AppSettings

    settings_file, project, *steps = argv
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if os.environ.get("LORACAP_PROBE_FONT_PT"):  # a platform whose system font is larger
        font = app.font()
        font.setPointSizeF(float(os.environ["LORACAP_PROBE_FONT_PT"]))
        app.setFont(font)
    settings = AppSettings(QSettings(settings_file, QSettings.Format.IniFormat))
    window = build_window(settings)
    window.show()
    windows = [window]  # closed windows stay referenced until the process ends

    def settle() -> None:
        for _ in range(5):
            app.processEvents()

    settle()
    for step in steps:
        if step == "open":
            assert window.open_project(Path(project))
        elif step == "docks":
            for dock in (window.tags_dock, window.history_dock, window.checks_dock):
                if not dock.toggleViewAction().isChecked():
                    dock.toggleViewAction().trigger()
                    settle()
        elif step == "error":
            assert window.project is not None
            record = window.current_record()
            assert record is not None
            window.project.record_failure(record.id, LONG_ERROR, kind="AuthenticationError")
            window.refresh_image(record.id)
            window.statusBar().showMessage("Captioning stopped: " + LONG_ERROR)
            window.progress.show_progress(12, 3, 1234, 7384)
            window.progress.label.setText("Captioning 12 of 1234 · " + LONG_ERROR)
        elif step == "report":
            settle()
            sys.stdout.write(json.dumps(report(window)) + "\n")
        elif step == "next":
            window.navigate(1)
        elif step == "check":
            window.check_dataset()
            while window.checks_panel.is_running:
                app.processEvents()
        elif step == "close":
            window.close()
        elif step == "reopen":
            window = build_window(settings)
            windows.append(window)
            window.show()
        settle()
    sys.stdout.flush()
    # Closed and deleted while the QApplication exists (see loracap.ui.app._tear_down).
    from PyQt6 import sip

    for each in windows:
        if not sip.isdeleted(each):
            if each.isVisible():
                each.close()
            sip.delete(each)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
