"""Background jobs of the GUI: folder scan, export, model list -- real folders, real zips, the
real google-genai client against the fake Gemini server."""

from __future__ import annotations

import gc
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import loracap.core.scan as scan_module
from loracap.core.exports import (
    METADATA_FORMAT,
    REPLICATE_FORMAT,
    ExportOptions,
    ExportResult,
)
from loracap.core.project import Project
from loracap.core.scan import ScannedFile, scan_folder
from loracap.jobs import background
from loracap.jobs.background import PROGRESS_INTERVAL_S, ExportJob, ModelListJob, ScanJob
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo_folder


class Gate:
    """Holds the folder scan inside ``probe_image`` (the real one runs once released)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.probed: list[Path] = []
        real = scan_module.probe_image

        def gated(path: Path):  # type: ignore[no-untyped-def]
            self.probed.append(Path(path))
            self.entered.set()
            self.released.wait(10)
            return real(path)

        monkeypatch.setattr(scan_module, "probe_image", gated)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate(monkeypatch)
    yield g
    g.released.set()


@pytest.fixture(autouse=True)
def no_task_left_running(qtbot) -> Iterator[None]:
    yield
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


class Endings:
    """Records every ending signal of a job, in order."""

    def __init__(self, job, names: tuple[str, ...]) -> None:
        self.events: list[tuple[str, tuple]] = []
        for name in names:
            getattr(job, name).connect(
                lambda *args, name=name: self.events.append((name, args)))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def settle(qtbot, job) -> None:
    """Let every queued signal of ``job`` arrive (so a second ending would be seen)."""
    assert job.wait(10_000)
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)
    qtbot.wait(20)


# ------------------------------------------------------------------------------------ ScanJob


def test_scan_job_finishes_once_with_every_file(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 4, size=(96, 64))
    (folder / "sub").mkdir()
    make_photo_folder(folder / "sub", 1, prefix="side_", size=(96, 64))
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "IMG_0002.txt").write_text("a wide lecture hall\n", encoding="utf-8")
    job = ScanJob(folder)
    endings = Endings(job, ("finished", "failed", "cancelled"))
    progress: list[tuple[int, str]] = []
    job.progress.connect(lambda count, rel: progress.append((count, rel)))

    with qtbot.waitSignal(job.finished, timeout=10_000) as blocker:
        job.start()
    settle(qtbot, job)

    files = blocker.args[0]
    assert all(isinstance(f, ScannedFile) for f in files)
    assert [f.rel_path for f in files] == [
        "broken.jpg", "IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg",
        "sub/side_0001.jpg",
    ]
    assert [f.info.valid for f in files] == [False, True, True, True, True, True]
    assert files[2].sidecar_caption == "a wide lecture hall"
    assert endings.names == ["finished"]
    assert progress[-1] == (6, "sub/side_0001.jpg")  # the final count always arrives
    assert not job.is_running and job.has_ended


def test_scan_progress_is_throttled(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    make_photo_folder(folder, 80, size=(32, 24))
    job = ScanJob(folder)
    progress: list[int] = []
    job.progress.connect(lambda count, _rel: progress.append(count))
    started = time.monotonic()
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    elapsed = time.monotonic() - started
    assert progress[-1] == 80
    assert progress == sorted(progress)
    # At most one per interval, plus the first and the final one.
    assert len(progress) <= 2 + elapsed / PROGRESS_INTERVAL_S
    assert len(progress) < 80


def test_scan_job_fails_for_a_missing_folder(qtbot, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    job = ScanJob(missing)
    endings = Endings(job, ("finished", "failed", "cancelled"))
    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start()
    settle(qtbot, job)
    assert blocker.args == [f'The folder "{missing}" does not exist.']
    assert endings.names == ["failed"]


def test_cancel_during_the_scan_emits_cancelled_once(qtbot, tmp_path: Path, gate: Gate) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 5, size=(64, 48))
    job = ScanJob(folder)
    endings = Endings(job, ("finished", "failed", "cancelled"))
    job.start()
    assert gate.entered.wait(10)
    assert job.is_running
    with qtbot.waitSignal(job.cancelled, timeout=10_000):
        job.cancel()
        gate.released.set()
    settle(qtbot, job)
    assert endings.names == ["cancelled"]
    assert len(gate.probed) == 1  # the scan stopped at the next file
    job.cancel()  # a second cancel after the end changes nothing
    qtbot.wait(20)
    assert endings.names == ["cancelled"]


def test_cancel_after_the_scan_finished_emits_nothing_more(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(64, 48))
    job = ScanJob(folder)
    endings = Endings(job, ("finished", "failed", "cancelled"))
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    job.cancel()
    settle(qtbot, job)
    assert endings.names == ["finished"]


def test_cancel_before_start_ends_the_job(qtbot, tmp_path: Path) -> None:
    job = ScanJob(tmp_path)
    endings = Endings(job, ("finished", "failed", "cancelled"))
    job.cancel()
    assert endings.names == ["cancelled"]


def test_a_job_destroyed_while_scanning_lets_its_task_finish(qtbot, tmp_path: Path,
                                                              gate: Gate) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 3, size=(64, 48))
    job = ScanJob(folder)
    seen: list[str] = []
    job.finished.connect(lambda _files: seen.append("finished"))
    job.start()
    assert gate.entered.wait(10)
    del job
    gc.collect()
    assert len(background._LIVE) == 1  # the running task is still referenced
    gate.released.set()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)
    qtbot.wait(20)
    assert seen == []  # nobody is left to tell


def test_starting_twice_is_a_programming_error(qtbot, tmp_path: Path) -> None:
    job = ScanJob(tmp_path)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    with pytest.raises(RuntimeError):
        job.start()


# ------------------------------------------------------------------------------------ ExportJob


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 3, size=(192, 128))
    proj = Project.create(folder / "hall.loraproj", trigger="hall")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


def caption_all(project: Project) -> None:
    for rec in project.images():
        project.edit_caption(rec.id, f"wide view number {rec.id}")


def test_export_job_writes_the_zip(qtbot, project: Project, tmp_path: Path) -> None:
    caption_all(project)
    out = tmp_path / "out.zip"
    job = ExportJob(project, REPLICATE_FORMAT, out, ExportOptions(), force=False)
    endings = Endings(job, ("finished", "failed"))
    progress: list[tuple[int, int]] = []
    job.progress.connect(lambda done, total: progress.append((done, total)))
    with qtbot.waitSignal(job.finished, timeout=10_000) as blocker:
        job.start()
    settle(qtbot, job)

    result = blocker.args[0]
    assert isinstance(result, ExportResult)
    assert (result.path, result.images, result.captions) == (out, 3, 3)
    assert endings.names == ["finished"]
    assert progress[-1] == (3, 3)
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == [
            "IMG_0001.jpg", "IMG_0001.txt", "IMG_0002.jpg", "IMG_0002.txt", "IMG_0003.jpg",
            "IMG_0003.txt", "metadata.txt",
        ]
        first = project.images()[0]
        assert archive.read("IMG_0001.txt").decode() == f"photo of hall wide view number {first.id}"


def test_export_job_reports_the_core_message(qtbot, project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out.zip"
    job = ExportJob(project, REPLICATE_FORMAT, out, ExportOptions(), force=False)
    endings = Endings(job, ("finished", "failed"))
    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start()
    settle(qtbot, job)
    message = blocker.args[0]
    assert message.startswith("3 image(s) have no caption:")
    assert "IMG_0001.jpg" in message and "Traceback" not in message
    assert endings.names == ["failed"]
    assert not out.exists()


def test_export_job_does_not_replace_without_force(qtbot, project: Project,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "metadata.txt"
    out.write_text("old\n", encoding="utf-8")
    job = ExportJob(project, METADATA_FORMAT, out, ExportOptions(allow_uncaptioned=True),
                    force=False)
    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start()
    assert blocker.args == [f"{out} already exists; use --force to replace it."]
    assert out.read_text(encoding="utf-8") == "old\n"

    caption_all(project)
    forced = ExportJob(project, METADATA_FORMAT, out, ExportOptions(), force=True)
    with qtbot.waitSignal(forced.finished, timeout=10_000):
        forced.start()
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("photo of hall wide view")


# ------------------------------------------------------------------------------------ ModelListJob


def test_model_list_job_returns_the_captioning_models(qtbot,
                                                      gemini_server: FakeGeminiServer) -> None:
    job = ModelListJob("test-key")
    endings = Endings(job, ("finished", "failed"))
    with qtbot.waitSignal(job.finished, timeout=20_000) as blocker:
        job.start()
    settle(qtbot, job)
    assert blocker.args[0] == [
        "gemini-flash-latest", "gemini-flash-lite-latest", "gemini-pro-latest",
        "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro",
    ]
    assert endings.names == ["finished"]
    assert [r.api_key for r in gemini_server.requests if r.method == "GET"] == ["test-key"]


def test_model_list_job_fails_with_a_readable_message(qtbot,
                                                      gemini_server: FakeGeminiServer) -> None:
    job = ModelListJob("bad-key")
    endings = Endings(job, ("finished", "failed"))
    with qtbot.waitSignal(job.failed, timeout=20_000) as blocker:
        job.start()
    settle(qtbot, job)
    assert blocker.args[0].startswith("Gemini refused the API key")
    assert endings.names == ["failed"]
