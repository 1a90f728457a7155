"""The large preview of the current image, decoded off the GUI thread; in a multi-person
project, the people found in it drawn over it (:mod:`loracap.ui.people_overlay`), which a
person edits with the mouse (:mod:`loracap.ui.box_gestures`): click a box to select it, drag
it or its edges, drag where there is no box to draw one, right-click for the people's menu,
Delete removes the selected box."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PyQt6.QtCore import (
    QObject,
    QPoint,
    QRectF,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QContextMenuEvent,
    QImage,
    QImageIOHandler,
    QImageReader,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
)
from PyQt6.QtWidgets import QLabel, QSizePolicy, QStyle, QVBoxLayout, QWidget

from loracap.core.records import ImageRecord
from loracap.core.text import human_size
from loracap.ui.box_gestures import BoxGestures, cursor_for, to_image_box
from loracap.ui.people_overlay import (
    NO_PERSON_NOTE,
    PersonMark,
    map_marks,
    paint_note,
    paint_people,
    paint_rubber_band,
)
from loracap.ui.widgets import ElidedLabel

log = logging.getLogger(__name__)

#: Long side, in pixels, of the decoded preview (enough for a 4K screen's pane).
PREVIEW_MAX_SIDE = 2048


class _Signals(QObject):
    # token, image (null on failure), the oriented image's full size (before the preview's
    # downscaling: the size people's boxes are measured in)
    loaded = pyqtSignal(int, QImage, QSize)


class _Load(QRunnable):
    def __init__(self, token: int, path: Path, signals: _Signals) -> None:
        super().__init__()
        self._token = token
        self._path = path
        self._signals = signals

    def run(self) -> None:
        reader = QImageReader(str(self._path))
        reader.setAutoTransform(True)  # EXIF orientation, as trainers like ai-toolkit apply it
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > PREVIEW_MAX_SIDE:
            reader.setScaledSize(size.scaled(PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE,
                                             Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        if image.isNull():
            log.info("Preview of %s failed: %s", self._path, reader.errorString())
        elif reader.transformation() & QImageIOHandler.Transformation.TransformationRotate90:
            size.transpose()  # size() is the file's stored size, before the EXIF rotation
        self._signals.loaded.emit(self._token, image, size)


class _ImageLabel(QLabel):
    """The fitted image, with the people of a multi-person caption drawn over it and edited
    with the mouse (see the module's description)."""

    #: The person clicked (-1: none), in caption order.
    person_selected = pyqtSignal(int)
    #: A box moved or resized: the person and the new box, in pixels of the oriented image.
    box_changed = pyqtSignal(int, tuple)
    #: A box drawn where there was none, in pixels of the oriented image.
    box_drawn = pyqtSignal(tuple)
    #: Delete pressed with a person selected.
    delete_requested = pyqtSignal(int)
    #: The people's context menu: the person under the pointer (-1: none), global position.
    menu_requested = pyqtSignal(int, QPoint)

    def __init__(self) -> None:
        super().__init__()
        self.source_size = QSize()  # the oriented image's full size, in pixels
        self.marks: tuple[PersonMark, ...] | None = None
        self.show_people = True
        self.selected = -1
        self._gestures = BoxGestures()
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    def shown_rect(self) -> QRectF:
        """Where the pixmap is drawn, in this widget's logical pixels (empty: no pixmap); as
        QLabel places it: aligned within the contents rectangle."""
        pixmap = self.pixmap()
        if pixmap.isNull():
            return QRectF()
        size = pixmap.deviceIndependentSize().toSize()
        rect = QStyle.alignedRect(self.layoutDirection(), self.alignment(), size,
                                  self.contentsRect())
        return QRectF(rect)

    def people(self) -> list[tuple[QRectF, str]]:
        if not self.show_people or not self.marks:
            return []
        return map_marks(self.marks, self.source_size, self.shown_rect())

    def rects(self) -> list[QRectF]:
        """Each person's box on screen, caption order (what the gestures hit)."""
        return [rect for rect, _alias in self.people()]

    def note(self) -> str:
        shown = self.show_people and self.marks == () and not self.shown_rect().isEmpty()
        return NO_PERSON_NOTE if shown else ""

    def editable(self) -> bool:
        """Whether the people can be edited here: shown, detected, and the image on screen."""
        return self.show_people and self.marks is not None and not self.shown_rect().isEmpty()

    def select(self, index: int) -> None:
        """Select person ``index`` (-1: none) and say so."""
        index = index if self.marks and 0 <= index < len(self.marks) else -1
        if index != self.selected:
            self.selected = index
            self.update()
        self.person_selected.emit(index)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        super().paintEvent(event)
        people, note = self.people(), self.note()
        gesture = self._gestures.current()
        if not people and not note and gesture is None:
            return
        painter = QPainter(self)
        if gesture is not None and gesture[0] != "draw":
            people[gesture[1]] = (gesture[2], people[gesture[1]][1])
        if people:
            undescribed = [n for n, mark in enumerate(self.marks or ()) if not mark.described]
            paint_people(painter, people, self.shown_rect(), self.font(),
                         selected=self.selected, undescribed=undescribed)
        if gesture is not None and gesture[0] == "draw":
            paint_rubber_band(painter, gesture[2])
        if note:
            paint_note(painter, note, self.shown_rect(), self.font())
        painter.end()

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is None or event.button() != Qt.MouseButton.LeftButton or not self.editable():
            super().mousePressEvent(event)
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        index = self._gestures.press(self.rects(), self.shown_rect(), event.position(),
                                     self.selected)
        self.select(index)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        pos = event.position()
        if self._gestures.active:
            if self._gestures.move(self.shown_rect(), pos) is not None:
                self.update()
            return
        if self.editable():
            index, edges = self._gestures.hit(self.rects(), pos, self.selected)
            self.setCursor(cursor_for(edges, index >= 0) if index >= 0 or
                           self.shown_rect().contains(pos) else Qt.CursorShape.ArrowCursor)
        else:
            self.unsetCursor()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        ended = self._gestures.release()
        self.update()
        if ended is None or self.source_size.isEmpty():
            return
        kind, index, rect = ended
        box = to_image_box(rect, self.source_size, self.shown_rect())
        if kind == "draw":
            self.box_drawn.emit(box)
        else:
            self.box_changed.emit(index, box)

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        if event is None:
            return
        if event.key() == Qt.Key.Key_Escape and (self._gestures.active or self.selected >= 0):
            if self._gestures.active:
                self._gestures.cancel()
                self.update()
            else:
                self.select(-1)
            return
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.selected >= 0:
            self.delete_requested.emit(self.selected)
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent | None) -> None:
        if event is None or not self.editable():
            return
        index, _edges = self._gestures.hit(self.rects(), event.pos().toPointF(),
                                           self.selected)
        self.select(index)
        self.menu_requested.emit(index, event.globalPos())


