"""CheckJob: the dataset check on a pool thread -- a real project file, real images."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import loracap.core.checks as checks_module
from loracap.core.checks import Finding
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.jobs.background import CheckJob
from tests.fakes.photos import make_photo, make_photo_folder


@pytest.fixture(autouse=True)
def no_task_left_running(qtbot) -> Iterator[None]:
    yield
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """Four 800x600 photos and a 300x300 one: two same captions, one blank, two distinct."""
    folder = tmp_path / "hall"
    make_photo_folder(folder, 4, size=(800, 600))
    make_photo(folder / "tiny.jpg", size=(300, 300), seed=9)
    proj = Project.create(folder / "hall.loraproj", trigger="hall")
    proj.add_scanned(scan_folder(folder))
    ids = {rec.path: rec.id for rec in proj.images()}
    proj.edit_caption(ids["IMG_0001.jpg"], "a lobby with a red sofa")
    proj.edit_caption(ids["IMG_0002.jpg"], "a lobby with a red sofa")
    proj.edit_caption(ids["IMG_0003.jpg"], "")
    proj.edit_caption(ids["IMG_0004.jpg"], "a lecture room with tall windows")
    proj.edit_caption(ids["tiny.jpg"], "a small door")
    yield proj
    proj.close()


class Gate:
    """Holds the check inside the first ``dhash`` call until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.hashed: list[Path] = []
        real = checks_module.dhash

        def gated(path: Path) -> int:
            self.hashed.append(Path(path))
            self.entered.set()
            self.released.wait(10)
            return real(path)

        monkeypatch.setattr(checks_module, "dhash", gated)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate(monkeypatch)
    yield g
    g.released.set()


class Endings:
    def __init__(self, job: CheckJob) -> None:
        self.names: list[str] = []
        job.finished.connect(lambda *_: self.names.append("finished"))
        job.failed.connect(lambda *_: self.names.append("failed"))
        job.cancelled.connect(lambda: self.names.append("cancelled"))


def settle(qtbot, job: CheckJob) -> None:
    assert job.wait(10_000)
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)
    qtbot.wait(20)


def test_check_job_finds_the_problems(qtbot, project: Project) -> None:
    ids = {rec.path: rec.id for rec in project.images()}
    job = CheckJob(project)
    endings = Endings(job)
    progress: list[tuple[int, int]] = []
    job.progress.connect(lambda done, total: progress.append((done, total)))
    with qtbot.waitSignal(job.finished, timeout=20_000) as blocker:
        job.start()
    settle(qtbot, job)

    findings = blocker.args[0]
    assert all(isinstance(f, Finding) for f in findings)
    found = {(f.path, f.kind) for f in findings}
    assert found == {
        ("IMG_0001.jpg", "duplicate"),
        ("IMG_0002.jpg", "duplicate"),
        ("IMG_0003.jpg", "empty"),
        ("tiny.jpg", "small"),
    }
    assert {f.image_id for f in findings if f.kind == "duplicate"} == {
        ids["IMG_0001.jpg"], ids["IMG_0002.jpg"]}
    assert progress[-1] == (5, 5)  # the last one always arrives
    assert progress == sorted(progress)
    assert endings.names == ["finished"]
    assert not job.is_running and job.has_ended


def test_near_duplicates_can_be_left_out(qtbot, project: Project, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    copy = project.folder / "IMG_0004_copy.png"
    make_photo(copy, size=(800, 600), seed=4)  # the same picture as IMG_0004.jpg, another format
    project.add_scanned(scan_folder(project.folder))

    with_near = CheckJob(project)
    with qtbot.waitSignal(with_near.finished, timeout=20_000) as blocker:
        with_near.start()
    assert {f.path for f in blocker.args[0] if f.kind == "near_duplicate"} == {
        "IMG_0004.jpg", "IMG_0004_copy.png"}

    def no_hashing(path: Path) -> int:
        raise AssertionError(f"{path} was opened")

    monkeypatch.setattr(checks_module, "dhash", no_hashing)
    without = CheckJob(project, near_duplicates=False)
    with qtbot.waitSignal(without.finished, timeout=20_000) as blocker:
        without.start()
    assert not [f for f in blocker.args[0] if f.kind == "near_duplicate"]
    settle(qtbot, without)


def test_cancel_during_the_check_emits_cancelled_once(qtbot, project: Project,
                                                      gate: Gate) -> None:
    job = CheckJob(project)
    endings = Endings(job)
    progress: list[tuple[int, int]] = []
    job.progress.connect(lambda done, total: progress.append((done, total)))
    job.start()
    assert gate.entered.wait(10)
    assert job.is_running
    with qtbot.waitSignal(job.cancelled, timeout=10_000):
        job.cancel()
        gate.released.set()
    settle(qtbot, job)
    assert endings.names == ["cancelled"]
    assert len(gate.hashed) == 1  # stopped after the image being checked
    assert progress == []
    assert job.is_cancelled and not job.is_running
    job.cancel()  # a second cancel after the end changes nothing
    qtbot.wait(20)
    assert endings.names == ["cancelled"]


def test_cancel_right_after_start_never_finishes(qtbot, project: Project) -> None:
    job = CheckJob(project)
    endings = Endings(job)
    job.start()
    job.cancel()
    settle(qtbot, job)
    assert endings.names == ["cancelled"]


def test_cancel_before_start_ends_the_job(qtbot, project: Project) -> None:
    job = CheckJob(project)
    endings = Endings(job)
    job.cancel()
    assert endings.names == ["cancelled"]
    assert job.has_ended


def test_a_damaged_project_file_fails_with_a_message(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 1, size=(64, 48))
    project = Project.create(folder / "hall.loraproj", trigger="hall")
    project.add_scanned(scan_folder(folder))
    project.close()
    (folder / "hall.loraproj").write_bytes(b"not a database any more")
    job = CheckJob(project)
    endings = Endings(job)
    with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
        job.start()
    settle(qtbot, job)
    assert blocker.args[0]
    assert "Traceback" not in blocker.args[0]
    assert endings.names == ["failed"]
