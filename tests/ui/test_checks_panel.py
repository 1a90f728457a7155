"""The dataset check panel on a real project: real images, real captions, the real check."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

import loracap.core.checks as checks_module
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.checks_panel import (
    COL_FILE,
    COL_KIND,
    COL_PROBLEM,
    INTRO_TEXT,
    NO_PROJECT_TEXT,
    ChecksPanel,
)
from tests.fakes.photos import make_photo, make_photo_folder


@pytest.fixture(autouse=True)
def no_task_left_running(qtbot) -> Iterator[None]:
    yield
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


def make_project(folder: Path) -> Project:
    """Three 800x600 photos and a 300x300 one: two same captions, one blank."""
    make_photo_folder(folder, 3, size=(800, 600))
    make_photo(folder / "tiny.jpg", size=(300, 300), seed=9)
    project = Project.create(folder / f"{folder.name}.loraproj", trigger="hall")
    project.add_scanned(scan_folder(folder))
    ids = {rec.path: rec.id for rec in project.images()}
    project.edit_caption(ids["IMG_0001.jpg"], "a lobby with a red sofa")
    project.edit_caption(ids["IMG_0002.jpg"], "a lobby with a red sofa")
    project.edit_caption(ids["IMG_0003.jpg"], "")
    project.edit_caption(ids["tiny.jpg"], "a small door")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = make_project(tmp_path / "hall")
    yield proj
    proj.close()


@pytest.fixture
def panel(qtbot) -> Iterator[ChecksPanel]:
    widget = ChecksPanel()
    qtbot.addWidget(widget)
    widget.resize(700, 500)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def ids_of(project: Project) -> dict[str, int]:
    return {rec.path: rec.id for rec in project.images()}


def rows(panel: ChecksPanel) -> list[tuple[str, str]]:
    view = panel.list_view
    return [(view.topLevelItem(r).text(COL_FILE), view.topLevelItem(r).text(COL_KIND))
            for r in range(view.topLevelItemCount())]


def run_to_end(qtbot, panel: ChecksPanel) -> None:
    panel.run()
    assert panel.is_running
    qtbot.waitUntil(lambda: not panel.is_running, timeout=20_000)


def click_row(qtbot, panel: ChecksPanel, row: int) -> None:
    item = panel.list_view.topLevelItem(row)
    assert item is not None
    rect = panel.list_view.visualItemRect(item)
    viewport = panel.list_view.viewport()
    assert viewport is not None
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())


def test_without_a_project_nothing_can_run(panel: ChecksPanel) -> None:
    assert not panel.run_button.isEnabled()
    assert panel.run_button.text() == "Check Dataset"
    assert panel.summary.text() == NO_PROJECT_TEXT
    assert panel.near_check.isChecked()
    assert panel.near_check.text().startswith("Near-duplicates")
    panel.run()
    assert not panel.is_running
    assert panel.findings() == []


def test_a_run_lists_the_findings(qtbot, panel: ChecksPanel, project: Project) -> None:
    panel.set_project(project)
    assert panel.run_button.isEnabled()
    assert panel.summary.text() == INTRO_TEXT

    panel.run()
    assert panel.run_button.text() == "Cancel"
    assert panel.progress.isVisible()
    assert not panel.near_check.isEnabled()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=20_000)

    assert rows(panel) == [
        ("IMG_0001.jpg", "Duplicate"),
        ("IMG_0002.jpg", "Duplicate"),
        ("IMG_0003.jpg", "Empty caption"),
        ("tiny.jpg", "Small image"),
    ]
    assert [f.kind for f in panel.findings()] == ["duplicate", "duplicate", "empty", "small"]
    assert panel.summary.text() == (
        "4 findings in 4 images: 1 empty caption, 2 duplicates, 1 small image.")
    message = panel.list_view.topLevelItem(0).text(COL_PROBLEM)
    assert message.startswith("Same caption as IMG_0002.jpg")
    assert panel.run_button.text() == "Check Dataset" and panel.run_button.isEnabled()
    assert not panel.progress.isVisible()
    assert panel.near_check.isEnabled()
    assert panel.status.text() == ""


def test_the_kind_filter_narrows_the_rows(qtbot, panel: ChecksPanel, project: Project) -> None:
    panel.set_project(project)
    run_to_end(qtbot, panel)
    combo = panel.kind_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "All findings (4)", "Empty captions (1)", "Duplicates (2)", "Small images (1)"]

    combo.setCurrentIndex(combo.findData("duplicate"))
    assert rows(panel) == [("IMG_0001.jpg", "Duplicate"), ("IMG_0002.jpg", "Duplicate")]
    combo.setCurrentIndex(combo.findData("small"))
    assert rows(panel) == [("tiny.jpg", "Small image")]
    combo.setCurrentIndex(0)
    assert len(rows(panel)) == 4
    assert len(panel.findings()) == 4  # the filter never changes the findings


def test_the_filter_is_kept_by_the_next_run(qtbot, panel: ChecksPanel,
                                            project: Project) -> None:
    panel.set_project(project)
    run_to_end(qtbot, panel)
    panel.kind_combo.setCurrentIndex(panel.kind_combo.findData("small"))
    run_to_end(qtbot, panel)
    assert panel.kind_combo.currentData() == "small"
    assert rows(panel) == [("tiny.jpg", "Small image")]


def test_clicking_a_finding_requests_its_image(qtbot, panel: ChecksPanel,
                                               project: Project) -> None:
    ids = ids_of(project)
    panel.set_project(project)
    run_to_end(qtbot, panel)

    with qtbot.waitSignal(panel.image_requested, timeout=2000) as blocker:
        click_row(qtbot, panel, 3)
    assert blocker.args == [ids["tiny.jpg"]]

    emitted: list[int] = []
    panel.image_requested.connect(emitted.append)
    panel.list_view.setFocus()
    panel.list_view.setCurrentItem(panel.list_view.topLevelItem(2))
    qtbot.keyClick(panel.list_view, Qt.Key.Key_Return)
    assert emitted == [ids["IMG_0003.jpg"]]

    emitted.clear()
    item = panel.list_view.topLevelItem(1)
    center = panel.list_view.visualItemRect(item).center()
    viewport = panel.list_view.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=center)
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=center)
    assert emitted == [ids["IMG_0002.jpg"]]  # once for the double-click


def test_no_findings(qtbot, panel: ChecksPanel, tmp_path: Path) -> None:
    folder = tmp_path / "clean"
    make_photo_folder(folder, 2, size=(800, 600))
    with Project.create(folder / "clean.loraproj", trigger="clean") as project:
        project.add_scanned(scan_folder(folder))
        ids = ids_of(project)
        project.edit_caption(ids["IMG_0001.jpg"], "a lobby with a red sofa")
        project.edit_caption(ids["IMG_0002.jpg"], "a lecture room with tall windows")
        panel.set_project(project)
        run_to_end(qtbot, panel)
        assert panel.summary.text() == "No problems found in 2 images."
        assert rows(panel) == []
        assert panel.kind_combo.itemText(0) == "All findings (0)"
        assert not panel.kind_combo.isEnabled()
        panel.set_project(None)


def test_near_duplicates_only_when_asked(qtbot, panel: ChecksPanel, project: Project) -> None:
    make_photo(project.folder / "IMG_0003_copy.png", size=(800, 600), seed=3)
    project.add_scanned(scan_folder(project.folder))
    panel.set_project(project)
    run_to_end(qtbot, panel)
    near = [f.path for f in panel.findings() if f.kind == "near_duplicate"]
    assert near == ["IMG_0003.jpg", "IMG_0003_copy.png"]

    panel.near_check.setChecked(False)
    run_to_end(qtbot, panel)
    assert not [f for f in panel.findings() if f.kind == "near_duplicate"]


def test_set_project_none_clears(qtbot, panel: ChecksPanel, project: Project) -> None:
    panel.set_project(project)
    run_to_end(qtbot, panel)
    assert rows(panel)
    panel.set_project(project)  # the same project again keeps the results
    assert len(rows(panel)) == 4

    panel.set_project(None)
    assert rows(panel) == []
    assert panel.findings() == []
    assert not panel.run_button.isEnabled()
    assert panel.summary.text() == NO_PROJECT_TEXT
    assert panel.kind_combo.count() == 1


class Gate:
    """Holds the check inside the first image's fingerprint until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        real = checks_module.dhash

        def gated(path: Path) -> int:
            self.entered.set()
            self.released.wait(10)
            return real(path)

        monkeypatch.setattr(checks_module, "dhash", gated)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate(monkeypatch)
    yield g
    g.released.set()


