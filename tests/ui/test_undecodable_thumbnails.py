"""A photo whose pixels do not decode, found by the grid's thumbnail, is marked invalid.

The scan checks headers and structure only: a JPEG whose entropy-coded data is garbage between
intact markers passes it and is listed as valid. The thumbnail loader decodes it, fails, and
the provider says so (``undecodable``) only when the pixels themselves do not decode -- not for
a file that is missing, not a regular file or unreadable, nor for a load nobody wants any more.
The window then marks the image invalid with the reason an export would give, as an export
does, unless the file changed since the scan or the project is open read-only.
"""

from __future__ import annotations

import errno
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication, QMessageBox

from loracap.core import imaging
from loracap.core.imaging import pixel_problem, probe_image
from loracap.core.project import CaptionMode, Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui import main_window as main_window_module
from loracap.ui import thumbnails
from loracap.ui.image_model import Roles
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider, pixel_failure
from tests.core.test_export_undecodable import GARBAGE_REASON, make_garbage_jpeg, sos_end
from tests.fakes.photos import make_photo
from tests.ui.test_thumbnails import LoadSpy

pytestmark = [
    pytest.mark.slow,
    # Qt's JPEG reader says what libjpeg finds in the garbage as warnings; they are expected.
    pytest.mark.qt_log_ignore(
        r"^(Corrupt JPEG data|Unsupported marker type|Bogus marker length|Invalid JPEG file "
        r"structure|Unsupported JPEG process|Premature end of JPEG file)", extend=True),
]

SIZE = 64
MARKED = ("IMG_0042.jpg does not decode: it is marked invalid and left out of captioning and "
          "exports.")


def garbage_jpeg(path: Path) -> Path:
    """The damaged JPEG, with the two facts the tests rest on checked: the scan lists it as
    valid, and Pillow's full decode fails."""
    make_garbage_jpeg(path)
    assert probe_image(path).valid
    with Image.open(path) as im, pytest.raises(OSError):
        im.load()
    return path


def stat_of(path: Path) -> tuple[float, int]:
    info = path.stat()
    return info.st_mtime, info.st_size


# ---------------------------------------------------------------------- the provider


@pytest.fixture
def provider(tmp_path: Path, qapp: QApplication) -> Iterator[ThumbnailProvider]:
    made = ThumbnailProvider(tmp_path / "cache", SIZE)
    yield made
    made.shutdown()


def load(qtbot, provider: ThumbnailProvider, image_id: int, path: Path,
         ) -> list[tuple[int, str, str]]:
    """Ask for a thumbnail, wait for it; return what ``undecodable`` emitted meanwhile."""
    mtime, size = stat_of(path) if path.exists() else (0.0, 0)
    said: list[tuple[int, str, str]] = []
    provider.undecodable.connect(lambda *args: said.append(args))
    with qtbot.waitSignal(provider.thumbnail_ready, timeout=10_000,
                          check_params_cb=lambda got: got == image_id):
        assert provider.pixmap(image_id, path, mtime, size) is None
    QApplication.processEvents()
    return said


def test_a_jpeg_whose_pixels_do_not_decode_is_reported(qtbot, tmp_path: Path,
                                                       provider: ThumbnailProvider) -> None:
    bad = garbage_jpeg(tmp_path / "bad.jpg")
    order: list[str] = []
    provider.thumbnail_ready.connect(lambda _id: order.append("ready"))
    provider.undecodable.connect(lambda *_args: order.append("undecodable"))
    with qtbot.waitSignal(provider.undecodable, timeout=10_000) as blocker:
        provider.pixmap(3, bad, *stat_of(bad))
    assert blocker.args == [3, GARBAGE_REASON, str(bad)]
    assert order == ["ready", "undecodable"]  # the broken pixmap is there first
    mtime, size = stat_of(bad)
    assert provider.pixmap(3, bad, mtime, size).cacheKey() == \
        provider.broken_pixmap().cacheKey()
    with qtbot.assertNotEmitted(provider.undecodable, wait=200):  # not retried
        provider.pixmap(3, bad, mtime, size)


