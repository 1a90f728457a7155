"""The thumbnail provider: background loads, EXIF orientation, disk cache, bounds, cancelling."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from PyQt6.QtCore import QRect, QSizeF, Qt
from PyQt6.QtGui import QImage, QPainter, QPixmap, QStandardItem, QStandardItemModel
from PyQt6.QtWidgets import QApplication, QStyleOptionViewItem

from loracap.ui import thumbnails
from loracap.ui.delegate import ThumbnailDelegate, cell_size, thumbnail_rect
from loracap.ui.thumbnails import (
    ThumbnailProvider,
    default_cache_dir,
    disk_cache_name,
    load_thumbnail_image,
    prune_disk_cache,
)
from tests.fakes.photos import make_photo

SIZE = 64


class LoadSpy:
    """Wraps ``load_thumbnail_image``: records the thread of every call; can hold loads back."""

    def __init__(self, real: Callable[..., object]) -> None:
        self._real = real
        self.calls: list[tuple[Path, int]] = []
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def __call__(self, path: Path, *args: object) -> object:
        with self._lock:
            self.calls.append((Path(path), threading.get_ident()))
        assert self.release.wait(10), "the test never released the load"
        return self._real(path, *args)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> LoadSpy:
    recorder = LoadSpy(thumbnails.load_thumbnail_image)
    monkeypatch.setattr(thumbnails, "load_thumbnail_image", recorder)
    return recorder


@pytest.fixture
def make_provider(tmp_path: Path, qapp: QApplication) -> Iterator[Callable[..., ThumbnailProvider]]:
    made: list[ThumbnailProvider] = []

    def factory(cache_dir: Path | None = tmp_path / "cache", size: int = SIZE,
                **kwargs: float) -> ThumbnailProvider:
        provider = ThumbnailProvider(cache_dir, size, **kwargs)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.shutdown()


def stat_of(path: Path) -> tuple[float, int]:
    st = path.stat()
    return st.st_mtime, st.st_size


def load(qtbot, provider: ThumbnailProvider, image_id: int, path: Path,
         mtime: float | None = None, size: int | None = None) -> QPixmap:
    """Ask for a thumbnail, wait for it, return it."""
    real_mtime, real_size = stat_of(path) if path.exists() else (0.0, 0)
    mtime = real_mtime if mtime is None else mtime
    size = real_size if size is None else size
    with qtbot.waitSignal(provider.thumbnail_ready, timeout=5000,
                          check_params_cb=lambda got: got == image_id):
        assert provider.pixmap(image_id, path, mtime, size) is None
    pixmap = provider.pixmap(image_id, path, mtime, size)
    assert pixmap is not None
    return pixmap


def test_exif_orientation_is_applied_and_the_size_bounded(qtbot, tmp_path: Path,
                                                          make_provider) -> None:
    rotated = make_photo(tmp_path / "rotated.jpg", size=(400, 200), orientation=6)
    plain = make_photo(tmp_path / "plain.jpg", size=(400, 200))
    provider = make_provider()
    thumb = load(qtbot, provider, 1, rotated)
    assert thumb.height() > thumb.width()
    assert (thumb.width(), thumb.height()) == (SIZE // 2, SIZE)
    thumb = load(qtbot, provider, 2, plain)
    assert (thumb.width(), thumb.height()) == (SIZE, SIZE // 2)
    small = make_photo(tmp_path / "small.png", size=(40, 30))
    thumb = load(qtbot, provider, 3, small)
    assert (thumb.width(), thumb.height()) == (40, 30)  # never enlarged


def test_a_miss_queues_one_load_on_another_thread(qtbot, tmp_path: Path, make_provider,
                                                  spy: LoadSpy) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(320, 240))
    mtime, size = stat_of(photo)
    provider = make_provider()
    spy.release.clear()  # hold the load in the worker until the GUI side has been checked
    assert provider.pixmap(7, photo, mtime, size) is None
    assert provider.pending_count == 1
    assert provider.pixmap(7, photo, mtime, size) is None  # no second load while pending
    assert provider.pending_count == 1
    qtbot.waitUntil(lambda: len(spy.calls) == 1, timeout=5000)
    with qtbot.waitSignal(provider.thumbnail_ready, timeout=5000):
        spy.release.set()
    assert provider.pending_count == 0
    assert provider.pixmap(7, photo, mtime, size) is not None
    assert len(spy.calls) == 1
    gui_thread = threading.get_ident()
    assert all(ident != gui_thread for _path, ident in spy.calls)


def test_the_disk_cache_serves_a_new_provider(qtbot, tmp_path: Path, make_provider,
                                              spy: LoadSpy) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(320, 240))
    mtime, size = stat_of(photo)
    cache = tmp_path / "cache"
    first = make_provider(cache)
    original = load(qtbot, first, 1, photo)
    cached_file = cache / disk_cache_name(photo, mtime, size, SIZE)
    assert cached_file.is_file()
    assert [p.name for p in cache.iterdir()] == [cached_file.name]  # no temporary file left
    first.shutdown()

    photo.unlink()  # only the disk cache can answer now
    second = make_provider(cache)
    again = load(qtbot, second, 1, photo, mtime, size)
    assert (again.width(), again.height()) == (original.width(), original.height())
    assert again.cacheKey() != second.broken_pixmap().cacheKey()

    # Another thumbnail size or another mtime is another entry: not found, and the file is gone.
    other = make_provider(cache, size=SIZE + 1)
    assert load(qtbot, other, 1, photo, mtime, size).cacheKey() == \
        other.broken_pixmap().cacheKey()
    assert load(qtbot, second, 2, photo, mtime + 1, size).cacheKey() == \
        second.broken_pixmap().cacheKey()


def test_a_corrupt_file_gets_the_broken_pixmap_once(qtbot, tmp_path: Path, make_provider,
                                                    spy: LoadSpy) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"definitely not an image " * 40)
    provider = make_provider()
    broken = load(qtbot, provider, 5, corrupt)
    assert broken.cacheKey() == provider.broken_pixmap().cacheKey()
    assert broken.cacheKey() != provider.placeholder().cacheKey()
    mtime, size = stat_of(corrupt)
    with qtbot.assertNotEmitted(provider.thumbnail_ready, wait=200):
        for _ in range(5):
            assert provider.pixmap(5, corrupt, mtime, size) is broken or \
                provider.pixmap(5, corrupt, mtime, size).cacheKey() == broken.cacheKey()
    assert provider.pending_count == 0
    assert len(spy.calls) == 1  # no retry loop
    assert not list((tmp_path / "cache").glob("*.png"))  # failures are not written to disk


def test_pillow_decodes_what_qt_cannot(tmp_path: Path, qapp: QApplication,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thumbnails, "_decode_with_qt", lambda path, size: (None, "no plugin"))
    rotated = make_photo(tmp_path / "rotated.jpg", size=(400, 200), orientation=6)
    mtime, size = stat_of(rotated)
    image, reason = load_thumbnail_image(rotated, mtime, size, SIZE, None)
    assert reason == "" and image is not None
    assert (image.width(), image.height()) == (SIZE // 2, SIZE)
    image, reason = load_thumbnail_image(tmp_path / "nothing.jpg", 0.0, 0, SIZE, None)
    assert image is None and reason


def test_the_memory_cache_is_bounded(qtbot, tmp_path: Path, make_provider) -> None:
    photos = [make_photo(tmp_path / f"p{i}.jpg", size=(320, 240), seed=i) for i in range(3)]
    provider = make_provider(max_entries=2)
    for image_id, photo in enumerate(photos):
        load(qtbot, provider, image_id, photo)
    assert provider.cached_count == 2
    mtime, size = stat_of(photos[0])
    assert provider.pixmap(0, photos[0], mtime, size) is None  # the oldest went first
    assert provider.pending_count == 1

    one = SIZE * SIZE * 3 // 4 * 4  # bytes of one 4:3 thumbnail at 32 bits per pixel
    by_bytes = make_provider(max_bytes=one + one // 2)
    for image_id, photo in enumerate(photos):
        load(qtbot, by_bytes, image_id, photo)
    assert by_bytes.cached_count == 1
    assert by_bytes.cached_bytes == one


def test_invalidate_and_a_changed_file_load_again(qtbot, tmp_path: Path, make_provider,
                                                  spy: LoadSpy) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(320, 240))
    provider = make_provider(None)  # no disk cache: every load decodes
    load(qtbot, provider, 1, photo)
    provider.invalidate(1)
    mtime, size = stat_of(photo)
    assert provider.pixmap(1, photo, mtime, size) is None
    qtbot.waitSignal(provider.thumbnail_ready, timeout=5000).wait()
    make_photo(photo, size=(100, 300), seed=4)
    tall = load(qtbot, provider, 1, photo)  # new mtime and size: the old pixmap is not used
    assert tall.height() > tall.width()
    assert len(spy.calls) == 3


def test_shutdown_cancels_queued_loads(qtbot, tmp_path: Path, make_provider,
                                       spy: LoadSpy) -> None:
    photos = [make_photo(tmp_path / f"p{i}.jpg", size=(160, 120), seed=i) for i in range(6)]
    provider = make_provider()
    spy.release.clear()
    for image_id, photo in enumerate(photos):
        provider.pixmap(image_id, photo, *stat_of(photo))
    assert provider.pending_count == 6
    qtbot.waitUntil(lambda: len(spy.calls) == thumbnails.LOADER_THREADS, timeout=5000)
    timer = threading.Timer(0.2, spy.release.set)
    timer.start()
    with qtbot.assertNotEmitted(provider.thumbnail_ready, wait=200):
        provider.shutdown()  # takes the queued loads out, waits for the two running ones
    timer.join()
    assert len(spy.calls) == thumbnails.LOADER_THREADS
    assert provider.pending_count == 0
    assert provider.pixmap(0, photos[0], *stat_of(photos[0])) is None
    assert provider.pending_count == 0  # a closed provider queues nothing


def test_clear_drops_pending_results(qtbot, tmp_path: Path, make_provider,
                                     spy: LoadSpy) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(160, 120))
    provider = make_provider()
    spy.release.clear()
    provider.pixmap(1, photo, *stat_of(photo))
    qtbot.waitUntil(lambda: len(spy.calls) == 1, timeout=5000)
    provider.clear()
    assert provider.pending_count == 0
    with qtbot.assertNotEmitted(provider.thumbnail_ready, wait=300):
        spy.release.set()
    assert provider.cached_count == 0


def test_placeholder_and_default_cache_dir(make_provider) -> None:
    provider = make_provider(size=80)
    placeholder = provider.placeholder()
    assert (placeholder.width(), placeholder.height()) == (80, 60)
    assert provider.placeholder().cacheKey() == placeholder.cacheKey()
    assert (provider.broken_pixmap().width(), provider.broken_pixmap().height()) == (80, 60)
    assert default_cache_dir().name == "thumbnails"
    assert default_cache_dir().parent != Path("")


# ---------------------------------------------------------------------- HiDPI


def test_a_2x_provider_decodes_twice_the_pixels_at_the_same_logical_size(
        qtbot, tmp_path: Path, make_provider) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(400, 200))
    small = make_photo(tmp_path / "small.png", size=(40, 30))
    middle = make_photo(tmp_path / "middle.png", size=(100, 50))
    one = make_provider(tmp_path / "cache1")
    two = make_provider(tmp_path / "cache2", device_pixel_ratio=2.0)
    assert (one.physical_size, two.physical_size) == (SIZE, 2 * SIZE)
    base, sharp = load(qtbot, one, 1, photo), load(qtbot, two, 1, photo)
    assert (base.width(), base.height()) == (SIZE, SIZE // 2)
    assert (sharp.width(), sharp.height()) == (2 * SIZE, SIZE)  # physical pixels
    assert sharp.devicePixelRatio() == 2.0
    assert sharp.deviceIndependentSize() == base.deviceIndependentSize() == QSizeF(SIZE, SIZE / 2)
    assert two.cached_bytes == 4 * one.cached_bytes == 4 * (SIZE * SIZE // 2 * 4)  # physical
    # Smaller than the physical size: the whole photo, at the logical size a 1x load gives.
    for image_id, path in ((2, small), (3, middle)):
        base, sharp = load(qtbot, one, image_id, path), load(qtbot, two, image_id, path)
        assert sharp.deviceIndependentSize() == base.deviceIndependentSize()
    assert (sharp.width(), sharp.height()) == (100, 50)  # all the pixels there are
    assert two.cached_bytes == (2 * SIZE) * SIZE * 4 + 40 * 30 * 4 + 100 * 50 * 4


def test_1x_and_2x_disk_entries_coexist(qtbot, tmp_path: Path, make_provider,
                                        spy: LoadSpy) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(400, 300))
    mtime, size = stat_of(photo)
    cache = tmp_path / "cache"
    load(qtbot, make_provider(cache), 1, photo)
    load(qtbot, make_provider(cache, device_pixel_ratio=2.0), 1, photo)
    names = {p.name for p in cache.iterdir()}
    assert names == {disk_cache_name(photo, mtime, size, SIZE),
                     disk_cache_name(photo, mtime, size, 2 * SIZE)}
    with Image.open(cache / disk_cache_name(photo, mtime, size, 2 * SIZE)) as stored:
        assert stored.size == (2 * SIZE, 2 * SIZE * 3 // 4)
    with Image.open(cache / disk_cache_name(photo, mtime, size, SIZE)) as stored:
        assert stored.size == (SIZE, SIZE * 3 // 4)

    photo.unlink()  # only the disk cache can answer now, at either ratio
    for ratio, width in ((1.0, SIZE), (2.0, 2 * SIZE)):
        again = load(qtbot, make_provider(cache, device_pixel_ratio=ratio), 1, photo,
                     mtime, size)
        assert again.width() == width
        assert again.deviceIndependentSize() == QSizeF(SIZE, SIZE * 3 / 4)


def test_changing_the_device_pixel_ratio_reloads(qtbot, tmp_path: Path, make_provider,
                                                 spy: LoadSpy) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(400, 200))
    mtime, size = stat_of(photo)
    provider = make_provider()
    assert load(qtbot, provider, 1, photo).width() == SIZE
    placeholder = provider.placeholder()
    provider.set_device_pixel_ratio(1.0)  # no change: nothing dropped
    assert provider.pixmap(1, photo, mtime, size) is not None

    provider.set_device_pixel_ratio(2.0)
    assert provider.device_pixel_ratio == 2.0
    assert provider.cached_count == 0 and provider.cached_bytes == 0
    sharp = load(qtbot, provider, 1, photo)
    assert (sharp.width(), sharp.devicePixelRatio()) == (2 * SIZE, 2.0)
    assert sharp.deviceIndependentSize() == QSizeF(SIZE, SIZE / 2)
    assert provider.placeholder().cacheKey() != placeholder.cacheKey()
    assert provider.placeholder().width() == 2 * SIZE
    assert len(spy.calls) == 2

    # A load still running at the old ratio is not shown after the change.
    spy.release.clear()
    provider.invalidate(1)
    assert provider.pixmap(1, photo, mtime, size) is None
    qtbot.waitUntil(lambda: len(spy.calls) == 3, timeout=5000)
    provider.set_device_pixel_ratio(1.0)
    assert provider.pending_count == 0
    with qtbot.assertNotEmitted(provider.thumbnail_ready, wait=300):
        spy.release.set()
    assert load(qtbot, provider, 1, photo).width() == SIZE
    with pytest.raises(ValueError):
        provider.set_device_pixel_ratio(0.0)


def test_placeholder_and_broken_pixmap_are_drawn_at_the_device_pixel_ratio(
        make_provider) -> None:
    provider = make_provider(size=80, device_pixel_ratio=2.0)
    for pixmap in (provider.placeholder(), provider.broken_pixmap()):
        assert (pixmap.width(), pixmap.height()) == (160, 120)
        assert pixmap.devicePixelRatio() == 2.0
        assert pixmap.deviceIndependentSize() == QSizeF(80, 60)
    # Drawn in logical pixels onto the 2x surface: the frame fills it, not its top-left quarter.
    image = provider.placeholder().toImage()
    assert image.pixelColor(150, 110).alpha() > 0
    assert image.pixelColor(159, 119).alpha() == 0  # outside the rounded corner


def _paint_cell(delegate: ThumbnailDelegate, pixmap: QPixmap, ratio: float) -> QImage:
    """The delegate's painting of one cell holding ``pixmap``, on a surface of ``ratio``."""
    model = QStandardItemModel()
    item = QStandardItem("photo.jpg")
    item.setData(pixmap, Qt.ItemDataRole.DecorationRole)
    model.appendRow(item)
    cell = delegate.sizeHint(QStyleOptionViewItem(), model.index(0, 0))
    image = QImage(round(cell.width() * ratio), round(cell.height() * ratio),
                   QImage.Format.Format_ARGB32_Premultiplied)
    image.setDevicePixelRatio(ratio)
    image.fill(Qt.GlobalColor.transparent)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, cell.width(), cell.height())
    painter = QPainter(image)
    try:
        delegate.paint(painter, option, model.index(0, 0))
    finally:
        painter.end()
    return image


