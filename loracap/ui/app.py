"""The composition root of the desktop app: builds the QApplication, settings, thumbnail
provider and main window, and passes them into constructors (no global registries)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
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
from loracap.ui.platform_check import bundle_library_problems, xcb_problem
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


SMOKE_TIMEOUT_S = 20.0
"""How long ``--smoke-window`` waits for the window system to expose the main window."""


def _smoke_report(app: QApplication, window: MainWindow, deadline: float) -> None:
    """For ``loracap --smoke-window``: once the window system has exposed the main window,
    print one line and quit with exit code 0; print a FAILED line and quit with 1 when it is
    not exposed within ``SMOKE_TIMEOUT_S`` or (packaged Linux app) when an X11 library came
    from the system instead of the bundle."""
    handle = window.windowHandle()
    if handle is None or not handle.isExposed():
        if time.monotonic() < deadline:
            QTimer.singleShot(20, lambda: _smoke_report(app, window, deadline))
            return
        problems = [f"the main window was not exposed within {SMOKE_TIMEOUT_S:.0f} s"]
    else:
        problems = []
    detail = (f"Qt {QApplication.platformName()}, main window {window.width()}x"
              f"{window.height()} exposed")
    bundle = getattr(sys, "_MEIPASS", None)
    if not problems and bundle is not None and sys.platform.startswith("linux"):
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            problems = bundle_library_problems(maps.read(), Path(bundle))
        detail += ", X11 libraries loaded from the bundle"
    if problems:
        sys.stdout.write(f"LoRACap {__version__} window test FAILED: {'; '.join(problems)}\n")
    else:
        sys.stdout.write(f"LoRACap {__version__} window test passed: {detail}\n")
    sys.stdout.flush()
    app.exit(1 if problems else 0)


def run_gui(path: Path | None = None, *, smoke_test: bool = False) -> int:
    """Open the window; ``path`` is a folder (new project) or a ``.loraproj`` file to open.

    Returns the exit code. On Linux, when Qt would use its xcb platform plugin and a system
    library it needs is missing, prints one line naming the package to install and returns 1
    without starting Qt (:mod:`loracap.ui.platform_check`).

    ``smoke_test`` (``loracap --smoke-window``, hidden: proves that a packaged build opens its
    real window under the platform plugin Qt picks, e.g. xcb under Xvfb): the window is shown
    with throw-away settings, one line is printed once it is exposed, and the app quits.
    """
    problem = xcb_problem()
    if problem is not None:
        sys.stderr.write(problem + "\n")
        return 1
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
    scratch = tempfile.mkdtemp(prefix="loracap-smoke-") if smoke_test else None
    settings = (AppSettings(QSettings(os.path.join(scratch, "settings.ini"),
                                      QSettings.Format.IniFormat))
                if scratch is not None else None)
    window = build_window(settings)
    app.installEventFilter(FileOpenFilter(window))
    _install_excepthook([window])
    window.show()
    if smoke_test:
        deadline = time.monotonic() + SMOKE_TIMEOUT_S
        QTimer.singleShot(0, lambda: _smoke_report(app, window, deadline))
    elif os.environ.get("LORACAP_STARTUP_TIMING"):
        QTimer.singleShot(0, lambda: _report_startup(app))
    if path is not None and not smoke_test:
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
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


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
