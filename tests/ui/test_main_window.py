"""The real main window, driven as a user drives it, against the fake Gemini server."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PyQt6.QtGui import QDropEvent, QKeySequence
from PyQt6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QMessageBox

from loracap.core.backends.base import BackendConfig
from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.errors import ApiKeyMissingError
from loracap.core.project import CaptionMode, Project, Provenance
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from loracap.ui import dialogs as dialogs_mod
from loracap.ui import main_window as main_window_mod
from loracap.ui.export_dialog import ExportDialog
from loracap.ui.image_model import Roles
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "ide_main_hall"
    make_photo_folder(photos, 6, size=(480, 360))
    return photos


@pytest.fixture
def make_window(qtbot, app_settings: AppSettings, server: FakeGeminiServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch):
    """Windows with the real captioner factory (the backend registry), whose Gemini key and
    address point at the fake server."""
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
    windows: list[MainWindow] = []

    def make() -> MainWindow:
        window = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.isVisible():
            window.close()


@pytest.fixture
def no_dialogs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Message boxes never block a test; their texts are recorded."""
    shown: list[str] = []

    def warning(_parent, _title, text, *args, **kwargs):
        shown.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", staticmethod(warning))
    return shown


def make_project(folder: Path) -> Path:
    path = folder / "ide_main_hall.loraproj"
    with Project.create(path, trigger="ide_main_hall") as project:
        project.add_scanned(scan_folder(folder))
    return path


def generate(qtbot, window: MainWindow, mode: CaptionMode = CaptionMode.MISSING):
    with qtbot.waitSignal(window.batch_finished, timeout=30_000) as blocker:
        window.generate(mode)
    return blocker.args[0]


def current_row(window: MainWindow) -> int:
    return window.view.currentIndex().row()


def test_new_project_dialog_creates_and_opens_the_project(qtbot, make_window, folder: Path,
                                                          no_dialogs) -> None:
    window = make_window()

    def drive_dialog() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QDialog)
        buttons = dialog.findChild(QDialogButtonBox)
        assert buttons is not None
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        qtbot.waitUntil(ok.isEnabled, timeout=10_000)  # the scan has finished
        ok.click()

    QTimer.singleShot(0, drive_dialog)
    window.new_project(folder)
    assert window.project is not None
    assert window.project.path == folder / "ide_main_hall.loraproj"
    assert window.model.rowCount() == 6
    assert "ide_main_hall" in window.trigger_label.text()
    assert current_row(window) == 0


