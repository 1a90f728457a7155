"""Question-answer pairs in the window (issue 14, "Reviewing"): a batch through the fake Gemini
server from the window, the panel's keys (Enter/C confirm, 0-5 score, Delete), editing in place,
adding a question, regenerating one answer, each change one undo step; the grid's counts and
the qa: filter; the export dialog read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QInputDialog, QMessageBox

from loracap.core.project import Project
from loracap.core.qa.generate import QAOptions
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.image_model import Roles
from loracap.ui.main_window import MainWindow
from loracap.ui.qa_dialogs import QAExportDialog
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                              extend=True),
]


@pytest.fixture
def window(qtbot, app_settings: AppSettings, tmp_path: Path, gemini_server: FakeGeminiServer
           ) -> Iterator[MainWindow]:
    main = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
    qtbot.addWidget(main)
    main.resize(1366, 768)
    main.show()
    folder = tmp_path / "market"
    make_photo_folder(folder, 3, size=(640, 480))
    path = folder / "market.loraproj"
    with Project.create(path, trigger="market") as project:
        project.add_scanned(scan_folder(folder))
    assert main.open_project(path)
    main.qa_dock.show()
    with qtbot.waitSignal(main.batch_finished, timeout=60_000) as blocker:
        main.generate_qa(QAOptions(questions=2).checked())
    assert blocker.args[0].done == 3
    gemini_server.reset()
    main.show_image(main.project.images()[0].id)
    yield main
    main.qa_editing.wait()
    if main.isVisible():
        main.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


def entries(window: MainWindow):
    return window.project.qa_entries(window.current_record().id)


def test_a_batch_fills_the_panel_and_the_grid(window: MainWindow) -> None:
    panel = window.qa_editing.panel
    assert panel.tree.topLevelItemCount() == 2
    assert "2 pairs" in panel.title.text()
    counts = [window.model.index(row, 0).data(Roles.QA) for row in range(3)]
    assert [count.total for count in counts] == [2, 2, 2]
    assert "Wrote question-answer pairs for 3 of 3" in window.statusBar().currentMessage()
    assert all(record.caption is None for record in window.project.images())


def test_keys_confirm_and_score_and_undo_takes_them_back(qtbot, window: MainWindow) -> None:
    panel = window.qa_editing.panel
    panel.tree.setFocus()
    panel.tree.setCurrentItem(panel.tree.topLevelItem(0))
    qtbot.keyClick(panel.tree, Qt.Key.Key_Return)
    first = entries(window)[0]
    assert first.confirmed
    qtbot.keyClick(panel.tree, Qt.Key.Key_4)
    assert entries(window)[0].score == 4
    assert "Score 4" in window.undo_action.text()
    # The grid and the filter language see it.
    window.filter_edit.setText("qa_score>=4")
    qtbot.waitUntil(lambda: window.proxy.rowCount() == 1)
    window.filter_edit.setText("qa:unconfirmed")
    qtbot.waitUntil(lambda: window.proxy.rowCount() == 3)
    window.filter_edit.setText("")
    window.undo()
    assert entries(window)[0].score is None
    window.undo()
    assert not entries(window)[0].confirmed
    qtbot.keyClick(panel.tree, Qt.Key.Key_C)
    assert entries(window)[0].confirmed


def test_editing_an_answer_in_place_keeps_the_history(qtbot, window: MainWindow) -> None:
    panel = window.qa_editing.panel
    panel.tree.setCurrentItem(panel.tree.topLevelItem(1))
    panel.answer.setFocus()
    panel.answer.setPlainText("Three red umbrellas over the stall.")
    panel.save_texts()
    entry = entries(window)[1]
    assert entry.answer == "Three red umbrellas over the stall."
    assert entry.provenance.value == "edited"
    assert [v.provenance.value for v in window.project.qa_history(entry.id)] == [
        "generated", "edited"]
    window.undo()
    assert entries(window)[1].answer != "Three red umbrellas over the stall."


def test_add_delete_and_regenerate(qtbot, window: MainWindow, monkeypatch,
                                   gemini_server: FakeGeminiServer) -> None:
    panel = window.qa_editing.panel
    monkeypatch.setattr(QInputDialog, "getText",
                        staticmethod(lambda *a, **k: ("How many awnings are striped?", True)))
    panel.add_button.click()
    added = entries(window)[-1]
    assert (added.question, added.answer) == ("How many awnings are striped?", "")
    assert panel.current_entry().id == added.id
    gemini_server.queue_replies(Reply.json({"answers": ["Two of them."]}))
    panel.regenerate_button.click()
    qtbot.waitUntil(lambda: not window.qa_editing.busy, timeout=20_000)
    assert entries(window)[-1].answer == "Two of them."
    assert len(gemini_server.generate_requests) == 1
    # A confirmed answer is replaced only when the user says yes.
    window.project.edit_qa(added.id, confirmed=True, label="Confirm")
    window.refresh_image(added.image_id)
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *a, **k: QMessageBox.StandardButton.No))
    panel.select_entry(added.id)
    panel.regenerate_button.click()
    assert len(gemini_server.generate_requests) == 1  # nothing sent
    panel.tree.setFocus()
    qtbot.keyClick(panel.tree, Qt.Key.Key_Delete)
    assert len(entries(window)) == 2
    window.undo()
    assert [e.id for e in entries(window)][-1] == added.id


def test_the_export_dialog_writes_what_the_reader_loads(qtbot, window: MainWindow,
                                                        tmp_path: Path) -> None:
    dialog = QAExportDialog(window, window.project)
    qtbot.addWidget(dialog)
    dialog.style.setCurrentIndex(dialog.style.findData("llava"))
    out = tmp_path / "llava.json"
    dialog.out.setText(str(out))
    dialog.start_export()
    qtbot.waitUntil(lambda: dialog.result_text != "", timeout=20_000)
    assert dialog.result_text.startswith("Wrote 6 pairs of 3 images")
    records = json.loads(out.read_text(encoding="utf-8"))
    assert len(records) == 3 and all(len(r["conversations"]) == 4 for r in records)
