"""The image grid's model, filter proxy and delegate, over a real project of real photos."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PyQt6.QtCore import QModelIndex, QRect, Qt
from PyQt6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPalette, QPixmap
from PyQt6.QtWidgets import QApplication, QStyle, QStyleOptionViewItem

from loracap.core.project import ImageRecord, Project, Provenance
from loracap.core.scan import scan_folder
from loracap.ui.delegate import ThumbnailDelegate, cell_size, thumbnail_rect
from loracap.ui.image_model import (
    STATE_BADGES,
    STATE_COLORS,
    STATE_LABELS,
    STATES,
    TOOLTIP_WIDTH,
    ImageFilterProxy,
    ImageListModel,
    Roles,
    grid_labels,
    image_state,
    relative_luminance,
)
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.photos import make_photo, make_photo_folder

THUMB = 64

# File name -> the state the project fixture gives it.
EXPECTED_STATES = {
    "IMG_0001.jpg": "generated",
    "IMG_0002.jpg": "edited",
    "IMG_0003.jpg": "manual",
    "IMG_0004.jpg": "imported",
    "IMG_0005.jpg": "failed",
    "IMG_0006.jpg": "uncaptioned",
    "IMG_0007.jpg": "missing",
    "broken.jpg": "invalid",
}


@dataclass
class Dataset:
    project: Project
    folder: Path
    missing_ids: set[int]

    def records(self) -> list[ImageRecord]:
        return self.project.images()

    def by_name(self, name: str) -> ImageRecord:
        return next(rec for rec in self.project.images() if rec.file_name == name)


@pytest.fixture
def dataset(tmp_path: Path) -> Iterator[Dataset]:
    """A project with one image in every state (see EXPECTED_STATES)."""
    folder = tmp_path / "photos"
    make_photo_folder(folder, 7, size=(320, 240))
    (folder / "IMG_0004.txt").write_text("photo of ohwx a wooden desk under a lamp\n")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg " * 20)
    project = Project.create(tmp_path / "desk.loraproj", trigger="ohwx")
    project.add_scanned(scan_folder(folder))
    ids = {rec.file_name: rec.id for rec in project.images()}
    gen = {"backend": "gemini", "model": "m", "prompt": "p"}
    project.store_generated(ids["IMG_0001.jpg"], "a <b>bold</b> chair & a table", **gen)
    project.store_generated(ids["IMG_0002.jpg"], "a sofa", **gen)
    project.edit_caption(ids["IMG_0002.jpg"], "a green sofa by the window")
    project.edit_caption(ids["IMG_0003.jpg"], "a bookshelf full of books")
    project.record_failure(ids["IMG_0005.jpg"], "Gemini refused: <safety> filter & co",
                           kind="refused")
    (folder / "IMG_0007.jpg").unlink()
    yield Dataset(project, folder, {ids["IMG_0007.jpg"]})
    project.close()


@pytest.fixture
def provider(tmp_path: Path, qapp: QApplication) -> Iterator[ThumbnailProvider]:
    thumbs = ThumbnailProvider(tmp_path / "cache", size=THUMB)
    yield thumbs
    thumbs.shutdown()


@pytest.fixture
def model(dataset: Dataset, provider: ThumbnailProvider) -> ImageListModel:
    m = ImageListModel(provider)
    m.set_records(dataset.records(), dataset.project.settings, dataset.missing_ids)
    return m


def row_named(model: ImageListModel, name: str) -> int:
    return next(r for r in range(model.rowCount()) if model.record(r).file_name == name)


def index_named(model: ImageListModel, name: str) -> QModelIndex:
    return model.index(row_named(model, name), 0)


def proxy_names(proxy: ImageFilterProxy) -> list[str]:
    return [proxy.index(r, 0).data(Qt.ItemDataRole.DisplayRole) for r in range(proxy.rowCount())]


# ---------------------------------------------------------------------- states


def test_every_state_of_the_project(model: ImageListModel) -> None:
    seen = {model.record(r).file_name: model.index(r, 0).data(Roles.STATE)
            for r in range(model.rowCount())}
    assert seen == EXPECTED_STATES
    assert set(seen.values()) == set(STATES)


def test_state_precedence(dataset: Dataset) -> None:
    generated = dataset.by_name("IMG_0001.jpg")
    broken = dataset.by_name("broken.jpg")
    uncaptioned = dataset.by_name("IMG_0006.jpg")
    failed = dataset.by_name("IMG_0005.jpg")
    assert image_state(broken, missing=True) == "invalid"  # invalid comes before missing
    assert image_state(generated, missing=True) == "missing"  # missing before provenance
    # A caption wins over an older failure (the record is then not `failed`).
    assert image_state(dataclasses.replace(generated, last_error="boom"), False) == "generated"
    assert image_state(failed, False) == "failed"
    assert image_state(uncaptioned, False) == "uncaptioned"
    # A blank caption body is no caption.
    assert generated.caption is not None
    blank = dataclasses.replace(generated,
                                caption=dataclasses.replace(generated.caption, body="  "))
    assert image_state(blank, False) == "uncaptioned"
    for provenance in Provenance:
        rec = dataclasses.replace(
            generated, caption=dataclasses.replace(generated.caption, provenance=provenance))
        assert image_state(rec, False) == provenance.value


def test_labels_badges_and_colours_cover_every_state() -> None:
    assert set(STATE_LABELS) == set(STATE_BADGES) == set(STATE_COLORS) == set(STATES)
    assert len({c.name() for c in STATE_COLORS.values()}) == len(STATES)  # all distinct
    # One distinct visible character each, so a state never rests on colour alone.
    assert len(set(STATE_BADGES.values())) == len(STATES)
    assert all(re.fullmatch(r"\S", ch) for ch in STATE_BADGES.values())
    for state, colour in STATE_COLORS.items():
        lum = relative_luminance(colour)
        # WCAG 3:1 for graphical objects, on a white and on a black background.
        assert 1.05 / (lum + 0.05) >= 3.0, state
        assert (lum + 0.05) / 0.05 >= 3.0, state


# ---------------------------------------------------------------------- data()


def test_roles_of_a_captioned_row(model: ImageListModel, dataset: Dataset) -> None:
    index = index_named(model, "IMG_0002.jpg")
    record = dataset.by_name("IMG_0002.jpg")
    assert index.data(Qt.ItemDataRole.DisplayRole) == "IMG_0002.jpg"
    assert index.data(Roles.IMAGE_ID) == record.id
    assert index.data(Roles.PATH) == record.path == "photos/IMG_0002.jpg"
    assert index.data(Roles.CAPTION) == "photo of ohwx a green sofa by the window"
    assert index.data(Roles.RECORD) == record
    assert index_named(model, "IMG_0006.jpg").data(Roles.CAPTION) == ""
    assert index_named(model, "IMG_0004.jpg").data(Roles.CAPTION) == (
        "photo of ohwx a wooden desk under a lamp")
    flags = model.flags(index_named(model, "broken.jpg"))
    assert flags & Qt.ItemFlag.ItemIsSelectable and flags & Qt.ItemFlag.ItemIsEnabled
    assert model.flags(index_named(model, "IMG_0007.jpg")) & Qt.ItemFlag.ItemIsSelectable


def test_tooltips_carry_the_state_and_the_reason(model: ImageListModel,
                                                 dataset: Dataset) -> None:
    def tip(name: str) -> str:
        return index_named(model, name).data(Qt.ItemDataRole.ToolTipRole)

    invalid = tip("broken.jpg")
    assert "<b>broken.jpg</b>" in invalid and "Invalid file" in invalid
    reason = dataset.by_name("broken.jpg").invalid_reason
    assert reason and reason.split()[0] in invalid
    failed = tip("IMG_0005.jpg")
    assert "Caption failed" in failed
    assert "Gemini refused: &lt;safety&gt; filter &amp; co" in failed
    assert "<safety>" not in failed
    missing = tip("IMG_0007.jpg")
    assert "File missing" in missing and "IMG_0007.jpg" in missing
    generated = tip("IMG_0001.jpg")
    assert "Generated caption" in generated
    assert "photo of ohwx a &lt;b&gt;bold&lt;/b&gt; chair &amp; a table" in generated
    assert "Edited by you" in tip("IMG_0002.jpg")
    assert "Written by you" in tip("IMG_0003.jpg")
    assert "Imported from .txt" in tip("IMG_0004.jpg")
    assert "No caption yet" in tip("IMG_0006.jpg")


def test_long_captions_are_wrapped_in_the_tooltip(model: ImageListModel,
                                                  dataset: Dataset) -> None:
    record = dataset.by_name("IMG_0003.jpg")
    long_body = " ".join(["a very long caption about a cosy reading corner"] * 8)
    caption = dataset.project.edit_caption(record.id, long_body)
    model.update_record(dataclasses.replace(record, caption=caption))
    tip = index_named(model, "IMG_0003.jpg").data(Qt.ItemDataRole.ToolTipRole)
    lines = tip.split("<br>")
    assert len(lines) > 4
    assert max(len(line) for line in lines[2:]) <= TOOLTIP_WIDTH


def test_rows_keep_the_given_order_and_ids_map_to_rows(model: ImageListModel,
                                                       dataset: Dataset) -> None:
    records = list(reversed(dataset.records()))
    model.set_records(records, dataset.project.settings)
    assert model.records() == records
    for row, rec in enumerate(records):
        assert model.row_of(rec.id) == row
        assert model.record(row) == rec
    assert model.row_of(999_999) == -1
    model.set_records([], None)  # no project open
    assert model.rowCount() == 0 and model.row_of(records[0].id) == -1
    model.set_records(records, None)
    assert model.index(model.row_of(dataset.by_name("IMG_0003.jpg").id), 0).data(
        Roles.CAPTION) == "a bookshelf full of books"  # no settings: the body alone
    with pytest.raises(IndexError):
        model.record(len(records))
    with pytest.raises(ValueError, match="same image id"):
        model.set_records([records[0], records[0]], dataset.project.settings)


# ---------------------------------------------------------------------- model checks


def test_model_and_proxy_pass_the_model_tester(qtmodeltester, model: ImageListModel,
                                               dataset: Dataset) -> None:
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(model)  # Qt's C++ tester, kept attached: checks every later signal
    qtmodeltester.check(proxy, force_py=True)  # pytest-qt's Python tester, also kept attached

    rec = dataset.by_name("IMG_0006.jpg")
    caption = dataset.project.edit_caption(rec.id, "a plant on a stool")
    assert model.update_record(dataclasses.replace(rec, caption=caption))
    proxy.set_state_filter(frozenset({"manual", "generated"}))
    proxy.set_text_filter("plant")
    assert proxy_names(proxy) == ["IMG_0006.jpg"]
    model.update_record(dataset.by_name("IMG_0007.jpg"), missing=False)
    model.set_records(dataset.records()[:5], dataset.project.settings)
    proxy.set_text_filter("")
    proxy.set_state_filter(None)
    assert proxy.rowCount() == 5
    qtmodeltester.check(proxy)  # and the C++ tester on the proxy after all that
    model.set_records(dataset.records(), dataset.project.settings, dataset.missing_ids)
    assert proxy.rowCount() == len(EXPECTED_STATES)


def test_reset_uses_begin_end_not_a_bare_signal(qtbot, model: ImageListModel,
                                                dataset: Dataset) -> None:
    with qtbot.waitSignals([model.modelAboutToBeReset, model.modelReset], order="strict"):
        model.set_records(dataset.records(), dataset.project.settings)


def test_update_record_emits_the_roles_that_changed(qtbot, model: ImageListModel,
                                                    dataset: Dataset,
                                                    provider: ThumbnailProvider) -> None:
    changes: list[tuple[int, int, list[int]]] = []
    model.dataChanged.connect(lambda a, b, roles: changes.append((a.row(), b.row(), roles)))
    rec = dataset.by_name("IMG_0001.jpg")
    row = model.row_of(rec.id)

    caption = dataset.project.edit_caption(rec.id, "a wooden chair")
    assert model.update_record(dataclasses.replace(rec, caption=caption))
    assert len(changes) == 1
    first, last, roles = changes[0]
    assert first == last == row
    assert {Roles.STATE, Roles.CAPTION, Roles.RECORD, Qt.ItemDataRole.ToolTipRole} <= set(roles)
    assert Qt.ItemDataRole.DecorationRole not in roles
    assert Qt.ItemDataRole.DisplayRole not in roles
    assert model.index(row, 0).data(Roles.STATE) == "edited"

    # The same record again: nothing changed, nothing emitted.
    model.update_record(model.record(row))
    assert len(changes) == 1

    # The file changed on disk: the thumbnail is dropped and the decoration re-asked.
    make_photo(rec.abs_path, size=(100, 300), seed=9)
    with qtbot.waitSignal(provider.thumbnail_ready, timeout=5000):
        model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)
    changes.clear()
    newer = dataclasses.replace(model.record(row), mtime=rec.mtime + 10, file_size=12345)
    model.update_record(newer)
    assert changes and Qt.ItemDataRole.DecorationRole in changes[0][2]
    assert Roles.STATE not in changes[0][2]
    assert provider.cached_count == 0  # the old thumbnail is gone from memory
    assert provider.pixmap(rec.id, newer.abs_path, newer.mtime, newer.file_size) is None

    # Marked missing: state, decoration and tooltip change.
    changes.clear()
    model.update_record(newer, missing=True)
    assert {Roles.STATE, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole} <= set(
        changes[0][2])
    assert model.index(row, 0).data(Roles.STATE) == "missing"
    assert not model.update_record(dataclasses.replace(rec, id=999_999))


def test_new_prefix_changes_every_caption(qtbot, model: ImageListModel,
                                          dataset: Dataset) -> None:
    settings = dataset.project.update_settings(trigger="zzdesk")
    with qtbot.waitSignal(model.dataChanged) as blocker:
        model.set_settings(settings)
    top, bottom, roles = blocker.args
    assert (top.row(), bottom.row()) == (0, model.rowCount() - 1)
    assert set(roles) == {Roles.CAPTION, Qt.ItemDataRole.ToolTipRole}
    assert index_named(model, "IMG_0003.jpg").data(Roles.CAPTION) == (
        "photo of zzdesk a bookshelf full of books")
    # The same prefix again: nothing to repaint.
    with qtbot.assertNotEmitted(model.dataChanged):
        model.set_settings(dataclasses.replace(settings, model="other"))


# ---------------------------------------------------------------------- thumbnails via data()


def test_decoration_is_the_placeholder_then_the_thumbnail(qtbot, model: ImageListModel,
                                                          provider: ThumbnailProvider) -> None:
    index = index_named(model, "IMG_0003.jpg")
    first = index.data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(first, QPixmap)
    assert first.cacheKey() == provider.placeholder().cacheKey()
    assert provider.pending_count == 1
    with qtbot.waitSignal(model.dataChanged, timeout=5000,
                          check_params_cb=lambda a, b, roles: a.row() == index.row()
                          and roles == [Qt.ItemDataRole.DecorationRole]):
        pass
    thumb = index.data(Qt.ItemDataRole.DecorationRole)
    assert thumb.cacheKey() != provider.placeholder().cacheKey()
    assert (thumb.width(), thumb.height()) == (THUMB, THUMB * 240 // 320)


def test_invalid_and_missing_rows_get_the_broken_pixmap_without_a_load(
        model: ImageListModel, provider: ThumbnailProvider) -> None:
    for name in ("broken.jpg", "IMG_0007.jpg"):
        pixmap = index_named(model, name).data(Qt.ItemDataRole.DecorationRole)
        assert pixmap.cacheKey() == provider.broken_pixmap().cacheKey()
    assert provider.pending_count == 0


# ---------------------------------------------------------------------- proxy


def test_text_filter_matches_name_path_and_caption_ignoring_case(model: ImageListModel) -> None:
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_text_filter("img_0003")
    assert proxy_names(proxy) == ["IMG_0003.jpg"]
    proxy.set_text_filter("  SOFA ")
    assert proxy_names(proxy) == ["IMG_0002.jpg"]
    proxy.set_text_filter("PHOTOS/broken")  # the stored path
    assert proxy_names(proxy) == ["broken.jpg"]
    proxy.set_text_filter("ohwx")  # the prefix is part of the caption
    assert proxy_names(proxy) == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg"]
    proxy.set_text_filter("no such thing")
    assert proxy.rowCount() == 0
    proxy.set_text_filter("")
    assert proxy.rowCount() == len(EXPECTED_STATES)


def test_state_filter_and_its_combination_with_text(model: ImageListModel,
                                                    dataset: Dataset) -> None:
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_state_filter(frozenset({"generated", "edited"}))
    assert proxy_names(proxy) == ["IMG_0001.jpg", "IMG_0002.jpg"]
    proxy.set_text_filter("sofa")
    assert proxy_names(proxy) == ["IMG_0002.jpg"]
    proxy.set_text_filter("")
    proxy.set_state_filter(frozenset({"invalid", "missing", "failed"}))
    assert proxy_names(proxy) == ["broken.jpg", "IMG_0005.jpg", "IMG_0007.jpg"]
    proxy.set_state_filter(frozenset())
    assert proxy.rowCount() == 0
    proxy.set_state_filter(None)
    assert proxy.rowCount() == len(EXPECTED_STATES)
    with pytest.raises(ValueError, match="unknown image state"):
        proxy.set_state_filter(frozenset({"captioned"}))


def test_proxy_follows_a_state_change(model: ImageListModel, dataset: Dataset) -> None:
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_state_filter(frozenset({"uncaptioned"}))
    assert proxy_names(proxy) == ["IMG_0006.jpg"]
    rec = dataset.by_name("IMG_0006.jpg")
    dataset.project.store_generated(rec.id, "a lamp", backend="gemini", model="m", prompt="p")
    model.update_record(dataset.project.image(rec.id))
    assert proxy.rowCount() == 0


# ---------------------------------------------------------------------- delegate


def _option(rect: QRect, palette: QPalette, selected: bool) -> QStyleOptionViewItem:
    opt = QStyleOptionViewItem()
    opt.rect = rect
    opt.palette = palette
    opt.font = QApplication.font()
    opt.fontMetrics = QFontMetrics(opt.font)
    opt.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Active
    if selected:
        opt.state |= QStyle.StateFlag.State_Selected | QStyle.StateFlag.State_HasFocus
    return opt


def _dark_palette() -> QPalette:
    palette = QPalette(QApplication.palette())
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(group, QPalette.ColorRole.Base, QColor("#1e1e1e"))
        palette.setColor(group, QPalette.ColorRole.Window, QColor("#2b2b2b"))
        palette.setColor(group, QPalette.ColorRole.Text, QColor("#e8e8e8"))
        palette.setColor(group, QPalette.ColorRole.Highlight, QColor("#3d6fb0"))
        palette.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    return palette


def _close(a: QColor, b: QColor, tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in
               zip(a.getRgb()[:3], b.getRgb()[:3], strict=True))


def test_delegate_size_is_constant_and_needs_no_image(model: ImageListModel,
                                                      provider: ThumbnailProvider) -> None:
    delegate = ThumbnailDelegate(thumb_size=THUMB)
    opt = QStyleOptionViewItem()
    sizes = {(delegate.sizeHint(opt, model.index(r, 0)).width(),
              delegate.sizeHint(opt, model.index(r, 0)).height())
             for r in range(model.rowCount())}
    expected = cell_size(THUMB)
    assert sizes == {(expected.width(), expected.height())}
    assert expected.width() > THUMB and expected.height() > THUMB * 3 // 4
    assert cell_size(2 * THUMB).width() > expected.width()
    assert provider.pending_count == 0  # sizeHint asked for no thumbnail
    default = ThumbnailDelegate(model)  # the parent is the only positional argument
    assert default.parent() is model
    assert default.sizeHint(opt, model.index(0, 0)) == cell_size()


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_delegate_paints_every_state(model: ImageListModel, dark: bool) -> None:
    delegate = ThumbnailDelegate(thumb_size=THUMB)
    size = cell_size(THUMB)
    palette = _dark_palette() if dark else QPalette(QApplication.palette())
    rect = QRect(0, 0, size.width(), size.height())
    painted_states = set()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        state = index.data(Roles.STATE)
        for selected in (False, True):
            image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(QColor(0, 0, 0, 0))
            painter = QPainter(image)
            try:
                delegate.paint(painter, _option(rect, palette, selected), index)
            finally:
                painter.end()
            area = thumbnail_rect(rect, THUMB)
            # The badge's colour is where the badge sits, whatever the palette.
            badge_side = max(QFontMetrics(QApplication.font()).height() + 2, THUMB // 9)
            probe = image.pixelColor(area.left() + 5, area.top() + 3 + badge_side // 2)
            assert _close(probe, STATE_COLORS[state]), (state, probe.name())
            if selected:  # the selection comes from the palette's highlight
                highlight = palette.color(QPalette.ColorGroup.Active,
                                          QPalette.ColorRole.Highlight)
                assert _close(image.pixelColor(2, size.height() // 2), highlight, 40)
            painted_states.add(state)
    assert painted_states == set(STATES)


# ---------------------------------------------------------------------- labels


def test_grid_labels_tell_images_of_the_same_name_apart() -> None:
    assert grid_labels(["IMG_1.jpg", "a/IMG_2.jpg", "b/IMG_2.jpg", "IMG_2.JPG"]) == [
        "IMG_1.jpg", "a/IMG_2.jpg", "b/IMG_2.jpg", "IMG_2.JPG"]
    # Only as much of the path as it takes; a unique name stays a name.
    assert grid_labels(["x/day1/cam/P1.jpg", "x/day2/cam/P1.jpg", "x/day2/cam/P2.jpg"]) == [
        "day1/cam/P1.jpg", "day2/cam/P1.jpg", "P2.jpg"]


def test_the_grid_labels_two_images_of_the_same_name_by_their_folders(
        tmp_path: Path, provider: ThumbnailProvider) -> None:
    folder = tmp_path / "photos"
    make_photo(folder / "a" / "IMG_002.jpg", seed=1)
    make_photo(folder / "b" / "IMG_002.jpg", seed=2)
    make_photo(folder / "IMG_003.jpg", seed=3)
    with Project.create(tmp_path / "p.loraproj", trigger="ohwx") as project:
        project.add_scanned(scan_folder(folder))
        model = ImageListModel(provider)
        model.set_records(project.images(), project.settings)
        labels = sorted(model.index(r, 0).data() for r in range(model.rowCount()))
        assert labels == ["IMG_003.jpg", "a/IMG_002.jpg", "b/IMG_002.jpg"]