def _opaque_box(image: QImage, below: int) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom; physical) of the opaque pixels above ``below``."""
    xs, ys = [], []
    for y in range(min(below, image.height())):
        for x in range(image.width()):
            if image.pixelColor(x, y).alpha() == 255:
                xs.append(x)
                ys.append(y)
    assert xs, "nothing was painted"
    return min(xs), min(ys), max(xs), max(ys)


def test_the_delegate_lays_a_2x_thumbnail_out_like_a_1x_one(qtbot, tmp_path: Path,
                                                            make_provider) -> None:
    photo = make_photo(tmp_path / "a.jpg", size=(400, 200))
    base = load(qtbot, make_provider(tmp_path / "c1"), 1, photo)
    sharp = load(qtbot, make_provider(tmp_path / "c2", device_pixel_ratio=2.0), 1, photo)
    delegate = ThumbnailDelegate(thumb_size=SIZE)
    assert delegate.sizeHint(QStyleOptionViewItem(), QStandardItemModel().index(0, 0)) == \
        cell_size(SIZE)
    area = thumbnail_rect(QRect(0, 0, cell_size(SIZE).width(), cell_size(SIZE).height()), SIZE)
    below = area.bottom() + 1  # the file name is painted under the thumbnail area

    # On a 1x surface both take the same cells: the 4:3 area's width, centred vertically.
    box_1x = _opaque_box(_paint_cell(delegate, base, 1.0), below)
    box_2x = _opaque_box(_paint_cell(delegate, sharp, 1.0), below)
    assert box_1x == box_2x
    left, top, right, bottom = box_1x
    assert (right - left + 1, bottom - top + 1) == (SIZE, SIZE // 2)
    assert (left, top) == (area.left(), area.top() + (area.height() - SIZE // 2) // 2)

    # On a 2x surface the 2x pixmap is drawn 1:1: every physical pixel is the pixmap's own.
    painted = _paint_cell(delegate, sharp, 2.0)
    left, top, right, bottom = _opaque_box(painted, 2 * below)
    assert (right - left + 1, bottom - top + 1) == (2 * SIZE, SIZE)
    source = sharp.toImage().convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    for x, y in ((0, 0), (17, 5), (2 * SIZE - 1, SIZE - 1), (SIZE + 3, SIZE // 2 + 1)):
        want, got = source.pixelColor(x, y), painted.pixelColor(left + x, top + y)
        assert max(abs(want.red() - got.red()), abs(want.green() - got.green()),
                   abs(want.blue() - got.blue())) <= 2, (x, y)


# ---------------------------------------------------------------------- disk cache pruning


def _entry_name(index: int) -> str:
    return hashlib.sha1(f"entry {index}".encode()).hexdigest() + ".png"


def _write_png(path: Path, seed: int, side: int = 48) -> int:
    """A real PNG of random noise (so its size is predictable and not tiny); its bytes."""
    Image.effect_noise((side, side), 60 + seed).convert("RGB").save(path, "PNG")
    return path.stat().st_size


def _set_age(path: Path, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def test_prune_removes_the_oldest_entries_down_to_80_percent(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    sizes: list[int] = []
    for i in range(10):  # entry 0 is the oldest
        path = cache / _entry_name(i)
        sizes.append(_write_png(path, i))
        _set_age(path, 1000 - i * 10)
    total = sum(sizes)
    # What is not an entry stays, however old or large.
    others = {
        "notes.txt": b"mine" * 10_000,
        "photo.png": b"x" * 10_000,
        _entry_name(99).upper().replace(".PNG", ".png"): b"x" * 10_000,
        _entry_name(98).replace(".png", ".jpg"): b"x" * 10_000,
        _entry_name(97) + ".bak": b"x" * 10_000,
    }
    for name, data in others.items():
        (cache / name).write_bytes(data)
        _set_age(cache / name, 10 * 86_400)
    (cache / _entry_name(96)).mkdir()  # a folder named like an entry
    stale = cache / (_entry_name(95) + ".aB3xYz")  # QSaveFile's leftover of a killed process
    stale.write_bytes(b"partial" * 100)
    _set_age(stale, 2 * 86_400)
    fresh = cache / (_entry_name(94) + ".Qw12Er")  # may be being written right now
    fresh.write_bytes(b"partial" * 100)

    assert prune_disk_cache(cache, total) == (1, 700)  # under the bound: only the leftover
    assert not stale.exists() and fresh.exists()
    assert all((cache / _entry_name(i)).exists() for i in range(10))

    bound = total - 1
    removed, freed = prune_disk_cache(cache, bound)
    left = [i for i in range(10) if (cache / _entry_name(i)).exists()]
    gone = [i for i in range(10) if i not in left]
    assert gone == list(range(len(gone))) and gone  # the oldest, in order
    assert (removed, freed) == (len(gone), sum(sizes[i] for i in gone))
    remaining = sum(sizes[i] for i in left)
    assert remaining <= 0.8 * bound
    assert remaining + sizes[gone[-1]] > 0.8 * bound  # no more than needed
    for name, data in others.items():
        assert (cache / name).read_bytes() == data
    assert (cache / _entry_name(96)).is_dir() and fresh.exists()
    assert prune_disk_cache(cache, bound) == (0, 0)  # under the bound now
    assert prune_disk_cache(tmp_path / "missing") == (0, 0)


def test_a_cache_hit_refreshes_the_entry_so_it_survives_pruning(
        qtbot, tmp_path: Path, make_provider) -> None:
    cache = tmp_path / "cache"
    photos = [make_photo(tmp_path / f"p{i}.jpg", size=(320, 240), seed=i) for i in range(2)]
    first = make_provider(cache)
    for image_id, photo in enumerate(photos):
        load(qtbot, first, image_id, photo)
    entries = [cache / disk_cache_name(p, *stat_of(p), SIZE) for p in photos]
    _set_age(entries[0], 2000)  # photo 0 was used longest ago...
    _set_age(entries[1], 1000)
    old = entries[0].stat().st_mtime

    load(qtbot, make_provider(cache), 0, photos[0])  # ...but is shown again: a disk hit
    assert entries[0].stat().st_mtime > old + 1000

    sizes = [p.stat().st_size for p in entries]
    bound = int(max(sizes) / 0.8) + 1  # room for one entry after pruning, not for two
    assert sum(sizes) > bound
    assert prune_disk_cache(cache, bound) == (1, sizes[1])
    assert entries[0].exists() and not entries[1].exists()


def test_start_pruning_runs_in_the_background(qtbot, tmp_path: Path, make_provider,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    sizes = []
    for i in range(6):
        sizes.append(_write_png(cache / _entry_name(i), i))
        _set_age(cache / _entry_name(i), 100 - i)
    (cache / "keep.txt").write_text("not a thumbnail")
    threads: list[int] = []
    real = thumbnails.prune_disk_cache

    def recording(*args: object, **kwargs: object) -> tuple[int, int]:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(thumbnails, "prune_disk_cache", recording)
    provider = make_provider(cache, disk_cache_bytes=sum(sizes) // 2)
    with qtbot.waitSignal(provider.pruned, timeout=5000) as blocker:
        assert provider.start_pruning()
        assert provider.pruning
        assert not provider.start_pruning()  # one run at a time
    removed, freed = blocker.args
    assert removed >= 3 and freed == sum(sizes[:removed])
    assert threads and threads[0] != threading.get_ident()
    assert not provider.pruning
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        ["keep.txt"] + [_entry_name(i) for i in range(removed, 6)])
    assert sum(p.stat().st_size for p in cache.glob("*.png")) <= 0.8 * (sum(sizes) // 2)

    assert not make_provider(None).start_pruning()  # no disk cache: nothing to prune
    provider.shutdown()
    assert not provider.start_pruning()


def test_window_follows_the_screen_scale(qtbot, tmp_path: Path) -> None:
    from PyQt6.QtCore import QSettings

    from loracap.ui.main_window import MainWindow
    from loracap.ui.settings import AppSettings

    provider = ThumbnailProvider(tmp_path / "cache", device_pixel_ratio=3.0)
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, provider)
    qtbot.addWidget(window)
    window.show()
    screen = window.windowHandle().screen()
    assert provider.device_pixel_ratio == screen.devicePixelRatio()
    window.close()