def test_cancel_during_a_run(qtbot, panel: ChecksPanel, project: Project, gate: Gate) -> None:
    panel.set_project(project)
    panel.run()
    assert gate.entered.wait(10)
    assert panel.is_running
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)  # "Cancel"
    assert not panel.run_button.isEnabled()
    gate.released.set()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=10_000)

    assert "Check cancelled" in panel.status.text()
    assert panel.status.isVisible()
    assert rows(panel) == [] and panel.findings() == []
    assert panel.run_button.text() == "Check Dataset" and panel.run_button.isEnabled()
    assert not panel.progress.isVisible()


def test_cancel_right_after_the_start(qtbot, panel: ChecksPanel, project: Project) -> None:
    panel.set_project(project)
    panel.run()
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=10_000)
    assert "Check cancelled" in panel.status.text()
    assert panel.findings() == []


def test_switching_project_stops_the_running_check(qtbot, panel: ChecksPanel, project: Project,
                                                   tmp_path: Path, gate: Gate) -> None:
    panel.set_project(project)
    panel.run()
    assert gate.entered.wait(10)
    gate.released.set()
    other = make_project(tmp_path / "other")
    try:
        panel.set_project(other)  # cancels, and waits for the old check's thread
        assert not panel.is_running
        assert background._LIVE == {} or all(t.exited.is_set() for t in background._LIVE.values())
        qtbot.wait(50)  # the old check's queued signals arrive and are ignored
        assert panel.findings() == [] and rows(panel) == []
        assert panel.status.text() == ""
        assert panel.summary.text() == INTRO_TEXT

        run_to_end(qtbot, panel)
        assert len(panel.findings()) == 4
    finally:
        panel.set_project(None)
        other.close()


def test_shutdown_cancels_and_waits(qtbot, panel: ChecksPanel, project: Project,
                                    gate: Gate) -> None:
    panel.set_project(project)
    panel.run()
    assert gate.entered.wait(10)
    gate.released.set()
    panel.shutdown()
    assert not panel.is_running
    assert all(t.exited.is_set() for t in background._LIVE.values())
