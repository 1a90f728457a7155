"""Keep the main window inside its screen: first-launch size, a layout chosen for the screen's
width, and repair of a saved layout that no longer fits.

A student's 13-inch laptop offers about 1280-1366 × 720-768 logical pixels (at 200 % a
2560 × 1600 screen offers 1280 × 800). Every panel side by side needs about 1,300 px, so on such
screens the dock panels start as tabs of one dock, and a dock the user opens beside the others
is tabbed with them when the window would otherwise grow past the screen. Nothing here decides
what a panel shows; it only moves the docks and sizes the window.
"""

from __future__ import annotations

import logging

from PyQt6.QtCore import QMargins, QObject, QRect, Qt, QTimer
from PyQt6.QtGui import QCursor, QGuiApplication, QScreen
from PyQt6.QtWidgets import QDockWidget, QMainWindow, QTabBar

log = logging.getLogger(__name__)

#: Share of the available screen (each side) that a window takes on its first launch.
FIRST_LAUNCH_FRACTION = 0.9

#: Available screen width, in logical pixels, from which the History panel starts in its own
#: column at the right; below it every panel starts as a tab of the left dock area.
WIDE_SCREEN_WIDTH = 1600

#: Starting widths of the left dock (Tags) and of the right one (History), in logical pixels.
FIRST_DOCK_WIDTH = 200
SECOND_DOCK_WIDTH = 280
#: Starting width of the one dock whose tabs hold every panel (narrow screens), at least; wider
#: when the tab titles need it in the platform's font (:func:`tabs_width`).
TABBED_DOCK_WIDTH = 280

#: The window frame (borders, title bar) drawn by the window manager, in logical pixels, assumed
#: until the window is shown and its real frame is known.
FRAME_ALLOWANCE = QMargins(4, 32, 4, 4)


def screen_for(window: QMainWindow) -> QScreen | None:
    """The screen the window is on, else the one under the mouse pointer, else the primary."""
    handle = window.windowHandle()
    if handle is not None and handle.screen() is not None and window.isVisible():
        return handle.screen()
    return QGuiApplication.screenAt(QCursor.pos()) or QGuiApplication.primaryScreen()


def tabs_width(titles: list[str]) -> int:
    """The width, in logical pixels, a tab bar needs to show ``titles`` whole in the platform's
    style and font (a bar narrower than that cuts them: "Ta… Hist…")."""
    bar = QTabBar()
    for title in titles:
        bar.addTab(title)
    width = bar.sizeHint().width()
    bar.deleteLater()
    return width


def first_launch_geometry(available: QRect, fraction: float = FIRST_LAUNCH_FRACTION) -> QRect:
    """A rectangle of ``fraction`` of ``available`` (each side), centred in it."""
    width = int(available.width() * fraction)
    height = int(available.height() * fraction)
    rect = QRect(0, 0, width, height)
    rect.moveCenter(available.center())
    return rect


def fitted(frame: QRect, available: QRect) -> QRect:
    """``frame`` made no larger than ``available`` and moved inside it (unchanged if it fits)."""
    rect = QRect(frame.topLeft(), frame.size().boundedTo(available.size()))
    if rect.right() > available.right():
        rect.moveRight(available.right())
    if rect.bottom() > available.bottom():
        rect.moveBottom(available.bottom())
    if rect.left() < available.left():
        rect.moveLeft(available.left())
    if rect.top() < available.top():
        rect.moveTop(available.top())
    return rect