class PreviewPane(QWidget):
    """Shows one image fitted to the pane, with its file name, size and pixel dimensions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _Signals(self)
        self._signals.loaded.connect(self._on_loaded)
        self._token = 0
        self._pixmap: QPixmap | None = None
        self.image_label = _ImageLabel()
        self.image_label.setObjectName("preview")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(QSize(200, 150))
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        # One line, elided in the middle (a deep path keeps its file name in view).
        self.info_label = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle, min_chars=16)
        self.info_label.setObjectName("imageInfo")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image_label, 1)
        layout.addWidget(self.info_label)
        self.show_record(None)

    def show_record(self, record: ImageRecord | None) -> None:
        """Show ``record`` (None: nothing); the decode runs in the background. Its people are
        given with :meth:`set_people`."""
        self._token += 1
        self._pixmap = None
        self.image_label.marks = None
        self.image_label.selected = -1
        self.image_label.source_size = QSize(record.width or 0, record.height or 0) \
            if record is not None else QSize()
        self.image_label.setPixmap(QPixmap())
        if record is None:
            self.image_label.setText("No image selected")
            self.info_label.setText("")
            return
        dims = f"{record.width} × {record.height} px" if record.width and record.height else ""
        parts = [record.path, human_size(record.file_size), dims, record.format or ""]
        self.info_label.setText("  ·  ".join(p for p in parts if p))
        if not record.valid:
            self.image_label.setText(f"Invalid file:\n{record.invalid_reason}")
            return
        self.image_label.setText("Loading…")
        self._pool.start(_Load(self._token, record.abs_path, self._signals))

    def set_people(self, marks: Sequence[PersonMark] | None) -> None:
        """Draw ``marks`` (boxes in pixels of the oriented image) over the image shown; ``()``
        says "No person found", None (not a multi-person project, never detected) draws
        nothing."""
        label = self.image_label
        label.marks = tuple(marks) if marks is not None else None
        if label.selected >= len(label.marks or ()):
            label.select(-1)
        label.update()

    def set_people_visible(self, visible: bool) -> None:
        """Show or hide the people (View > Show People)."""
        self.image_label.show_people = visible
        self.image_label.update()

    def people_rects(self) -> list[tuple[QRectF, str]]:
        """``(rectangle, alias)`` of each person as drawn, in caption order, in the image
        label's coordinates (logical pixels); empty when hidden, before the image is shown or
        without people."""
        return self.image_label.people()

    def people_note(self) -> str:
        """The note drawn in the preview's corner ("No person found"), or ``""``."""
        return self.image_label.note()

    def shutdown(self) -> None:
        """Wait for a decode in progress (before the window closes)."""
        self._pool.clear()
        self._pool.waitForDone()

    def _on_loaded(self, token: int, image: QImage, source: QSize) -> None:
        if token != self._token:
            return  # the user moved on
        if image.isNull():
            self.image_label.setText("This image cannot be shown (file missing or unreadable).")
            return
        if source.isValid():
            self.image_label.source_size = source
        self._pixmap = QPixmap.fromImage(image)
        self._fit()

    def _fit(self) -> None:
        if self._pixmap is None:
            return
        ratio = self.devicePixelRatioF()
        target = self.image_label.size() * ratio
        scaled = self._pixmap.scaled(
            target, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        scaled.setDevicePixelRatio(ratio)
        self.image_label.setPixmap(scaled)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        self._fit()
