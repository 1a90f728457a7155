"""The large preview of the current image, decoded off the GUI thread."""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, pyqtSignal
from PyQt6.QtGui import QImage, QImageReader, QPixmap, QResizeEvent
from PyQt6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from loracap.core.records import ImageRecord
from loracap.core.text import human_size
from loracap.ui.widgets import ElidedLabel

log = logging.getLogger(__name__)

#: Long side, in pixels, of the decoded preview (enough for a 4K screen's pane).
PREVIEW_MAX_SIDE = 2048


class _Signals(QObject):
    loaded = pyqtSignal(int, QImage)  # token, image (null on failure)


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
        self._signals.loaded.emit(self._token, image)


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
        self.image_label = QLabel()
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
        """Show ``record`` (None: nothing); the decode runs in the background."""
        self._token += 1
        self._pixmap = None
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

    def shutdown(self) -> None:
        """Wait for a decode in progress (before the window closes)."""
        self._pool.clear()
        self._pool.waitForDone()

    def _on_loaded(self, token: int, image: QImage) -> None:
        if token != self._token:
            return  # the user moved on
        if image.isNull():
            self.image_label.setText("This image cannot be shown (file missing or unreadable).")
            return
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