class ScreenFit(QObject):
    """Keeps ``window`` and its ``docks`` inside the screen.

    ``docks`` are in order of importance: the first one is the anchor that the others are
    tabbed onto when there is no room beside it, and the last one is hidden first when even
    tabs do not fit. Call :meth:`first_launch` when there is no saved layout and
    :meth:`schedule` after anything that can change the window's smallest size (a saved
    layout restored, a dock shown or moved, the window moved to another screen).
    """

    def __init__(self, window: QMainWindow, docks: list[QDockWidget]) -> None:
        super().__init__(window)
        self._window = window
        self._docks = docks
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.ensure_fits)
        self.repairs: list[str] = []  # what the last ensure_fits changed, for the status bar
        for dock in docks:
            dock.visibilityChanged.connect(lambda visible: visible and self.schedule())
            dock.dockLocationChanged.connect(lambda _area: self.schedule())
            dock.topLevelChanged.connect(lambda floating: floating or self.schedule())

    def screen_available(self) -> QRect:
        """The available geometry (without task bars and docks) of the window's screen."""
        screen = screen_for(self._window)
        return screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 720)

    def frame_margins(self) -> QMargins:
        """The window frame around the window's client area (a guess until it is shown)."""
        window = self._window
        if not window.isVisible():
            return FRAME_ALLOWANCE
        frame, inner = window.frameGeometry(), window.geometry()
        return QMargins(inner.left() - frame.left(), inner.top() - frame.top(),
                        frame.right() - inner.right(), frame.bottom() - inner.bottom())

    def available(self) -> QRect:
        """The room the window's client area has on its screen (the frame taken off)."""
        return self.screen_available().marginsRemoved(self.frame_margins())

    def is_wide(self) -> bool:
        """True on screens with room for every panel side by side."""
        return self.available().width() >= WIDE_SCREEN_WIDTH

    def first_launch(self) -> None:
        """Size the window to the screen and lay the docks out for its width."""
        available = self.screen_available()
        self.arrange(wide=available.width() >= WIDE_SCREEN_WIDTH)
        self._activate()  # the window's smallest size follows the new dock layout
        frame = first_launch_geometry(available)
        self._window.setGeometry(frame.marginsRemoved(self.frame_margins()))

    def arrange(self, *, wide: bool) -> None:
        """Wide: the first dock on the left, the others tabbed together on the right. Narrow:
        every dock a tab of the left dock area, the first one raised."""
        window = self._window
        first, *rest = self._docks
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first)
        if wide:
            for dock in rest:
                window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            for dock in rest[1:]:
                window.tabifyDockWidget(rest[0], dock)
            if rest:
                rest[0].raise_()
        else:
            for dock in rest:
                window.tabifyDockWidget(first, dock)
        first.raise_()

    def size_docks(self) -> None:
        """Give the docks their starting widths (call once the window has its size)."""
        window = self._window
        first, *rest = self._docks
        beside = bool(rest) and window.dockWidgetArea(rest[0]) != window.dockWidgetArea(first)
        tabbed = max(TABBED_DOCK_WIDTH, tabs_width([dock.windowTitle() for dock in self._docks]))
        docks, widths = [first], [FIRST_DOCK_WIDTH if beside else tabbed]
        if beside:
            docks.append(rest[0])
            widths.append(SECOND_DOCK_WIDTH)
        window.resizeDocks(docks, widths, Qt.Orientation.Horizontal)

    def schedule(self) -> None:
        """Check the fit on the next event-loop turn (several changes are checked once)."""
        self._timer.start()

    def _too_wide(self, available: QRect) -> bool:
        return self._window.minimumSizeHint().width() > available.width()

    def _too_tall(self, available: QRect) -> bool:
        return self._window.minimumSizeHint().height() > available.height()

    def _activate(self) -> None:
        layout = self._window.layout()
        if layout is not None:
            layout.activate()

    def ensure_fits(self) -> list[str]:
        """Make the window fit its screen; returns what was changed (empty when it fit).

        First the docks beside each other are tabbed onto the first dock shown; if the window
        still cannot be narrow enough, docks are hidden, least important first. Then the
        window is made no larger than the screen and moved onto it.
        """
        window = self._window
        available = self.available()
        changes: list[str] = []
        shown = [d for d in self._docks if d.toggleViewAction().isChecked() and not d.isFloating()]
        if self._too_wide(available) and len(shown) > 1:
            anchor = shown[0]
            for dock in shown[1:]:
                if anchor not in window.tabifiedDockWidgets(dock):
                    window.tabifyDockWidget(anchor, dock)
            dock_names = ", ".join(d.windowTitle() for d in shown)
            changes.append(f"the panels {dock_names} were put in tabs to fit the screen")
            self._activate()
        for dock in reversed(self._docks):
            if not (self._too_wide(available) or self._too_tall(available)):
                break
            if dock.toggleViewAction().isChecked() and not dock.isFloating():
                dock.hide()
                changes.append(f"the {dock.windowTitle()} panel was closed to fit the screen "
                               "(View menu opens it)")
                self._activate()
        margins = self.frame_margins()
        frame = window.geometry().marginsAdded(margins)
        target = fitted(frame, self.screen_available())
        if target != frame:
            window.setGeometry(target.marginsRemoved(margins))
            changes.append("the window was resized to fit the screen")
        if changes:
            log.info("Window layout repaired: %s", "; ".join(changes))
        self.repairs = changes
        return changes
