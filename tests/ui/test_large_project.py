"""A large project opens in steps (issue 15, "Open 100,000 images…"): its first page of rows at
once, read straight from the file, while a background job opens the project (the checks that
read every row, the lock), then the other rows, the labels, tag counts and missing files.
Proved here with a small first page: every row arrives in order, filters and edits made before
the end hold (an update of an image whose row has not come yet too), the image the project was
left on is shown when its row arrives, a damaged file is still refused with its message, and
closing while it opens or loads is safe."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui import main_window as main_window_module
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.photos import make_photo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                              extend=True),
]

PAGE = 20
COUNT = 75


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    folder = tmp_path / "big"
    for number in range(COUNT):
        # Two folders hold files of the same name: the labels must tell them apart.
        sub = "a" if number < 40 else "b"
        make_photo(folder / sub / f"IMG_{number % 40:04d}.jpg", size=(32, 24), seed=number)
    path = folder / "big.loraproj"
    with Project.create(path, trigger="big") as project:
        project.add_scanned(scan_folder(folder))
        bodies = {rec.id: f"lamp, chair, tag{rec.id % 3}" for rec in project.images()}
        project.apply_edits(bodies, "Captions")
        ids = [rec.id for rec in project.images()]
        project.update_settings(current_image_id=ids[60])
    (folder / "b" / "IMG_0030.jpg").unlink()  # one file missing
    return path


@pytest.fixture
def window(qtbot, app_settings: AppSettings, tmp_path: Path, monkeypatch
           ) -> Iterator[MainWindow]:
    monkeypatch.setattr(main_window_module, "FIRST_PAGE", PAGE)
    main = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
    qtbot.addWidget(main)
    main.show()
    yield main
    if main.isVisible():
        main.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


@pytest.fixture
def gate(monkeypatch) -> Iterator[threading.Event]:
    """Holds the rows after the first page back until set (then they come at once)."""
    released = threading.Event()
    original = Project.image_row_parts

    def held(self: Project, *args, **kwargs):  # type: ignore[no-untyped-def]
        released.wait(20)
        yield from original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "image_row_parts", held)
    yield released
    released.set()


def _lock_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM lock").fetchone()[0])
    finally:
        conn.close()


def test_the_first_page_then_every_row(qtbot, window: MainWindow, project_path: Path) -> None:
    with qtbot.waitSignal(window.loaded, timeout=20_000):
        assert window.open_project(project_path)
        # The first page is shown before the project is even open: read from the file.
        assert window.model.rowCount() == PAGE and window.model.loading
        assert window.project is None
        assert window.left_stack.currentWidget() is not window.welcome  # the grid, painted
    model = window.model
    assert window.project is not None
    assert model.rowCount() == COUNT and not model.loading
    paths = [model.record(row).path for row in range(COUNT)]
    assert paths == sorted(paths, key=str.casefold)
    assert [model.record(row) for row in range(COUNT)] == window.project.images()
    labels = {model.record(row).path: model.index(row, 0).data() for row in range(COUNT)}
    assert labels["a/IMG_0001.jpg"] == "a/IMG_0001.jpg"  # b/IMG_0001.jpg exists too
    assert labels["a/IMG_0039.jpg"] == "IMG_0039.jpg"
    assert model.tag_counter().counts()["lamp"] == COUNT
    [gone] = [rec.id for rec in window.project.images() if rec.path == "b/IMG_0030.jpg"]
    assert [rec.id for rec in model.records() if model.is_missing(rec.id)] == [gone]
    assert "missing" in window.statusBar().currentMessage()
    assert model.status_counts() == {"valid": COUNT, "reviewed": 0, "failed": 0,
                                     "uncaptioned": 0}
    # The image the project was left on was shown when its row arrived.
    assert window.current_record().id == window.project.settings.current_image_id


def test_filters_and_edits_before_the_end_hold(qtbot, window: MainWindow, project_path: Path,
                                               gate: threading.Event) -> None:
    assert window.open_project(project_path)
    window.filter_edit.setText("tag:tag1")  # on the first page, before the project is open
    qtbot.waitUntil(lambda: window.project is not None, timeout=20_000)
    assert window.model.loading
    project = window.project
    first = window.model.record(0)
    project.edit_caption(first.id, "lamp, sofa")
    window.refresh_image(first.id)
    # An image whose row has not come yet: its update is applied when the row comes.
    late = max(project.images(), key=lambda rec: rec.path.casefold())
    assert window.model.row_of(late.id) < 0
    project.edit_caption(late.id, "lamp, tag1, rug")
    window.refresh_image(late.id)
    with qtbot.waitSignal(window.loaded, timeout=20_000):
        gate.set()
    model = window.model
    assert model.record(model.row_of(late.id)).caption.body == "lamp, tag1, rug"
    counts = model.tag_counter().counts()
    assert counts["sofa"] == 1 and counts["rug"] == 1
    assert counts["chair"] == COUNT - 2
    expected = sum(1 for rec in project.images()
                   if rec.caption and "tag1" in rec.caption.body.split(", "))
    qtbot.waitUntil(lambda: window.proxy.rowCount() == expected)


def test_a_damaged_large_project_is_refused_after_its_first_page(
        qtbot, window: MainWindow, project_path: Path, monkeypatch) -> None:
    conn = sqlite3.connect(project_path)
    with conn:  # the last image, far from the first page, has a rating no project holds
        conn.execute("UPDATE images SET rating = 9 WHERE id = (SELECT max(id) FROM images)")
    conn.close()
    errors: list[tuple[str, str]] = []
    monkeypatch.setattr(window, "show_error",
                        lambda message, title="LoRACap": errors.append((title, message)))
    assert window.open_project(project_path)
    assert window.model.rowCount() == PAGE
    qtbot.waitUntil(lambda: bool(errors), timeout=20_000)
    [(title, message)] = errors
    assert title == "Cannot open the project"
    assert message.startswith("big.loraproj is damaged: ") and "has the rating" in message
    assert window.project is None and window.model.rowCount() == 0
    assert not window.model.loading and window.left_stack.currentWidget() is window.welcome
    assert _lock_rows(project_path) == 0


def test_closing_while_it_opens(qtbot, window: MainWindow, project_path: Path,
                                monkeypatch) -> None:
    entered, release = threading.Event(), threading.Event()
    original = Project.open.__func__  # type: ignore[attr-defined]

    def slow_open(cls: type[Project], *args, **kwargs) -> Project:  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(20)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Project, "open", classmethod(slow_open))
    assert window.open_project(project_path)
    qtbot.waitUntil(entered.is_set, timeout=20_000)
    # Closing waits for the open under way (released a moment later), then closes it again.
    threading.Timer(0.3, release.set).start()
    window.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)
    assert window.project is None
    assert _lock_rows(project_path) == 0
    monkeypatch.undo()
    with Project.open(project_path) as reopened:  # not locked by the project opened meanwhile
        assert len(reopened.images()) == COUNT


def test_closing_while_it_loads(qtbot, window: MainWindow, project_path: Path,
                                gate: threading.Event) -> None:
    assert window.open_project(project_path)
    qtbot.waitUntil(lambda: window.project is not None, timeout=20_000)
    assert window.model.loading
    # Closing waits for the query under way (released a moment later), then closes the file.
    threading.Timer(0.3, gate.set).start()
    window.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)
    assert window.project is None
    assert _lock_rows(project_path) == 0


def test_another_project_opened_meanwhile_replaces_it(qtbot, window: MainWindow,
                                                      project_path: Path, tmp_path: Path,
                                                      gate: threading.Event) -> None:
    small = tmp_path / "small"
    make_photo(small / "one.jpg", size=(32, 24), seed=1)
    with Project.create(small / "small.loraproj", trigger="small") as project:
        project.add_scanned(scan_folder(small))
    assert window.open_project(project_path)
    threading.Timer(0.3, gate.set).start()
    assert window.open_project(small / "small.loraproj")
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)
    assert window.project is not None and window.project.path == small / "small.loraproj"
    assert [window.model.record(0).file_name] == ["one.jpg"] and window.model.rowCount() == 1
    assert _lock_rows(project_path) == 0
