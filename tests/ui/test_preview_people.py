"""The people of a multi-person caption drawn over the preview: each box of the image's latest
detection where the person is shown (EXIF-rotated photos too), under the alias of the person's
caption line; "No person found" when the detection found nobody; nothing elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from PyQt6.QtCore import QRectF, QSize
from PyQt6.QtGui import QColor, QKeySequence

from loracap.core.project import Project
from loracap.core.project_people import detection_text
from loracap.core.records import ImageRecord, PersonPart
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.main_window import MainWindow
from loracap.ui.people_overlay import PALETTE, PersonMark, map_marks, people_marks
from loracap.ui.preview import PreviewPane
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.photos import make_photo

Box = tuple[int, int, int, int]

#: Two people of a 640 × 480 photo; the detection lists the man (right) first, the caption
#: order is left to right, so the woman is sksA.
MAN: Box = (360, 80, 600, 470)
WOMAN: Box = (40, 60, 240, 460)


def _project(tmp_path: Path, profile: str = "multi-person") -> Project:
    """A project of the photos in ``tmp_path / "set"`` (made beforehand)."""
    path = tmp_path / "set" / "set.loraproj"
    project = Project.create(path, trigger="team", profile=profile)
    project.add_scanned(scan_folder(path.parent))
    return project


def _detect(project: Project, record: ImageRecord,
            people: list[tuple[Box, str]]) -> ImageRecord:
    """Store a detection of ``people`` for the image; the record as the window reads it."""
    project.store_person_part(record.id, PersonPart(
        kind="detection", backend="gemini", model="m", file_size=record.file_size,
        mtime=record.mtime, text=detection_text(people)))
    return project.image(record.id)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    make_photo(tmp_path / "set" / "team.jpg", size=(640, 480))
    with _project(tmp_path) as opened:
        yield opened


@pytest.fixture
def pane(qtbot) -> PreviewPane:
    widget = PreviewPane()
    qtbot.addWidget(widget)
    widget.resize(600, 500)
    # A known size for the image: 640 × 480 fits 520 × 400 at 0.8125 (520 × 390, 5 px above).
    widget.image_label.setFixedSize(520, 400)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _show(qtbot, pane: PreviewPane, project: Project, record: ImageRecord) -> None:
    pane.show_record(record)
    qtbot.waitUntil(lambda: not pane.image_label.pixmap().isNull(), timeout=10_000)
    pane.set_people(people_marks(project, project.settings, record))


def _coords(people: list[tuple[QRectF, str]]) -> list[tuple[str, tuple[float, ...]]]:
    return [(alias, rect.getRect()) for rect, alias in people]


def test_boxes_are_scaled_and_offset_as_the_image_is_shown() -> None:
    marks = [PersonMark((64, 48, 320, 432), "sksA")]
    # 640 × 480 in a 400 × 400 square: scale 0.625, the image 400 × 300 starting 50 px down.
    assert _coords(map_marks(marks, QSize(640, 480), QRectF(0, 50, 400, 300))) == [
        ("sksA", (40.0, 80.0, 160.0, 240.0))]
    assert map_marks(marks, QSize(), QRectF(0, 0, 400, 400)) == []


def test_the_people_of_the_latest_detection_left_to_right(qtbot, pane: PreviewPane,
                                                          project: Project) -> None:
    record = project.images()[0]
    _detect(project, record, [((0, 0, 10, 10), "man")])  # an older detection, superseded
    record = _detect(project, record, [(MAN, "man"), (WOMAN, "woman")])
    _show(qtbot, pane, project, record)
    assert pane.image_label.pixmap().deviceIndependentSize().toSize() == QSize(520, 390)
    assert _coords(pane.people_rects()) == [
        ("sksA", pytest.approx((32.5, 5 + 48.75, 162.5, 325.0))),
        ("sksB", pytest.approx((292.5, 5 + 65.0, 195.0, 316.875))),
    ]
    assert pane.people_note() == ""
    # Drawn where computed: the first box's left edge in the first colour.
    shot = pane.image_label.grab().toImage()
    rect = pane.people_rects()[0][0]
    edge = shot.pixelColor(int(rect.left() + 1), int(rect.center().y()))
    expected = QColor(PALETTE[0])
    assert abs(edge.red() - expected.red()) + abs(edge.green() - expected.green()) \
        + abs(edge.blue() - expected.blue()) < 60

    pane.set_people_visible(False)
    assert pane.people_rects() == []
    pane.set_people_visible(True)
    assert [alias for _rect, alias in pane.people_rects()] == ["sksA", "sksB"]


def test_custom_aliases_and_order_by_size(qtbot, pane: PreviewPane, project: Project) -> None:
    record = _detect(project, project.images()[0], [(MAN, "man"), (WOMAN, "woman")])
    project.update_settings(aliases=["anna", "ben"])
    _show(qtbot, pane, project, record)
    assert [alias for _rect, alias in pane.people_rects()] == ["anna", "ben"]
    assert pane.people_rects()[0][0].left() == pytest.approx(32.5)  # anna: the woman, left
    project.update_settings(aliases=[], people_order="size")
    pane.set_people(people_marks(project, project.settings, record))
    # The man's box (240 × 390) is larger than the woman's (200 × 400): he comes first.
    assert _coords(pane.people_rects())[0] == ("sksA", pytest.approx((292.5, 70.0, 195.0,
                                                                      316.875)))


def test_a_tags_project_uses_person_numbers(qtbot, tmp_path: Path, pane: PreviewPane) -> None:
    make_photo(tmp_path / "set" / "team.jpg", size=(640, 480))
    with _project(tmp_path, profile="multi-person-tags") as project:
        record = _detect(project, project.images()[0], [(MAN, "man"), (WOMAN, "woman")])
        _show(qtbot, pane, project, record)
        assert [alias for _rect, alias in pane.people_rects()] == ["person1", "person2"]


def test_an_exif_rotated_photo(qtbot, tmp_path: Path, pane: PreviewPane) -> None:
    # Stored 640 × 480 with orientation 6 (turn 90° clockwise): shown 480 × 640.
    make_photo(tmp_path / "set" / "turned.jpg", size=(640, 480), orientation=6)
    with _project(tmp_path) as project:
        record = project.images()[0]
        assert (record.width, record.height) == (480, 640)
        record = _detect(project, record, [((240, 320, 480, 640), "woman")])
        _show(qtbot, pane, project, record)
        # 480 × 640 in 520 × 400: scale 0.625, 300 × 400, 110 px from the left.
        assert pane.image_label.pixmap().deviceIndependentSize().toSize() == QSize(300, 400)
        assert _coords(pane.people_rects()) == [
            ("sksA", pytest.approx((110 + 150.0, 200.0, 150.0, 200.0)))]


def test_a_rotated_box_covers_what_it_marks(qtbot, tmp_path: Path, pane: PreviewPane) -> None:
    """A red block at the box in the oriented image is under the box as drawn."""
    oriented = Image.new("RGB", (600, 800), "white")
    red: Box = (60, 400, 260, 760)
    oriented.paste((220, 20, 20), red)
    oriented.paste((20, 20, 220), (360, 40, 560, 240))  # blue elsewhere: a wrong turn shows
    stored = oriented.transpose(Image.Transpose.ROTATE_90)  # what orientation 6 turns back
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "set" / "portrait.jpg"
    path.parent.mkdir(parents=True)
    stored.save(path, quality=95, exif=exif)
    with Image.open(path) as check:
        assert ImageOps.exif_transpose(check).getpixel((160, 580))[0] > 180  # as the core sees
    with _project(tmp_path) as project:
        record = _detect(project, project.images()[0], [(red, "woman")])
        _show(qtbot, pane, project, record)
        [(rect, alias)] = pane.people_rects()
        assert alias == "sksA"
        shot = pane.image_label.grab().toImage()
        inside = shot.pixelColor(int(rect.center().x()), int(rect.center().y()))
        assert inside.red() > 180 and inside.green() < 80 and inside.blue() < 80


def test_no_person_found_and_never_detected(qtbot, pane: PreviewPane,
                                            project: Project) -> None:
    record = project.images()[0]
    _show(qtbot, pane, project, record)
    assert pane.people_rects() == [] and pane.people_note() == ""  # never detected
    record = _detect(project, record, [])
    assert record.people == 0
    _show(qtbot, pane, project, record)
    assert pane.people_rects() == []
    assert pane.people_note() == "No person found"
    pane.set_people_visible(False)
    assert pane.people_note() == ""


def test_other_profiles_draw_nothing(qtbot, tmp_path: Path, pane: PreviewPane) -> None:
    make_photo(tmp_path / "set" / "team.jpg", size=(640, 480))
    with _project(tmp_path, profile="space") as project:
        record = _detect(project, project.images()[0], [(MAN, "man")])
        assert people_marks(project, project.settings, record) is None
        _show(qtbot, pane, project, record)
        assert pane.people_rects() == [] and pane.people_note() == ""


@pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                           extend=True)
def test_the_window_shows_them_and_view_show_people_hides_them(
        qtbot, tmp_path: Path, app_settings: AppSettings) -> None:
    make_photo(tmp_path / "set" / "team.jpg", size=(640, 480))
    with _project(tmp_path) as project:
        _detect(project, project.images()[0], [(MAN, "man"), (WOMAN, "woman")])
        path = project.path
    window = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.open_project(path)
        preview = window.preview
        qtbot.waitUntil(lambda: len(preview.people_rects()) == 2, timeout=10_000)
        assert [alias for _rect, alias in preview.people_rects()] == ["sksA", "sksB"]
        action = window.show_people_action
        assert action.isCheckable() and action.isChecked() and action.isEnabled()
        assert action.shortcut() == QKeySequence("Ctrl+Shift+P")
        keys = [key for other in window.actions() if other is not action
                for key in other.shortcuts()]
        assert action.shortcut() not in keys
        assert ("Show People", "Ctrl+Shift+P") in window.shortcut_list()
        action.trigger()
        assert not action.isChecked() and preview.people_rects() == []
        assert app_settings.show_people is False  # remembered for the next start
        action.trigger()
        assert len(preview.people_rects()) == 2 and app_settings.show_people
        action.trigger()
    finally:
        window.close()
        qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)
    # The next window starts with the people hidden, as left.
    again = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
    qtbot.addWidget(again)
    try:
        assert not again.show_people_action.isChecked()
        assert again.open_project(path)
        qtbot.wait(200)
        assert again.preview.people_rects() == []
    finally:
        again.close()
        qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)