def test_a_good_photo_and_a_file_that_cannot_be_read_are_not_reported(
        qtbot, tmp_path: Path, provider: ThumbnailProvider) -> None:
    good = make_photo(tmp_path / "good.jpg", size=(320, 240))
    assert load(qtbot, provider, 1, good) == []
    gone = garbage_jpeg(tmp_path / "gone.jpg")
    gone.unlink()
    assert load(qtbot, provider, 2, gone) == []  # missing
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert load(qtbot, provider, 3, folder) == []  # not a regular file
    assert provider.pixmap(2, gone, 0.0, 0).cacheKey() == provider.broken_pixmap().cacheKey()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a user whom file permissions stop (not root)")
def test_a_file_without_read_permission_is_not_reported(qtbot, tmp_path: Path,
                                                        provider: ThumbnailProvider) -> None:
    locked = garbage_jpeg(tmp_path / "locked.jpg")
    locked.chmod(0)
    try:
        assert load(qtbot, provider, 1, locked) == []
    finally:
        locked.chmod(0o644)


class FailingRead(io.FileIO):
    """A file whose reads that reach past its first ``limit`` bytes fail with EIO, as a
    failing disk's do."""

    limit = 0

    def _check(self, size: int) -> None:
        if size < 0 or self.tell() + size > self.limit:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    def read(self, size: int = -1) -> bytes:
        self._check(size)
        return super().read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        self._check(len(buffer))
        return super().readinto(buffer)


