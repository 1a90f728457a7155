"""The large preview of the current image, decoded off the GUI thread; in a multi-person
project, the people found in it drawn over it (:mod:`loracap.ui.people_overlay`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PyQt6.QtCore import QObject, QRectF, QRunnable, QSize, Qt, QThreadPool, pyqtSignal
from PyQt6.QtGui import (
    QImage,
    QImageIOHandler,
    QImageReader,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
)
from PyQt6.QtWidgets import QLabel, QSizePolicy, QStyle, QVBoxLayout, QWidget

from loracap.core.records import ImageRecord
from loracap.core.text import human_size
from loracap.ui.people_overlay import (
    NO_PERSON_NOTE,
    PersonMark,
    map_marks,
    paint_note,
    paint_people,
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
    """The fitted image, with the people of a multi-person caption drawn over it."""

    def __init__(self) -> None:
        super().__init__()
        self.source_size = QSize()  # the oriented image's full size, in pixels
        self.marks: tuple[PersonMark, ...] | None = None
        self.show_people = True

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

    def note(self) -> str:
        shown = self.show_people and self.marks == () and not self.shown_rect().isEmpty()
        return NO_PERSON_NOTE if shown else ""

    def paintEvent(self, event: QPaintEvent | None) -> None:
        super().paintEvent(event)
        people, note = self.people(), self.note()
        if not people and not note:
            return
        painter = QPainter(self)
        if people:
            paint_people(painter, people, self.shown_rect(), self.font())
        if note:
            paint_note(painter, note, self.shown_rect(), self.font())
        painter.end()


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
        self.image_label.marks = tuple(marks) if marks is not None else None
        self.image_label.update()

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
