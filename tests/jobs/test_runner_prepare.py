"""Preparing the uploads of a batch (issue 15): off the request slots, on a pool of one thread per
core, and once per photo -- a second pass, with another backend, reads them from the upload
cache instead of decoding and encoding them again. An image whose pixels do not decode is still
marked invalid."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loracap.core import imaging
from loracap.core.backends.base import BackendConfig
from loracap.core.backends.registry import create_captioner
from loracap.core.project import Project
from loracap.core.prompts import Profile, build_instructions
from loracap.core.records import CaptionMode
from loracap.core.scan import scan_folder
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
from tests.core.test_export_undecodable import make_garbage_jpeg
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow


class Preparations:
    """Counts the calls of the real :func:`imaging.prepare_for_upload` and how many ran at
    once (each takes at least ``hold_s`` seconds, so that calls free to overlap do)."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.files: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self._hold_s = hold_s
        self._lock = threading.Lock()
        self._real = imaging.prepare_for_upload

    def __call__(self, path: Path, max_side: int = 1536, quality: int = 90) -> bytes:
        with self._lock:
            self.files.append(Path(path).name)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self._hold_s)
            return self._real(path, max_side, quality)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user folder of this test's own: its upload cache starts empty."""
    monkeypatch.setenv("LORACAP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LORACAP_NO_UPLOAD_CACHE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Preparations:
    preparations = Preparations()
    monkeypatch.setattr(imaging, "prepare_for_upload", preparations)
    return preparations


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 6, size=(900, 600))
    with Project.create(folder / "hall.loraproj", trigger="hall") as proj:
        proj.add_scanned(scan_folder(folder))
        yield proj


def run(qtbot: Any, project: Project, config: BackendConfig, **options: Any) -> BatchSummary:
    options.setdefault("base_delay_s", 0.01)
    captioner = create_captioner(config)
    runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT),
                           BatchOptions(**options))
    try:
        with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
            runner.start()
        assert runner.wait(30_000)
    finally:
        captioner.close()
    summary: BatchSummary = blocker.args[0]
    return summary


def gemini(server: FakeGeminiServer) -> BackendConfig:
    return BackendConfig("gemini", "gemini-flash-latest", server.base_url, "test-key", 10.0)


def test_a_second_pass_with_another_backend_does_not_prepare_the_photos_again(
        qtbot: Any, project: Project, server: FakeGeminiServer, home: Path,
        counted: Preparations) -> None:
    first = run(qtbot, project, gemini(server), workers=3, rpm=0)
    assert (first.done, first.failed, first.stop_error) == (6, [], None)
    assert sorted(counted.files) == sorted(f"IMG_{i:04d}.jpg" for i in range(1, 7))
    sent = sorted(request.image or b"" for request in server.generate_requests)

    with FakeOpenAIServer() as openai:
        config = BackendConfig("openai", "gpt-4o-mini", openai.base_url, "", 10.0)
        second = run(qtbot, project, config, workers=3, rpm=0, mode=CaptionMode.ALL)
        assert (second.done, second.failed, second.stop_error) == (6, [], None)
        assert len(counted.files) == 6  # nothing decoded or encoded again
        assert sorted(chat.image or b"" for chat in openai.chat_requests) == sent
    assert {rec.caption.backend for rec in project.images() if rec.caption} == {"openai"}
    assert len(list((home / "cache" / "uploads").glob("*/*.upload"))) == 6


def test_without_the_cache_every_pass_prepares_every_photo(
        qtbot: Any, project: Project, server: FakeGeminiServer, home: Path,
        counted: Preparations, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORACAP_NO_UPLOAD_CACHE", "1")
    run(qtbot, project, gemini(server), workers=3, rpm=0)
    run(qtbot, project, gemini(server), workers=3, rpm=0, mode=CaptionMode.ALL)
    assert len(counted.files) == 12
    assert not (home / "cache" / "uploads").exists()


def test_a_batch_prepares_no_more_photos_at_once_than_there_are_cores(
        qtbot: Any, project: Project, server: FakeGeminiServer, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each preparation holds on a moment: sixteen request slots preparing their own photos
    # would overlap six of them; the batch's preparation pool has one thread per core.
    preparations = Preparations(hold_s=0.1)
    monkeypatch.setattr(imaging, "prepare_for_upload", preparations)
    summary = run(qtbot, project, gemini(server), workers=16, rpm=0)
    assert summary.done == 6
    assert len(preparations.files) == 6
    assert 1 <= preparations.most_at_once <= min(6, os.cpu_count() or 1)


@pytest.mark.parametrize("workers", [1, 4])
def test_an_image_whose_pixels_do_not_decode_is_still_marked_invalid(
        qtbot: Any, tmp_path: Path, server: FakeGeminiServer, home: Path,
        counted: Preparations, workers: int) -> None:
    folder = tmp_path / "broken"
    make_photo_folder(folder, 3, size=(640, 480))
    make_garbage_jpeg(folder / "IMG_0002.jpg")
    with Project.create(folder / "broken.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        summary = run(qtbot, project, gemini(server), workers=workers, rpm=0)
        assert summary.done == 2 and len(summary.failed) == 1
        assert summary.failed[0][1] == "IMG_0002.jpg"
        broken = next(rec for rec in project.images() if rec.path == "IMG_0002.jpg")
        assert not broken.valid and broken.invalid_reason and not broken.failed
        assert len(server.generate_requests) == 2  # nothing sent for the broken image
        # Nothing was kept for it: a second pass (all images) does not take it at all.
        again = run(qtbot, project, gemini(server), workers=workers, rpm=0,
                    mode=CaptionMode.ALL)
        assert (again.total, again.done) == (2, 2)
        assert counted.files.count("IMG_0002.jpg") == 1


def test_a_stop_while_photos_wait_to_be_prepared_ends_the_batch(
        qtbot: Any, project: Project, server: FakeGeminiServer, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    preparations = Preparations(hold_s=0.3)
    monkeypatch.setattr(imaging, "prepare_for_upload", preparations)
    captioner = create_captioner(gemini(server))
    runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT),
                           BatchOptions(workers=6, rpm=0))
    try:
        with qtbot.waitSignal(runner.finished, timeout=30_000) as blocker:
            runner.start()
            qtbot.waitUntil(lambda: preparations.running > 0, timeout=10_000)
            runner.abort()
        assert runner.wait(30_000)
    finally:
        captioner.close()
    summary: BatchSummary = blocker.args[0]
    assert summary.cancelled and summary.failed == [] and summary.not_started > 0
    records = project.images()
    assert sum(rec.caption is None for rec in records) == summary.not_started
    assert not any(rec.failed for rec in records)  # a stop is not a failure
