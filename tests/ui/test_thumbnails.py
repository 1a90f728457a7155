"""The thumbnail provider: background loads, EXIF orientation, disk cache, bounds, cancelling."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PyQt6.QtGui import QPixmap
from PyQt6.QtWidgets import QApplication

from loracap.ui import thumbnails
from loracap.ui.thumbnails import (
    ThumbnailProvider,
    default_cache_dir,
    disk_cache_name,
    load_thumbnail_image,
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
                **kwargs: int) -> ThumbnailProvider:
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
