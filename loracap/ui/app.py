"""The composition root of the desktop app: builds the QApplication, settings, thumbnail
provider and main window, and passes them into constructors (no global registries)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PyQt6.QtCore import QMessageLogContext, QTimer, QtMsgType, qInstallMessageHandler
from PyQt6.QtWidgets import QApplication, QMessageBox

from loracap import __version__
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider, default_cache_dir

log = logging.getLogger("loracap.qt")

_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _qt_message(kind: QtMsgType, _context: QMessageLogContext, message: str | None) -> None:
    log.log(_QT_LEVELS.get(kind, logging.WARNING), "%s", message)


def build_window(settings: AppSettings | None = None) -> MainWindow:
    """The main window with its collaborators (a QApplication must exist)."""
    return MainWindow(settings or AppSettings(), ThumbnailProvider(default_cache_dir()))


def run_gui(path: Path | None = None) -> int:
    """Open the window; ``path`` is a folder (new project) or a ``.loraproj`` file to open."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    qInstallMessageHandler(_qt_message)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("LoRACap")
    app.setOrganizationName("LoRACap")
    app.setApplicationVersion(__version__)
    window = build_window()
    window.show()
    if path is not None:
        target = path.expanduser()
        if target.exists():
            QTimer.singleShot(0, lambda: window.open_path(target.absolute()))
        else:
            QTimer.singleShot(0, lambda: QMessageBox.warning(
                window, "LoRACap", f"{target} does not exist."))
    return app.exec()
