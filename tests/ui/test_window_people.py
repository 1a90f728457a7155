"""Multi-person captions in the window: a batch through the fake Gemini server gives one line per
person and the scene, and looking at such a caption never turns it into an edited one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core.project import CaptionMode, Project
from loracap.core.prompts import Profile
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.caption_editor import tidy_caption
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.gemini_server import FakeGeminiServer
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
    main.show()
    yield main
    if main.isVisible():
        main.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


def test_a_multi_person_batch_in_the_window(qtbot, window: MainWindow, tmp_path: Path,
                                            gemini_server: FakeGeminiServer) -> None:
    folder = tmp_path / "team"
    make_photo_folder(folder, 2, size=(640, 480))
    path = folder / "team.loraproj"
    with Project.create(path, trigger="team", profile=Profile.MULTI_PERSON.value) as project:
        project.add_scanned(scan_folder(folder))
    assert window.open_project(path)
    with qtbot.waitSignal(window.batch_finished, timeout=60_000) as blocker:
        window.generate(CaptionMode.MISSING)
    assert blocker.args[0].done == 2
    project = window.project
    first = project.images()[0]
    assert first.caption is not None
    assert [line.split(":")[0] for line in first.caption.body.splitlines()] == [
        "sksA", "sksB", "Scene"]
    # Showing the caption and moving on (the editor saves before navigating) changes nothing.
    window.show_image(first.id)
    window.editor.flush()
    again = project.image(first.id).caption
    assert again is not None and again.provenance is Provenance.GENERATED
    assert again.body == first.caption.body


def test_tidying_keeps_the_lines_of_a_caption() -> None:
    assert tidy_caption("sksA:  a  woman.\n\n sksB: a man. \nScene: an office.") == (
        "sksA: a woman.\nsksB: a man.\nScene: an office.")
    assert tidy_caption("  a hall,\ttall   windows ") == "a hall, tall windows"


def test_the_grid_says_no_person_found(qtbot, window: MainWindow, tmp_path: Path,
                                       gemini_server: FakeGeminiServer) -> None:
    from PyQt6.QtCore import Qt

    from tests.fakes.gemini_server import Reply

    folder = tmp_path / "room"
    make_photo_folder(folder, 1, size=(640, 480))
    path = folder / "room.loraproj"
    with Project.create(path, trigger="room", profile=Profile.MULTI_PERSON.value) as project:
        project.add_scanned(scan_folder(folder))
    assert window.open_project(path)
    gemini_server.queue_replies(Reply.json({"people": []}))
    with qtbot.waitSignal(window.batch_finished, timeout=60_000):
        window.generate(CaptionMode.MISSING)
    tooltip = window.model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "No person found" in tooltip
    assert window.project.images()[0].people == 0

