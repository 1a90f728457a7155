"""A large project opens in steps (issue 15, "Open 100,000 images…"): the first page of rows at
once, the rest, the labels, tag counts and missing files from a background job. Proved here
with a small first page: every row arrives in order, filters and edits made before the end
hold, the image the project was left on is shown when its row arrives, and closing while it
loads is safe."""

from __future__ import annotations

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


def test_the_first_page_then_every_row(qtbot, window: MainWindow, project_path: Path) -> None:
    with qtbot.waitSignal(window.loaded, timeout=20_000):
        assert window.open_project(project_path)
        assert window.model.rowCount() == PAGE and window.model.loading
    model = window.model
    assert model.rowCount() == COUNT and not model.loading
    paths = [model.record(row).path for row in range(COUNT)]
    assert paths == sorted(paths, key=str.casefold)
    labels = {model.record(row).path: model.index(row, 0).data() for row in range(COUNT)}
    assert labels["a/IMG_0001.jpg"] == "a/IMG_0001.jpg"  # b/IMG_0001.jpg exists too
    assert labels["a/IMG_0039.jpg"] == "IMG_0039.jpg"
    assert model.tag_counter().counts()["lamp"] == COUNT
    [gone] = [rec.id for rec in window.project.images() if rec.path == "b/IMG_0030.jpg"]
    assert [rec.id for rec in model.records() if model.is_missing(rec.id)] == [gone]
    assert "missing" in window.statusBar().currentMessage()
    # The image the project was left on was shown when its row arrived.
    assert window.current_record().id == window.project.settings.current_image_id


def test_filters_and_edits_before_the_end_hold(qtbot, window: MainWindow, project_path: Path,
                                               monkeypatch) -> None:
    gate = threading.Event()
    original = Project.images_page

    def slow_page(self: Project, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("offset"):
            gate.wait(20)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "images_page", slow_page)
    assert window.open_project(project_path)
    assert window.model.loading
    window.filter_edit.setText("tag:tag1")
    first = window.model.record(0)
    window.project.edit_caption(first.id, "lamp, sofa")
    window.refresh_image(first.id)
    with qtbot.waitSignal(window.loaded, timeout=20_000):
        gate.set()
    counts = window.model.tag_counter().counts()
    assert counts["sofa"] == 1 and counts["chair"] == COUNT - 1
    expected = sum(1 for rec in window.project.images()
                   if rec.caption and "tag1" in rec.caption.body.split(", "))
    qtbot.waitUntil(lambda: window.proxy.rowCount() == expected)


def test_closing_while_it_loads(qtbot, window: MainWindow, project_path: Path,
                                monkeypatch) -> None:
    gate = threading.Event()
    original = Project.images_page

    def slow_page(self: Project, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("offset"):
            gate.wait(20)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "images_page", slow_page)
    assert window.open_project(project_path)
    assert window.model.loading
    # Closing waits for the query under way (released a moment later), then closes the file.
    threading.Timer(0.3, gate.set).start()
    window.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)
    assert window.project is None
