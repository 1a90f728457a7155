"""The window's filter box with a query nested too deeply: a message with the position in the
status bar, not "Something went wrong" (issue 11, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loracap.core.backends.base import BackendConfig
from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.project import Project
from loracap.core.query import MAX_NESTING
from loracap.core.scan import scan_folder
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def window(qtbot, app_settings: AppSettings, server: FakeGeminiServer, tmp_path: Path):
    photos = tmp_path / "ide_main_hall"
    make_photo_folder(photos, 4, size=(320, 240))
    path = photos / "ide_main_hall.loraproj"
    with Project.create(path, trigger="ide_main_hall") as project:
        project.add_scanned(scan_folder(photos))

    def factory(config: BackendConfig) -> GeminiCaptioner:
        return GeminiCaptioner("test-key", config.model, base_url=server.base_url)

    main = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"), factory)
    qtbot.addWidget(main)
    main.show()
    main.open_project(path)
    yield main
    main.close()


def test_deeply_nested_filter_shows_the_position_and_keeps_the_last_filter(qtbot, window) -> None:
    first = window.model.record(0)
    window.project.edit_caption(first.id, "lobby, red sofa")
    window.refresh_image(first.id)
    qtbot.keyClicks(window.filter_edit, "tag:lobby")
    assert window.proxy.rowCount() == 1
    # ~400 "(" ended in RecursionError, shown as "Something went wrong" (pytest-qt fails a test
    # on an exception in a slot, so this line alone fails without the limit).
    window.filter_edit.setText("(" * 400 + "tag:lobby" + ")" * 400)
    message = window.statusBar().currentMessage()
    assert message == (f'Filter: Too many levels of "(" and NOT at position {MAX_NESTING} '
                       f"(at most {MAX_NESTING} inside each other)")
    assert "#c0392b" in window.filter_edit.styleSheet()
    assert window.proxy.rowCount() == 1  # the last good filter stays
    # At the limit the query works ("-" is a level too).
    depth = MAX_NESTING - 1
    window.filter_edit.setText("(" * depth + "-tag:lobby" + ")" * depth)
    assert window.statusBar().currentMessage() == ""
    assert window.proxy.rowCount() == 3
