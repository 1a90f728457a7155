"""Batch API jobs in the window (issue 15), as a user drives them: Captions > Send to Batch API…
against the fake Gemini Batch API through the real google-genai client, the Batch Jobs dialog,
the window's checks (made faster here) storing the captions into the grid and the editor, a job
followed by a new window after a restart, a missing API key said once, Cancel Job, and the reasons
a project cannot send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PyQt6.QtWidgets import QMessageBox

from loracap.core.backends.base import prepare_jpeg
from loracap.core.batches import flow
from loracap.core.batches.base import BatchJobRecord, JobState
from loracap.core.batches.flow import refresh_job
from loracap.core.project import Project
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.jobs.batch_jobs import BatchPlan, job_service
from loracap.ui import batch_jobs as batch_ui
from loracap.ui.batch_dialogs import BatchJobsDialog, BatchSubmitDialog
from loracap.ui.image_model import Roles
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.fixtures import TEST_API_KEY
from tests.fakes.gemini_batch_server import FakeGeminiBatchServer
from tests.fakes.photos import make_photo_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                              r"^This plugin does not support raise\(\)$", extend=True),
]

#: The window's check interval in these tests, in milliseconds.
POLL_MS = 150


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGeminiBatchServer]:
    with FakeGeminiBatchServer(TEST_API_KEY) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)
        monkeypatch.setenv("LORACAP_NO_UPLOAD_CACHE", "1")
        monkeypatch.setattr(batch_ui, "POLL_INTERVAL_MS", POLL_MS)
        monkeypatch.setattr(batch_ui, "OPEN_DELAY_MS", 0)
        yield server


def new_project(tmp_path: Path, *, backend: str = "gemini", profile: str = "space",
                count: int = 3) -> Path:
    folder = tmp_path / "hall"
    make_photo_folder(folder, count, size=(480, 360))
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall", backend=backend, profile=profile) as project:
        project.add_scanned(scan_folder(folder))
    return path


@pytest.fixture
def make_window(qtbot, app_settings: AppSettings, tmp_path: Path
                ) -> Iterator[Callable[[], MainWindow]]:
    windows: list[MainWindow] = []

    def make() -> MainWindow:
        window = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
        qtbot.addWidget(window)
        window.resize(1366, 768)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.batch_jobs.wait()
        if window.isVisible():
            window.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[BatchPlan]:
    """Answers the confirmation with the images without a caption; keeps what it showed."""
    shown: list[BatchPlan] = []

    def confirm(_parent: object, plan: BatchPlan) -> object:
        shown.append(plan)
        return plan.missing, False

    monkeypatch.setattr(batch_ui, "confirm_submission", confirm)
    return shown


def submit(qtbot, window: MainWindow) -> BatchJobRecord:
    with qtbot.waitSignal(window.batch_jobs.submit_ended, timeout=60_000) as blocker:
        window.batch_jobs.send_action.trigger()
    record = blocker.args[0]
    assert record is not None
    return record


def open_and_submit(qtbot, make_window: Callable[[], MainWindow], tmp_path: Path, *,
                    count: int = 3) -> tuple[Path, MainWindow, BatchJobRecord]:
    """A new project of ``count`` photos in a new window, its images sent as one job."""
    path = new_project(tmp_path, count=count)
    window = make_window()
    assert window.open_project(path)
    assert window.batch_jobs.send_action.isEnabled()
    return path, window, submit(qtbot, window)


def cell(dialog: BatchJobsDialog, row: int, name: str) -> str:
    item = dialog.table.item(row, dialog.COLUMNS.index(name))
    return item.text() if item is not None else ""


def test_submit_then_a_check_stores_the_captions_in_the_grid(
        qtbot, make_window, fake: FakeGeminiBatchServer, plans: list[BatchPlan],
        tmp_path: Path) -> None:
    _path, window, record = open_and_submit(qtbot, make_window, tmp_path)
    (plan,) = plans
    assert (plan.backend, len(plan.missing.image_ids)) == ("gemini", 3)
    estimate = plan.missing.estimate
    assert estimate is not None and estimate.requests == 3
    if estimate.cost is not None:
        assert plan.missing.cost == pytest.approx(estimate.cost / 2)
    (fake_job,) = fake.jobs.values()
    assert record.remote_id == fake_job.name and record.state is JobState.PENDING
    assert "Sent 3 image(s) to the Gemini Batch API as job 1" in \
        window.statusBar().currentMessage()
    assert window.batch_jobs.status_button.isVisible()
    assert window.batch_jobs.status_button.text() == "1 batch job running"

    window.batch_jobs.show_dialog()
    dialog = window.batch_jobs.dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1)
    assert cell(dialog, 0, "State") == "waiting to start"
    assert (cell(dialog, 0, "Service"), cell(dialog, 0, "Images"),
            cell(dialog, 0, "Waiting")) == ("Gemini", "3", "3")
    assert cell(dialog, 0, "Submitted") == "just now"
    assert dialog.cancel_button.isEnabled()

    fake.finish()  # the window's next check finds it ended and fetches it
    with qtbot.waitSignal(window.batch_jobs.fetch_ended, timeout=60_000) as blocker:
        pass
    done = blocker.args[0]
    assert (done.summary.stored, done.summary.failed, done.job.fetched) == (3, [], True)
    assert window.statusBar().currentMessage() == "Batch job 1: 3 captions stored."
    rows = [window.model.index(row, 0).data(Roles.RECORD) for row in range(3)]
    assert all(rec.caption is not None and rec.caption.provenance is Provenance.GENERATED
               for rec in rows)
    current = window.current_record()
    assert current is not None and current.caption is not None
    assert window.editor.body.toPlainText() == current.caption.body
    assert window.project.batch_of_versions(current.id) == [record.remote_id]
    qtbot.waitUntil(lambda: cell(dialog, 0, "State") == "finished")
    assert (cell(dialog, 0, "Done"), cell(dialog, 0, "Waiting")) == ("3", "0")
    assert not window.batch_jobs.status_button.isVisible()
    assert not dialog.cancel_button.isEnabled() and not dialog.fetch_button.isEnabled()


def test_an_edited_caption_is_kept_and_a_failure_keeps_its_reason(
        qtbot, make_window, fake: FakeGeminiBatchServer, plans: list[BatchPlan],
        tmp_path: Path) -> None:
    _path, window, _record = open_and_submit(qtbot, make_window, tmp_path)
    first, second, _third = window.project.images()
    window.show_image(first.id)
    window.editor.body.setPlainText("a hall I described myself")
    window.editor.flush()  # written while the job runs: a person's caption
    keys = {f"image-{second.id}"}

    def answer(key: str, request: object) -> object:
        if key in keys:
            return {"code": 400, "message": "The image was blocked by the safety filter."}
        from loracap.selftest.fake_gemini import default_responder

        return default_responder(request)  # type: ignore[arg-type]

    fake.finish(answer=answer)
    with qtbot.waitSignal(window.batch_jobs.fetch_ended, timeout=60_000):
        pass
    assert window.statusBar().currentMessage() == \
        "Batch job 1: 1 caption stored, 1 failed, 1 kept (edited meanwhile)."
    assert window.editor.body.toPlainText() == "a hall I described myself"
    records = {window.model.index(row, 0).data(Roles.RECORD).id:
               window.model.index(row, 0).data(Roles.RECORD) for row in range(3)}
    assert records[first.id].caption.provenance is Provenance.MANUAL
    assert records[second.id].caption is None
    assert "safety filter" in records[second.id].last_error
    assert window.model.index(window.model.row_of(second.id), 0).data(Roles.STATE) == "failed"
    window.batch_jobs.show_dialog()
    dialog = window.batch_jobs.dialog
    qtbot.waitUntil(lambda: cell(dialog, 0, "State") == "finished")
    assert (cell(dialog, 0, "Done"), cell(dialog, 0, "Failed"), cell(dialog, 0, "Kept")) == \
        ("1", "1", "1")


def test_a_job_is_followed_after_a_restart(qtbot, make_window, fake: FakeGeminiBatchServer,
                                           plans: list[BatchPlan], tmp_path: Path) -> None:
    path, first, record = open_and_submit(qtbot, make_window, tmp_path)
    first.close()
    fake.finish()  # the results come while LoRACap is closed

    second = make_window()
    with qtbot.waitSignal(second.batch_jobs.fetch_ended, timeout=60_000) as blocker:
        assert second.open_project(path)
    done = blocker.args[0]
    assert done.job.id == record.id and done.summary.stored == 3
    assert all(second.model.index(row, 0).data(Roles.RECORD).caption is not None
               for row in range(3))
    assert [job.fetched for job in second.batch_jobs.jobs] == [True]
    assert second.batch_jobs.status_button.isHidden()


def test_a_missing_key_is_said_once_and_its_jobs_wait_for_one(
        qtbot, make_window, fake: FakeGeminiBatchServer, plans: list[BatchPlan],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, first, record = open_and_submit(qtbot, make_window, tmp_path)
    first.close()
    fake.finish()
    with Project.open(path) as project:  # seen ended elsewhere; its results not fetched yet
        job = project.batch_job(record.id)
        service = job_service(project, job)
        try:
            assert refresh_job(project, service, job).state.ended
        finally:
            service.close()
    monkeypatch.delenv("GEMINI_API_KEY")  # and no key in the (test's) keychain

    window = make_window()
    shown: list[str] = []
    bar = window.statusBar()
    show_message = bar.showMessage

    def record_message(text: str, timeout: int = 0) -> None:
        shown.append(text)
        show_message(text, timeout)

    monkeypatch.setattr(bar, "showMessage", record_message)
    checks: list[None] = []
    window.batch_jobs.jobs_changed.connect(lambda: checks.append(None))
    fetched: list[object] = []
    window.batch_jobs.fetch_ended.connect(fetched.append)
    assert window.open_project(path)
    qtbot.waitUntil(lambda: len(checks) >= 4, timeout=20_000)  # the first check, 3 more

    def about_key() -> list[str]:
        return [text for text in shown if "No Gemini API key" in text]

    (said,) = about_key()
    assert said.startswith(f"Could not check job {record.id}: No Gemini API key found.")
    assert said.endswith("It is checked again once a key is set.")
    assert fetched == []  # an ended job is not fetched without a key either
    assert window.batch_jobs.status_button.text() == "1 batch job running"
    assert all(window.model.index(row, 0).data(Roles.RECORD).caption is None
               for row in range(3))

    window.batch_jobs.show_dialog()
    dialog = window.batch_jobs.dialog
    qtbot.waitUntil(lambda: "No Gemini API key" in dialog.note.text())
    assert len(about_key()) == 1
    dialog.refresh_button.click()  # the user asks: said again
    qtbot.waitUntil(lambda: len(about_key()) == 2)

    monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)  # the next check finds the key
    with qtbot.waitSignal(window.batch_jobs.fetch_ended, timeout=60_000) as blocker:
        pass
    assert blocker.args[0].summary.stored == 3
    assert shown[-1] == "Batch job 1: 3 captions stored."
    qtbot.waitUntil(lambda: "No Gemini API key" not in dialog.note.text())
    assert len(about_key()) == 2


def test_closing_during_a_fetch_loses_nothing(qtbot, make_window,
                                              fake: FakeGeminiBatchServer,
                                              plans: list[BatchPlan], tmp_path: Path) -> None:
    path, first, _record = open_and_submit(qtbot, make_window, tmp_path, count=6)
    fake.finish()
    first.batch_jobs.refresh()  # finds it ended and fetches it ...
    qtbot.waitUntil(lambda: first.batch_jobs.following)
    first.close()  # ... while the window closes: the fetch stops after what it stored
    assert not first.batch_jobs.following

    second = make_window()
    assert second.open_project(path)
    qtbot.waitUntil(lambda: all(
        second.model.index(row, 0).data(Roles.RECORD).caption is not None
        for row in range(6)), timeout=60_000)
    qtbot.waitUntil(lambda: [job.fetched for job in second.batch_jobs.jobs] == [True])
    versions = [second.project.batch_of_versions(rec.id) for rec in second.project.images()]
    assert all(len(batches) == 1 for batches in versions)  # each result stored once


def test_cancel_from_the_dialog_asks_and_keeps_what_finished(
        qtbot, make_window, fake: FakeGeminiBatchServer, plans: list[BatchPlan],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _path, window, _record = open_and_submit(qtbot, make_window, tmp_path)
    fake.start_running()
    window.batch_jobs.show_dialog()
    dialog = window.batch_jobs.dialog
    qtbot.waitUntil(lambda: cell(dialog, 0, "State") == "running")
    asked: list[str] = []

    def answer(_parent: object, _title: str, text: str, *_args: object) -> object:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    with qtbot.waitSignal(window.batch_jobs.fetch_ended, timeout=60_000) as blocker:
        dialog.cancel_button.click()
    assert asked == ["Cancel job 1? What it finished is kept."]
    (fake_job,) = fake.jobs.values()
    assert fake_job.state == "BATCH_STATE_CANCELLED"
    done = blocker.args[0]
    assert done.job.state is JobState.CANCELLED and done.summary.gone == 3
    assert "3 got no result (cancelled; Generate takes them again)" in \
        window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: cell(dialog, 0, "State") == "cancelled")
    assert "3 got no result" in cell(dialog, 0, "Note")
    assert all(window.model.index(row, 0).data(Roles.RECORD).caption is None
               for row in range(3))
    # The images are free again: the next job takes them.
    assert len(submit(qtbot, window).remote_id) > 0
    assert len(plans[-1].missing.image_ids) == 3


def test_a_refused_key_is_said_before_preparing_and_leaves_no_job(
        qtbot, make_window, fake: FakeGeminiBatchServer, plans: list[BatchPlan],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "revoked-key")  # the fake takes only TEST_API_KEY
    prepared: list[Path] = []

    def prepare(image: Path, max_side: int) -> bytes:
        prepared.append(image)
        return prepare_jpeg(image, max_side)

    monkeypatch.setattr(flow, "prepare_jpeg", prepare)
    path = new_project(tmp_path)
    window = make_window()
    assert window.open_project(path)
    errors: list[str] = []
    monkeypatch.setattr(window, "show_error", lambda text, title="": errors.append(text))
    with qtbot.waitSignal(window.batch_jobs.submit_ended, timeout=60_000) as blocker:
        window.batch_jobs.send_action.trigger()
    assert blocker.args == [None] and len(plans) == 1
    (error,) = errors
    assert error.startswith("The batch job was not sent: Gemini refused the API key")
    assert "API key not valid" in error  # the service's own words
    assert prepared == []
    qtbot.waitUntil(lambda: not window.batch_jobs.following)
    assert window.project.batch_jobs() == [] and window.batch_jobs.jobs == ()
    assert window.batch_jobs.status_button.isHidden() and window.progress.isHidden()
    assert fake.jobs == {} and fake.files == {}
    # With the key set right, the same images go as one job, prepared as usual.
    monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)
    assert window.batch_jobs.send_action.isEnabled()
    assert submit(qtbot, window).requests == 3 and len(prepared) == 3


def test_selected_images_are_offered(qtbot, make_window, fake: FakeGeminiBatchServer,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_project(tmp_path)
    window = make_window()
    assert window.open_project(path)
    window.view.selectAll()
    chosen: list[BatchPlan] = []

    def confirm(_parent: object, plan: BatchPlan) -> object:
        chosen.append(plan)
        dialog = BatchSubmitDialog(plan)
        assert dialog.selected_radio.text() == "The 3 selected images"
        dialog.selected_radio.setChecked(True)
        assert dialog.send_button.text() == "Send 3 Images"
        assert "half of" in dialog.estimate_label.text() or "unknown" in \
            dialog.estimate_label.text()
        return dialog.choice(), dialog.replacing()

    monkeypatch.setattr(batch_ui, "confirm_submission", confirm)
    record = submit(qtbot, window)
    assert record.requests == 3 and chosen[0].selected is not None


@pytest.mark.parametrize(("backend", "profile", "reason"), [
    ("wd14", "space", "has no batch API"),
    ("gemini", "multi-person", "Multi-person captions take several requests"),
])
def test_a_project_that_cannot_send_says_why(qtbot, make_window, fake: FakeGeminiBatchServer,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             backend: str, profile: str, reason: str) -> None:
    path = new_project(tmp_path, backend=backend, profile=profile)
    window = make_window()
    assert window.open_project(path)
    said: list[str] = []
    monkeypatch.setattr(batch_ui, "show_reason", lambda _parent, text: said.append(text))
    monkeypatch.setattr(batch_ui, "confirm_submission",
                        lambda *_args: pytest.fail("asked to confirm"))
    window.batch_jobs.send_action.trigger()
    assert len(said) == 1 and reason in said[0]
    assert "--batch" not in said[0]
    assert fake.jobs == {}
    assert not window.batch_jobs.busy


def test_the_shortcut_is_listed_once(make_window) -> None:
    window = make_window()
    shortcuts = dict(window.shortcut_list())
    assert shortcuts["Batch Jobs…"] == "Ctrl+Shift+B"
    assert list(shortcuts.values()).count("Ctrl+Shift+B") == 1
