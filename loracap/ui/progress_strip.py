"""The captioning progress strip at the bottom of the window."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSlot
from PyQt6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from loracap.core.text import CAPTION_VERBS, progress_text
from loracap.ui.widgets import ElidedLabel


class ProgressStrip(QWidget):
    """"Captioning 12 of 32 · 1 failed · about 2 min left" with a Cancel button.

    Connect ``CaptionRunner.progress`` to :meth:`show_progress` and ``CaptionRunner.waiting``
    to :meth:`show_waiting`; while the runner waits the text reads "Captioning 10 of 30 ·
    waiting for the rate limit · next request in 42 s · about 1 min 58 s left".
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = ElidedLabel(min_chars=24)  # never wider than the status bar's room
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
        self._progress: tuple[int, int, int, float] = (0, 0, 0, -1.0)
        self._wait: tuple[float, str] = (0.0, "")
        #: How the batch under way is named (:data:`loracap.core.text.CAPTION_VERBS`).
        self.verbs = CAPTION_VERBS
        self.hide()

    @pyqtSlot(int, int, int, float)
    def show_progress(self, done: int, failed: int, total: int, eta: float) -> None:
        """Show ``done`` (``failed`` of them failed) of ``total`` and the estimate (seconds,
        < 0 while unknown); shows the strip. A new batch (nothing done yet) clears a wait
        left from an earlier one."""
        if done + failed == 0 and eta < 0:
            self._wait = (0.0, "")
        self._progress = (done, failed, total, eta)
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done + failed)
        self._render()
        self.show()

    @pyqtSlot(float, str)
    def show_waiting(self, seconds: float, reason: str) -> None:
        """Show what holds the batch back (``CaptionRunner.waiting``): ``seconds`` until the
        next request, ``reason`` as :func:`loracap.core.text.waiting_text` takes it;
        ``reason`` ``""`` (or ``seconds`` 0) clears it. Does not show a hidden strip."""
        self._wait = (seconds, reason) if reason and seconds > 0 else (0.0, "")
        if self._progress[2]:
            self._render()

    def show_activity(self, text: str, done: int, total: int) -> None:
        """Show a step before the batch begins ("Downloading the WD14 model …: 12 MB of
        300 MB"): ``done`` of ``total`` (bytes, say), or a busy bar when ``total`` is 0; shows
        the strip. The next :meth:`show_progress` replaces it."""
        self._progress = (0, 0, 0, -1.0)
        if total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(done, total) / total))
        else:
            self.bar.setRange(0, 0)
        self.label.setText(text)
        self.show()

    def _render(self) -> None:
        done, failed, total, eta = self._progress
        seconds, reason = self._wait
        self.label.setText(progress_text(done, failed, total, eta, seconds, reason,
                                         verbs=self.verbs))