def test_generate_navigate_edit_undo_reopen_export(qtbot, make_window, folder: Path,
                                                   no_dialogs, server: FakeGeminiServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_project(folder)
    window = make_window()
    assert window.open_project(path)
    summary = generate(qtbot, window)
    assert (summary.done, summary.failed) == (6, [])
    states = {window.model.index(r, 0).data(Roles.STATE) for r in range(6)}
    assert states == {"generated"}
    first = window.current_record()
    assert first is not None
    qtbot.waitUntil(lambda: window.editor.body.toPlainText() != "")
    assert window.editor.body.toPlainText() == window.project.image(first.id).caption.body

    # Keyboard navigation works while the caption editor has focus.
    window.editor.body.setFocus()
    qtbot.keyClick(window.editor.body, Qt.Key.Key_PageDown)
    assert current_row(window) == 1
    qtbot.keyClick(window.editor.body, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert current_row(window) == 2
    qtbot.keyClick(window.editor.body, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.editor.body, Qt.Key.Key_PageUp)
    assert current_row(window) == 0

    # Typing saves by itself (debounced) and makes the caption "edited".
    generated = window.editor.body.toPlainText()
    window.editor.body.moveCursor(window.editor.body.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.editor.body, ", red chairs")
    qtbot.waitUntil(lambda: window.project.image(first.id).caption.provenance
                    is Provenance.EDITED, timeout=5000)
    assert window.project.image(first.id).caption.body == generated + ", red chairs"
    assert window.model.index(0, 0).data(Roles.STATE) == "edited"

    # Undo and redo from the keyboard, with the editor focused.
    qtbot.keyClick(window.editor.body, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    caption = window.project.image(first.id).caption
    assert caption.body == generated and caption.provenance is Provenance.GENERATED
    assert window.editor.body.toPlainText() == generated
    qtbot.keyClick(window.editor.body, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.project.image(first.id).caption.provenance is Provenance.EDITED

    # Move on, close, reopen: the edit survives and the image the user was on is selected.
    window.navigate(1)
    window.navigate(1)
    window.close()
    again = make_window()
    assert again.open_project(path)
    assert current_row(again) == 2
    assert again.project.image(first.id).caption.body == generated + ", red chairs"

    # Export from the window (Ctrl+E), through the real dialog, and read the zip back.
    exported: list[object] = []
    monkeypatch.setattr(dialogs_mod, "show_export_done", lambda _p, r: exported.append(r))

    def click_export() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExportDialog)
        qtbot.waitUntil(dialog.export_button.isEnabled)
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)

    again.activateWindow()
    qtbot.waitUntil(again.isActiveWindow)
    QTimer.singleShot(0, click_export)  # runs once the dialog's own event loop is going
    qtbot.keyClick(again.view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert len(exported) == 1
    result = exported[0]
    assert result.path == folder / "ide_main_hall_training.zip"
    with zipfile.ZipFile(result.path) as archive:
        assert archive.read("IMG_0001.txt").decode() == (
            f"photo of ide_main_hall {generated}, red chairs")


def test_cancel_keeps_what_arrived(qtbot, make_window, folder: Path, no_dialogs,
                                   server: FakeGeminiServer) -> None:
    server.latency_s = 0.3
    window = make_window()
    window.open_project(make_project(folder))
    window.settings.workers = 1
    with qtbot.waitSignal(window.batch_finished, timeout=30_000) as blocker:
        window.generate(CaptionMode.MISSING)
        assert window.progress.isVisible()
        qtbot.waitUntil(lambda: window.project.stats().captioned >= 1, timeout=10_000)
        window.cancel_batch()
    summary = blocker.args[0]
    assert summary.cancelled and summary.done < 6
    assert window.project.stats().captioned == summary.done
    assert not window.progress.isVisible()
    assert window.generate_action.isEnabled()


def test_invalid_key_stops_with_a_plain_message(qtbot, make_window, folder: Path,
                                                no_dialogs, server: FakeGeminiServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    window._captioner_factory = lambda config: GeminiCaptioner("bad-key", config.model,
                                                               base_url=server.base_url)
    stops: list[tuple[str, str, bool]] = []
    opened: list[bool] = []
    monkeypatch.setattr(dialogs_mod, "show_stop", lambda _parent, text, advice, **kw: (
        stops.append((text, advice, kw["offer_settings"])) or True))
    monkeypatch.setattr(main_window_mod.SettingsDialog, "exec",
                        lambda self: opened.append(True) or 0)
    summary = generate(qtbot, window)
    assert summary.stop_error is not None
    # One message, with what to do and a way to the key; no image is marked failed.
    ((text, advice, offer_settings),) = stops
    assert text.startswith("Captioning stopped: Gemini refused the API key")
    assert "Set a valid Gemini API key in File > Settings…" in advice
    assert "not captioned yet" in advice and "Traceback" not in text + advice
    assert offer_settings and opened == [True]
    assert window.project.stats().failed == 0
    states = {window.model.index(r, 0).data(Roles.STATE) for r in range(window.model.rowCount())}
    assert states == {"uncaptioned"}


def test_missing_key_asks_for_one(qtbot, make_window, folder: Path, no_dialogs,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    asked: list[bool] = []

    def no_key(_config: BackendConfig) -> GeminiCaptioner:
        raise ApiKeyMissingError("No Gemini API key.")

    monkeypatch.setattr(main_window_mod.ApiKeyDialog, "exec",
                        lambda self: asked.append(True) or 0)
    window._captioner_factory = no_key
    window.generate(CaptionMode.MISSING)
    assert asked == [True]
    assert window.runner is None


def test_recaptioning_asks_before_replacing_a_persons_caption(
    qtbot, make_window, folder: Path, no_dialogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    record = window.current_record()
    window.project.edit_caption(record.id, "my own words")
    questions: list[str] = []

    def keep(_parent, _title, text, *args, **kwargs):
        questions.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", staticmethod(keep))
    summary = generate(qtbot, window, CaptionMode.ALL)
    assert "1 image(s) have captions you edited" in questions[0]
    assert summary.total == 5
    assert window.project.image(record.id).caption.body == "my own words"


def test_filters_narrow_the_grid(qtbot, make_window, folder: Path, no_dialogs) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    window.project.edit_caption(window.model.record(0).id, "lobby")
    window.refresh_image(window.model.record(0).id)
    window.state_filter.setCurrentIndex(
        [label for label, _ in main_window_mod.STATE_FILTERS].index("Written by you"))
    assert window.proxy.rowCount() == 1
    window.state_filter.setCurrentIndex(0)
    qtbot.keyClicks(window.filter_edit, "IMG_0003")
    assert window.proxy.rowCount() == 1


def test_metadata_preview_shows_the_export_text(qtbot, make_window, folder: Path,
                                                no_dialogs) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    window.project.edit_caption(window.model.record(1).id, "glass doors")
    window.tabs.setCurrentWidget(window.metadata_view)
    assert window.metadata_view.toPlainText() == "photo of ide_main_hall glass doors\n"


def test_dropping_a_folder_starts_a_new_project(qtbot, make_window, folder: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    window = make_window()
    started: list[Path] = []
    monkeypatch.setattr(window, "new_project", lambda f=None: started.append(f))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(QPoint(10, 10)), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert started == [folder]


def test_window_remembers_its_geometry(qtbot, make_window, app_settings: AppSettings) -> None:
    window = make_window()
    # The window fits a 1024x768 screen with every panel open.
    assert window.minimumSizeHint().width() <= 1024
    # (The offscreen test screen is 800x600 and restoreGeometry keeps windows on screen.)
    window.history_dock.hide()
    window.checks_dock.hide()
    window.tags_dock.hide()
    QApplication.processEvents()  # the layout learns its new minimum size
    width = window.minimumSizeHint().width()  # two thumbnail columns and the editor
    assert width <= 800
    window.resize(width, 520)
    window.close()
    geometry, _state, splitter = app_settings.window_state()
    assert not geometry.isEmpty() and not splitter.isEmpty()
    again = make_window()
    assert (again.size().width(), again.size().height()) == (width, 520)
    assert not again.history_dock.isVisible() and not again.tags_dock.isVisible()


def test_a_caption_being_typed_is_never_replaced(qtbot, make_window, folder: Path,
                                                 no_dialogs, server: FakeGeminiServer) -> None:
    server.latency_s = 0.5
    window = make_window()
    window.open_project(make_project(folder))
    window.settings.workers = 1
    window.editor._timer.setInterval(60_000)  # the user is still typing: nothing saved yet
    first = window.current_record()
    with qtbot.waitSignal(window.batch_finished, timeout=30_000):
        window.generate(CaptionMode.MISSING)  # image 1 is the first request
        qtbot.keyClicks(window.editor.body, "my own words")
    assert window.editor.body.toPlainText() == "my own words"
    window.editor.flush()
    caption = window.project.image(first.id).caption
    assert caption.body == "my own words" and caption.provenance is Provenance.EDITED
    assert any(v.provenance is Provenance.GENERATED for v in window.project.history(first.id))


def test_first_start_shows_how_to_begin(qtbot, make_window, folder: Path, no_dialogs) -> None:
    window = make_window()
    assert window.left_stack.currentWidget() is window.welcome
    assert not window.generate_action.isEnabled() and not window.export_action.isEnabled()
    window.open_project(make_project(folder))
    assert window.left_stack.currentWidget() is not window.welcome
    assert window.generate_action.isEnabled()


def test_help_opens_the_log_folder(qtbot, app_settings: AppSettings, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(main_window_mod.QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    window = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"),
                        log_dir=tmp_path / "logs")
    qtbot.addWidget(window)
    menus = [action.text() for action in window.menuBar().actions()]
    assert "&Help" in menus
    window.log_folder_action.trigger()
    assert opened == [str(tmp_path / "logs")] and (tmp_path / "logs").is_dir()


def test_macos_file_open_event_opens_the_project(qtbot, make_window, folder: Path,
                                                 no_dialogs) -> None:
    from PyQt6.QtCore import QEvent

    from loracap.ui.app import FileOpenFilter

    class FileOpen:  # PyQt6 cannot construct a QFileOpenEvent; this has its two methods
        def __init__(self, file: str) -> None:
            self._file = file

        def type(self) -> QEvent.Type:
            return QEvent.Type.FileOpen

        def file(self) -> str:
            return self._file

    window = make_window()
    path = make_project(folder)
    assert FileOpenFilter(window).eventFilter(QApplication.instance(), FileOpen(str(path)))
    qtbot.waitUntil(lambda: window.project is not None)
    assert window.project.path == path


def test_keyboard_shortcuts_are_listed(qtbot, make_window) -> None:
    window = make_window()
    shortcuts = dict(window.shortcut_list())
    assert shortcuts["New Project from Folder…"] == "Ctrl+N"
    assert shortcuts["Export…"] == "Ctrl+E"
    assert "Ctrl+Z" in shortcuts["Undo"] and "Ctrl+Shift+Z" in shortcuts["Redo"]
    assert "PgDown" in shortcuts["Next Image"] and "Ctrl+Right" in shortcuts["Next Image"]
    assert shortcuts["Generate Captions"] == "Ctrl+G"
    for name, keys in shortcuts.items():  # no key listed twice ("Ctrl+Shift+Z, Ctrl+Shift+Z")
        listed = keys.split(", ")
        assert len(listed) == len(set(listed)), (name, keys)
    # On Linux desktops the standard Redo key is Ctrl+Shift+Z, the extra key given for Redo.
    redo = window.add_action("Redo", lambda: None,
                             [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Shift+Z")])
    assert [k.toString() for k in redo.shortcuts()] == ["Ctrl+Shift+Z"]


def test_filter_box_speaks_the_query_language(qtbot, make_window, folder: Path,
                                              no_dialogs) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    window.project.edit_caption(window.model.record(0).id, "lobby, red sofa")
    window.refresh_image(window.model.record(0).id)
    window.project.edit_caption(window.model.record(1).id, "lobby, blue sofa")
    window.refresh_image(window.model.record(1).id)
    qtbot.keyClicks(window.filter_edit, 'tag:"red sofa" OR name:IMG_0006*')
    assert window.proxy.rowCount() == 2
    window.filter_edit.clear()
    qtbot.keyClicks(window.filter_edit, "state:manual -tag:lobby")
    assert window.proxy.rowCount() == 0
    window.filter_edit.clear()
    qtbot.keyClicks(window.filter_edit, "state:manual (")  # unfinished: last good filter stays
    assert window.proxy.rowCount() == 2
    assert "position" in window.statusBar().currentMessage()


def test_editor_counts_words_characters_and_clip_tokens(qtbot, make_window, folder: Path,
                                                         no_dialogs) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    qtbot.keyClicks(window.editor.body, "lobby, red sofa")
    label = window.editor.word_count.text()
    # "photo of ide_main_hall lobby, red sofa": 6 words, 38 characters
    assert "6 words · 38 chars" in label and "tokens" in label
    assert "over" not in label
    window.editor.body.setPlainText(", ".join(["wooden chair"] * 40))
    assert "over 75" in window.editor.word_count.text()


def test_review_from_the_keyboard(qtbot, make_window, folder: Path, no_dialogs) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.view.setFocus()
    first = window.current_record()
    qtbot.keyClick(window.view, Qt.Key.Key_A)
    qtbot.keyClick(window.view, Qt.Key.Key_4)
    rec = window.project.image(first.id)
    assert (rec.review, rec.rating) == (Review.APPROVED, 4)
    assert window.review_status.text() == "1 of 6 reviewed · 0 failed · 6 uncaptioned"
    assert "Approved" in window.review_label.text()
    window.navigate(1)
    qtbot.keyClick(window.view, Qt.Key.Key_R)
    second = window.current_record()
    assert second.review is Review.REJECTED
    # Typing in the caption editor types; it does not review.
    window.navigate(1)
    window.editor.body.setFocus()
    qtbot.keyClicks(window.editor.body, "a red room")
    third = window.current_record()
    assert window.project.image(third.id).review is Review.UNREVIEWED
    assert window.editor.body.toPlainText() == "a red room"
    # A note is saved when the field is left.
    window.note_edit.setFocus()
    qtbot.keyClicks(window.note_edit, "too dark")
    qtbot.keyClick(window.note_edit, Qt.Key.Key_Return)
    assert window.project.image(third.id).note == "too dark"
    # The filter knows review marks.
    window.filter_edit.setText("review:approved|rejected")
    assert window.proxy.rowCount() == 2


def test_filtering_away_the_image_being_typed_saves_it(qtbot, make_window, folder: Path,
                                                        no_dialogs) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    typed = window.current_record()
    window.editor._timer.setInterval(60_000)  # still typing: nothing saved yet
    qtbot.keyClicks(window.editor.body, "half a sentence")
    window.filter_edit.setText("name:IMG_0004*")  # hides the image being edited
    assert window.proxy.rowCount() == 1
    qtbot.waitUntil(lambda: window.model.index(0, 0).data(Roles.STATE) == "manual")
    assert window.project.image(typed.id).caption.body == "half a sentence"


def test_nothing_is_editable_on_an_invalid_file(qtbot, make_window, folder: Path,
                                                no_dialogs) -> None:
    (folder / "broken.jpg").write_bytes(b"not a picture " * 40)
    window = make_window()
    window.open_project(make_project(folder))
    generate(qtbot, window)  # a batch finishing re-enables the window's actions

    def editable() -> list[bool]:
        return [window.editor.body.isEnabled(), window.chips.input.isEnabled(),
                window.note_edit.isEnabled(), window.editor.caption_button.isEnabled()]

    for _ in range(2):  # reached from another image, and again after a round trip
        window.show_image(next(r.id for r in window.model.records() if not r.valid))
        assert editable() == [False, False, False, False]
        assert "Invalid file" in window.editor.provenance_label.text()
        window.navigate(1)
        assert editable() == [True, True, True, True]


def test_the_strip_counts_down_while_the_rate_limit_holds_the_batch(
        qtbot, make_window, folder: Path, no_dialogs, server: FakeGeminiServer) -> None:
    window = make_window()
    window.open_project(make_project(folder))
    window.settings.workers = 1
    # The first request is answered with a per-minute 429 asking for 3 s.
    server.queue_replies(Reply.rate_limited(retry_delay_s=3.0))
    with qtbot.waitSignal(window.batch_finished, timeout=30_000):
        window.generate(CaptionMode.MISSING)
        qtbot.waitUntil(lambda: "waiting for the rate limit" in window.progress.label.text(),
                        timeout=10_000)
        text = window.progress.label.text()
        assert text.startswith("Captioning 0 of 6 · waiting for the rate limit · next "
                               "request in ")
        assert window.progress.isVisible()
        # The countdown goes on; the strip never says more than the wait the server asked.
        seconds = int(text.split("next request in ")[1].split(" s")[0])
        assert 1 <= seconds <= 3
        qtbot.waitUntil(lambda: "waiting" not in window.progress.label.text(), timeout=10_000)
    assert window.project.stats().captioned == 6
