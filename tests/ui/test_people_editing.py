"""Editing the people of a multi-person image in the window with the mouse and the People menu
(issue 13): drag, resize, draw and delete a box, reorder aliases, describe one person again --
each one undo step that lands in the caption history, on a project captioned through the fake
Gemini server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import QPoint, QPointF, QRectF, Qt

from loracap.core.project import CaptionMode, Project
from loracap.core.prompts import Profile
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.main_window import MainWindow
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
    folder = tmp_path / "team"
    make_photo_folder(folder, 1, size=(640, 480))
    path = folder / "team.loraproj"
    with Project.create(path, trigger="team", profile=Profile.MULTI_PERSON.value) as project:
        project.add_scanned(scan_folder(folder))
    assert main.open_project(path)
    with qtbot.waitSignal(main.batch_finished, timeout=60_000):
        main.generate(CaptionMode.MISSING)
    gemini_server.reset()
    main.show_image(main.project.images()[0].id)
    qtbot.waitUntil(lambda: len(main.preview.people_rects()) == 2, timeout=10_000)
    yield main
    main.people_editing.wait()
    if main.isVisible():
        main.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


def caption(window: MainWindow) -> list[str]:
    record = window.project.images()[0]
    return record.caption.body.splitlines() if record.caption else []


def boxes(window: MainWindow) -> list[tuple[int, int, int, int]]:
    layout = window.project.people_layout(window.project.images()[0].id)
    return [person.box for person in layout.people]


def point(p: QPointF) -> QPoint:
    return p.toPoint()


def free_area(window: MainWindow, side: float) -> tuple[QPointF, QPointF]:
    """Two corners of a square of ``side`` logical pixels on the image and clear of every
    box (with the edges' grab margin)."""
    shown = window.preview.image_label.shown_rect()
    people = [rect.adjusted(-8, -8, 8, 8) for rect, _alias in window.preview.people_rects()]
    y = shown.top() + 2
    while y + side < shown.bottom():
        x = shown.left() + 2
        while x + side < shown.right():
            square = QRectF(x, y, side, side)
            if not any(rect.intersects(square) for rect in people):
                return square.topLeft(), square.bottomRight()
            x += 2
        y += 2
    raise AssertionError("no free area on the preview")


def drag(qtbot, window: MainWindow, start: QPointF, end: QPointF) -> None:
    label = window.preview.image_label
    qtbot.mousePress(label, Qt.MouseButton.LeftButton, pos=point(start))
    middle = (start + end) / 2
    qtbot.mouseMove(label, point(middle))
    qtbot.mouseMove(label, point(end))
    qtbot.mouseRelease(label, Qt.MouseButton.LeftButton, pos=point(end))


def test_dragging_a_box_moves_it_and_undo_puts_it_back(qtbot, window: MainWindow) -> None:
    before_boxes, before_caption = boxes(window), caption(window)
    rect, alias = window.preview.people_rects()[0]
    assert alias == "sksA"
    drag(qtbot, window, rect.center(), rect.center() + QPointF(0, 20))
    moved = boxes(window)
    assert moved[0] != before_boxes[0] and moved[1] == before_boxes[1]
    assert moved[0][1] > before_boxes[0][1]  # lower in the image
    assert moved[0][2] - moved[0][0] == before_boxes[0][2] - before_boxes[0][0]
    assert caption(window) == before_caption  # the line stays until described again
    assert "Move sksA's box" in window.undo_action.text()
    window.undo()
    assert boxes(window) == before_boxes


def test_resizing_by_a_corner(qtbot, window: MainWindow) -> None:
    before = boxes(window)
    rect, _alias = window.preview.people_rects()[1]
    window.preview.image_label.select(1)
    corner = rect.bottomRight() - QPointF(1, 1)
    drag(qtbot, window, corner, corner - QPointF(30, 30))
    after = boxes(window)
    assert after[1][:2] == before[1][:2]  # the top left corner stayed
    assert after[1][2] < before[1][2] and after[1][3] < before[1][3]


def test_drawing_a_missing_person_then_describing_them(
        qtbot, window: MainWindow, gemini_server: FakeGeminiServer) -> None:
    label = window.preview.image_label
    shown = label.shown_rect()
    start, end = free_area(window, 20)
    drag(qtbot, window, start, end)
    assert len(boxes(window)) == 3
    assert label.selected == 2
    assert [mark.described for mark in label.marks] == [True, True, False]
    lines = caption(window)
    assert len(lines) == 3  # no line until described
    gemini_server.queue_replies(Reply.caption(
        "A grey-haired man in a navy blazer with a white shirt, smiling at someone nearby."))
    assert window.people_editing.describe_action.isEnabled()
    window.people_editing.describe_action.trigger()
    qtbot.waitUntil(lambda: not window.people_editing.busy, timeout=20_000)
    assert len(gemini_server.generate_requests) == 1
    assert caption(window)[2] == ("unidentified person: A grey-haired man in a navy blazer "
                                  "with a white shirt, smiling at someone nearby.")
    assert "Describe unidentified person again" in window.undo_action.text()
    history = window.project.history(window.project.images()[0].id)
    assert history[-1].provenance is Provenance.EDITED
    # Undo takes the description back; the box stays drawn.
    window.undo()
    assert caption(window) == lines and len(boxes(window)) == 3


def test_delete_key_and_reordering_from_the_menu(qtbot, window: MainWindow) -> None:
    label = window.preview.image_label
    first, second, scene = caption(window)
    window.preview.image_label.select(1)
    window.people_editing.update_actions()
    assert window.people_editing.first_action.isEnabled()
    window.people_editing.first_action.trigger()
    assert caption(window) == ["sksA" + second[4:], "sksB" + first[4:], scene]
    assert label.selected == 0
    # Delete removes the selected person and their line; undo brings both back.
    label.setFocus()
    qtbot.keyClick(label, Qt.Key.Key_Delete)
    assert caption(window) == ["sksA" + first[4:], scene]
    assert len(window.preview.people_rects()) == 1
    window.undo()
    assert caption(window) == ["sksA" + second[4:], "sksB" + first[4:], scene]
    window.undo()
    assert caption(window) == [first, second, scene]


def test_a_click_selects_without_changing_anything(qtbot, window: MainWindow) -> None:
    label = window.preview.image_label
    steps = window.undo_action.text()
    rect, _alias = window.preview.people_rects()[1]
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=point(rect.center()))
    assert label.selected == 1
    assert window.undo_action.text() == steps
    assert "sksB" in window.people_editing.describe_action.text()
    qtbot.keyClick(label, Qt.Key.Key_Escape)
    assert label.selected == -1
    assert not window.people_editing.describe_action.isEnabled()
    # A tiny drawn box is a slip of the mouse: nothing is stored.
    start, _end = free_area(window, 12)
    drag(qtbot, window, start, start + QPointF(6, 6))
    assert len(boxes(window)) == 2
    assert window.undo_action.text() == steps
