"""The composition root of the desktop app: builds the QApplication, settings, thumbnail
provider and main window, and passes them into constructors (no global registries)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import cast

from PyQt6 import sip
from PyQt6.QtCore import (
    QEvent,
    QMessageLogContext,
    QObject,
    QSettings,
    QTimer,
    QtMsgType,
    qInstallMessageHandler,
)
from PyQt6.QtGui import QFileOpenEvent, QIcon
from PyQt6.QtWidgets import QApplication, QMessageBox

from loracap import __version__
from loracap.core.logs import configure_logging
from loracap.core.resources import resource
from loracap.core.userdirs import user_dirs
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider

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


class FileOpenFilter(QObject):
    """macOS opens documents (a double-clicked ``.loraproj``, a folder dropped on the Dock icon)
    with a ``QFileOpenEvent`` sent to the application, not with command-line arguments."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.FileOpen:
            path = Path(cast(QFileOpenEvent, event).file())
            QTimer.singleShot(0, lambda: self._window.open_path(path))
            return True
        return super().eventFilter(watched, event)


def build_window(settings: AppSettings | None = None) -> MainWindow:
    """The main window with its collaborators (a QApplication must exist)."""
    dirs = user_dirs()
    if settings is None:
        qsettings = (QSettings(str(dirs.settings_file), QSettings.Format.IniFormat)
                     if dirs.portable else QSettings("LoRACap", "LoRACap"))
        settings = AppSettings(qsettings)
    screen = QApplication.primaryScreen()  # None without a screen: then 1x thumbnails
    thumbnails = ThumbnailProvider(
        dirs.cache / "thumbnails",
        device_pixel_ratio=screen.devicePixelRatio() if screen is not None else 1.0)
    thumbnails.start_pruning()  # in the background: does not slow startup
    return MainWindow(settings, thumbnails, log_dir=dirs.logs)


def _install_excepthook(window_ref: list[MainWindow]) -> None:
    """An unexpected error is logged with its traceback and shown as one plain message."""

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        log.critical("Unexpected error", exc_info=(kind, error, tb))
        parent = window_ref[0] if window_ref else None
        QMessageBox.critical(
            parent, "LoRACap",
            f"Something went wrong: {error}\n\nYour captions are saved. The details are in the "
            "log file (Help > Open Log Folder); please send it to whoever helps you.",
        )

    sys.excepthook = hook


def _report_startup(app: QApplication) -> None:
    """For benchmarks/startup.py: print the wall-clock time (seconds since the epoch) of the first
    event-loop turn after the window was shown, then quit. The benchmark subtracts its own
    launch time."""
    sys.stdout.write(f"window-shown {time.time():.6f}\n")
    sys.stdout.flush()
    app.quit()


def run_gui(path: Path | None = None) -> int:
    """Open the window; ``path`` is a folder (new project) or a ``.loraproj`` file to open."""
    configure_logging(user_dirs().logs, stream=sys.stderr)
    qInstallMessageHandler(_qt_message)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("LoRACap")
    app.setOrganizationName("LoRACap")
    app.setApplicationVersion(__version__)
    icon = resource("icons", "loracap.png")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    window = build_window()
    app.installEventFilter(FileOpenFilter(window))
    _install_excepthook([window])
    window.show()
    if os.environ.get("LORACAP_STARTUP_TIMING"):
        QTimer.singleShot(0, lambda: _report_startup(app))
    if path is not None:
        target = path.expanduser()
        if target.exists():
            QTimer.singleShot(0, lambda: window.open_path(target.absolute()))
        else:
            QTimer.singleShot(0, lambda: QMessageBox.warning(
                window, "LoRACap", f"{target} does not exist."))
    try:
        return app.exec()
    finally:
        _tear_down(window)


def _tear_down(window: MainWindow) -> None:
    """Close and delete the window while the QApplication still exists.

    Left to Python's frame teardown, the window and the application object die in no fixed
    order, and PyQt can crash at exit when the application goes first. Closing first runs the
    window's own cleanup (project closed, thumbnail threads stopped) if the event loop ended
    without a close (``QApplication.quit``).
    """
    if sip.isdeleted(window):
        return
    if window.isVisible():
        window.close()
    sip.delete(window)
