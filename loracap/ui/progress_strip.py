"""The captioning progress strip at the bottom of the window."""

from __future__ import annotations

from PyQt6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from loracap.core.text import progress_text


class ProgressStrip(QWidget):
    """"Captioning 12 of 32 · 1 failed · about 2 min left" with a Cancel button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setObjectName("progressText")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumWidth(240)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop sending requests; captions already paid for are kept")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.addWidget(self.bar)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.cancel_button)
        self.hide()

    def show_progress(self, done: int, failed: int, total: int, eta: float) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done + failed)
        text = progress_text(done, failed, total, eta)
        self.label.setText(text)
        self.show()