def test_an_io_error_part_way_is_not_reported(qtbot, tmp_path: Path,
                                              provider: ThumbnailProvider,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bad = garbage_jpeg(tmp_path / "bad.jpg")
    FailingRead.limit = sos_end(bad.read_bytes())  # the header reads, the image data fails

    def failing_open(path: Path, mode: str = "r") -> FailingRead:
        assert mode == "rb"
        return FailingRead(path, "r")

    # pixel_problem's own reads fail (both thumbnail decoders read the file themselves).
    monkeypatch.setattr(imaging, "open", failing_open, raising=False)
    with pytest.raises(OSError):  # an export stops with the read error; nothing is marked
        pixel_problem(bad)
    assert pixel_failure(bad) == ""
    assert load(qtbot, provider, 1, bad) == []


def test_only_the_pixels_decide(qtbot, tmp_path: Path, provider: ThumbnailProvider,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Both thumbnail decoders failing on a photo whose pixels decode (an allocation limit,
    say) reports nothing: the definitive check is the export's decode."""
    good = make_photo(tmp_path / "good.jpg", size=(320, 240))
    monkeypatch.setattr(thumbnails, "_decode_with_qt", lambda path, size: (None, "no plugin"))
    monkeypatch.setattr(thumbnails, "_decode_with_pillow", lambda path, size: (None, "no"))
    said = load(qtbot, provider, 1, good)
    assert provider.pixmap(1, good, *stat_of(good)).cacheKey() == \
        provider.broken_pixmap().cacheKey()
    assert said == []


def test_a_load_invalidated_meanwhile_is_not_reported(qtbot, tmp_path: Path,
                                                      provider: ThumbnailProvider,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spy = LoadSpy(thumbnails.load_thumbnail_image)
    monkeypatch.setattr(thumbnails, "load_thumbnail_image", spy)
    bad = garbage_jpeg(tmp_path / "bad.jpg")
    spy.release.clear()
    assert provider.pixmap(1, bad, *stat_of(bad)) is None
    qtbot.waitUntil(lambda: len(spy.calls) == 1, timeout=5000)  # running: cannot be taken back
    provider.invalidate(1)
    with qtbot.assertNotEmitted(provider.undecodable, wait=1000):
        spy.release.set()
    assert provider.pending_count == 0


def test_pixel_failure_words_the_reason_as_an_export(tmp_path: Path) -> None:
    bad = garbage_jpeg(tmp_path / "bad.jpg")
    assert pixel_failure(bad) == GARBAGE_REASON == pixel_problem(bad)
    assert pixel_failure(make_photo(tmp_path / "good.png", size=(60, 40))) == ""
    assert pixel_failure(tmp_path / "missing.jpg") == ""
    (tmp_path / "dir.jpg").mkdir()
    assert pixel_failure(tmp_path / "dir.jpg") == ""
    nonsense = tmp_path / "nonsense.jpg"
    nonsense.write_bytes(b"not an image at all " * 30)
    assert pixel_failure(nonsense) == pixel_problem(nonsense) != ""


def test_the_thumbnail_reason_tells_a_file_it_cannot_read(tmp_path: Path,
                                                          qapp: QApplication) -> None:
    image, reason = thumbnails.load_thumbnail_image(tmp_path / "gone.jpg", 0.0, 0, SIZE, None)
    assert image is None
    assert reason == "cannot read the file: No such file or directory"
    image, reason = thumbnails.load_thumbnail_image(
        garbage_jpeg(tmp_path / "bad.jpg"), 0.0, 0, SIZE, None)
    assert image is None
    assert reason == "cannot decode the image (broken data stream when reading image file)"


# ---------------------------------------------------------------------- the window


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "hall"
    make_photo(photos / "IMG_0001.jpg", size=(480, 360), seed=1)
    garbage_jpeg(photos / "IMG_0042.jpg")
    return photos


def make_project(folder: Path) -> Path:
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        assert all(rec.valid for rec in project.images())  # the scan lets the damage through
    return path


@pytest.fixture
def make_window(qtbot, app_settings: AppSettings, tmp_path: Path
                ) -> Iterator[Callable[[], tuple[MainWindow, ThumbnailProvider]]]:
    windows: list[MainWindow] = []

    def make() -> tuple[MainWindow, ThumbnailProvider]:
        provider = ThumbnailProvider(tmp_path / "thumbs")
        window = MainWindow(app_settings, provider)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window, provider

    yield make
    for window in windows:
        if window.isVisible():
            window.close()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


def ask_for_thumbnails(window: MainWindow) -> None:
    """What the grid's paint does: ask every row for its thumbnail (the view may have)."""
    model = window.model
    for row in range(model.rowCount()):
        model.data(model.index(row, 0), Qt.ItemDataRole.DecorationRole)


def row_of(window: MainWindow, name: str) -> int:
    model = window.model
    return next(row for row in range(model.rowCount())
                if model.record(row).file_name == name)


def state(window: MainWindow, name: str) -> str:
    return window.model.data(window.model.index(row_of(window, name), 0), Roles.STATE)


def test_the_window_marks_it_invalid_and_says_so(qtbot, make_window, folder: Path) -> None:
    path = make_project(folder)
    window, provider = make_window()
    with qtbot.waitSignal(provider.undecodable, timeout=10_000):
        assert window.open_project(path)
        ask_for_thumbnails(window)
    assert window.statusBar().currentMessage() == MARKED
    bad_row = row_of(window, "IMG_0042.jpg")
    index = window.model.index(bad_row, 0)
    assert state(window, "IMG_0042.jpg") == "invalid"
    assert window.model.record(bad_row).invalid_reason == GARBAGE_REASON
    tooltip = window.model.data(index, Qt.ItemDataRole.ToolTipRole).replace("<br>", " ")
    assert f"Invalid file {GARBAGE_REASON}" in tooltip
    assert window.model.data(index, Qt.ItemDataRole.DecorationRole).cacheKey() == \
        provider.broken_pixmap().cacheKey()
    assert state(window, "IMG_0001.jpg") == "uncaptioned"  # the good one beside it
    assert window.model.status_counts()["valid"] == 1
    window.close()

    with Project.open(path) as project:
        records = {rec.file_name: rec for rec in project.images()}
        assert not records["IMG_0042.jpg"].valid
        assert records["IMG_0042.jpg"].invalid_reason == GARBAGE_REASON
        assert records["IMG_0001.jpg"].valid and records["IMG_0001.jpg"].invalid_reason == ""
        chosen, _protected = project.select_for_captioning(CaptionMode.ALL)
        assert chosen == [records["IMG_0001.jpg"].id]


def test_several_at_once_are_said_in_one_message(qtbot, make_window, folder: Path) -> None:
    garbage_jpeg(folder / "IMG_0043.jpg")
    path = make_project(folder)
    window, provider = make_window()
    said: list[int] = []
    provider.undecodable.connect(lambda image_id, *_rest: said.append(image_id))
    assert window.open_project(path)
    ask_for_thumbnails(window)
    qtbot.waitUntil(lambda: len(said) == 2, timeout=10_000)
    message = window.statusBar().currentMessage()
    assert message in (
        f"2 images do not decode ({first}, {second}); they are marked invalid and left out "
        "of captioning and exports." for first, second in (("IMG_0042.jpg", "IMG_0043.jpg"),
                                                           ("IMG_0043.jpg", "IMG_0042.jpg")))
    assert (state(window, "IMG_0042.jpg"), state(window, "IMG_0043.jpg")) == (
        "invalid", "invalid")


@pytest.mark.parametrize("change", ["mtime", "size"])
def test_a_file_changed_since_the_scan_is_not_marked(qtbot, make_window, folder: Path,
                                                     change: str) -> None:
    path = make_project(folder)
    bad = folder / "IMG_0042.jpg"
    if change == "mtime":
        mtime, _size = stat_of(bad)
        os.utime(bad, (mtime + 60, mtime + 60))
    else:
        with bad.open("ab") as out:
            out.write(b"\0" * 16)
    window, provider = make_window()
    with qtbot.waitSignal(provider.undecodable, timeout=10_000):
        assert window.open_project(path)
        ask_for_thumbnails(window)
    assert state(window, "IMG_0042.jpg") == "uncaptioned"
    assert window.statusBar().currentMessage() == ""
    window.close()
    with Project.open(path, read_only=True) as project:
        assert all(rec.valid for rec in project.images())


def test_a_read_only_project_is_not_written(qtbot, make_window, folder: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """(The window opens projects for writing; the command line opens them read-only, and
    the window's controllers guard on ``read_only`` all the same.)"""
    path = make_project(folder)
    with Project.open(path) as project:  # the window shows it without storing a new one
        project.update_settings(current_image_id=project.images()[0].id)
    before = path.read_bytes()
    errors: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda _parent, _title, text, *_a: errors.append(text)))
    window, provider = make_window()
    with qtbot.waitSignal(provider.undecodable, timeout=10_000):
        window._set_project(Project.open(path, read_only=True))
        ask_for_thumbnails(window)
    assert window.project is not None and window.project.read_only
    assert window.statusBar().currentMessage() == (
        f"IMG_0042.jpg does not decode: {GARBAGE_REASON}. The project is open read-only, so "
        "it is not marked invalid.")
    assert state(window, "IMG_0042.jpg") == "uncaptioned"
    window.close()
    assert errors == []
    assert path.read_bytes() == before
    with Project.open(path, read_only=True) as project:
        assert all(rec.valid for rec in project.images())


def test_an_image_already_invalid_is_left_alone(qtbot, make_window, folder: Path) -> None:
    path = make_project(folder)
    with Project.open(path) as project:
        bad_id = next(rec.id for rec in project.images() if rec.file_name == "IMG_0042.jpg")
        project.mark_invalid(bad_id, "marked before")
    window, _provider = make_window()
    assert window.open_project(path)
    assert window.project is not None
    bad = window.model.record(row_of(window, "IMG_0042.jpg"))
    assert not window.undecodable.report(bad.id, GARBAGE_REASON, str(bad.abs_path))
    assert window.project.image(bad.id).invalid_reason == "marked before"
    good = window.model.record(row_of(window, "IMG_0001.jpg"))
    # A path that is not the image's (a load of a project closed since) marks nothing.
    assert not window.undecodable.report(good.id, GARBAGE_REASON, str(bad.abs_path))
    assert window.project.image(good.id).valid
    assert window.statusBar().currentMessage() == ""


def test_a_report_while_a_large_project_opens_waits_for_it(
        qtbot, make_window, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large project shows its first rows before its file is open: a thumbnail found
    undecodable then is marked once the project is open."""
    for number in range(2, 6):
        make_photo(folder / f"IMG_{number + 50:04d}.jpg", size=(64, 48), seed=number)
    path = make_project(folder)
    monkeypatch.setattr(main_window_module, "FIRST_PAGE", 3)
    opening = threading.Event()
    real_open = Project.open.__func__  # type: ignore[attr-defined]

    def held_open(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread() is not threading.main_thread():
            assert opening.wait(20)
        return real_open(cls, *args, **kwargs)

    monkeypatch.setattr(Project, "open", classmethod(held_open))
    window, provider = make_window()
    with qtbot.waitSignal(provider.undecodable, timeout=10_000):
        assert window.open_project(path)
        assert window.project is None and window.model.loading
        ask_for_thumbnails(window)
    assert state(window, "IMG_0042.jpg") == "uncaptioned"  # nothing to write to yet
    with qtbot.waitSignal(window.project_opened, timeout=20_000):
        opening.set()
    assert state(window, "IMG_0042.jpg") == "invalid"
    assert window.project is not None
    assert window.project.image(
        window.model.record(row_of(window, "IMG_0042.jpg")).id).invalid_reason == \
        GARBAGE_REASON
