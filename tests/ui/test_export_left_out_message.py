"""The window's "Export Finished" message names the images an export left out because their
pixels did not decode (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox

from loracap.core.exports import ExportFormat, ExportResult, LeftOutImage
from loracap.core.project import Project
from loracap.ui import dialogs
from loracap.ui.export_dialog import ExportDialog
from tests.core.test_export_undecodable import GARBAGE_REASON, captioned, make_garbage_jpeg
from tests.fakes.photos import make_photo


def result_with(left_out: list[LeftOutImage]) -> ExportResult:
    return ExportResult(path=Path("/tmp/hall_training.zip"), format=ExportFormat.REPLICATE,
                        images=2, captions=2, uncaptioned=[], renames=[], conversions=[],
                        bytes_written=10, undecodable=left_out)


def test_the_summary_names_them() -> None:
    one = result_with([LeftOutImage("a.jpg", "truncated", marked_invalid=True)])
    assert dialogs.export_summary(one) == (
        "2 caption(s) written. 1 image did not decode and was left out: a.jpg. It is now "
        "marked invalid.")
    many = result_with([LeftOutImage(f"{i}.jpg", "truncated") for i in range(7)])
    assert dialogs.export_summary(many) == (
        "2 caption(s) written. 7 images did not decode and were left out: 0.jpg, 1.jpg, "
        "2.jpg, 3.jpg, 4.jpg and 2 more.")


def test_the_export_finished_message_of_the_window(qtbot, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "hall"
    make_photo(folder / "IMG_1.jpg", size=(800, 600), seed=1)
    make_photo(folder / "IMG_2.jpg", size=(800, 600), seed=2)
    make_garbage_jpeg(folder / "IMG_3.jpg")
    monkeypatch.setattr(dialogs, "open_folder", lambda _folder: True)
    shown: list[tuple[str, str, str]] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        shown.append((box.text(), box.informativeText(), box.detailedText()))
        ok = box.button(QMessageBox.StandardButton.Ok)
        assert ok is not None
        ok.click()

    with Project.open(captioned(folder)) as project:
        dialog = ExportDialog(project)
        qtbot.addWidget(dialog)
        dialog.show()
        QTimer.singleShot(0, answer)
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(shown), timeout=20_000)
        assert not project.image(next(rec.id for rec in project.images()
                                      if rec.file_name == "IMG_3.jpg")).valid
    text, informative, detail = shown[0]
    assert text == f"Exported 2 image(s) to {folder / 'hall_training.zip'}."
    assert informative == ("2 caption(s) written. 1 image did not decode and was left out: "
                           "IMG_3.jpg. It is now marked invalid.")
    assert detail == f"IMG_3.jpg left out, it did not decode: {GARBAGE_REASON}"
