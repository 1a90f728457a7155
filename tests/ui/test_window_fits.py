"""The real window on laptop and desktop screens, at 100 % and 200 %: it fits, with every panel
open, also after the longest error message, and a saved layout from a bigger screen is repaired.

Each screen runs in a fresh process (``tests/ui/window_probe.py``): Qt's offscreen platform reads
the screen's size and device pixel ratio from a JSON file, once per process. Sizes are logical
pixels: 1280 × 800 at 200 % is a 2560 × 1600 laptop panel, 1920 × 1080 at 200 % a 4K screen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.photos import make_photo

ROOT = Path(__file__).resolve().parents[2]

SCREENS = [
    pytest.param((1280, 720, 1), id="1280x720"),
    pytest.param((1366, 768, 1), id="1366x768"),
    pytest.param((1920, 1080, 1), id="1920x1080"),
    pytest.param((1280, 800, 2), id="1280x800@200%"),
    pytest.param((1920, 1080, 2), id="1920x1080@200%"),
]

#: Controls a student needs at every moment, and the smallest size (logical px) each must keep.
MAIN_CONTROLS = {
    "generate": (80, 16),
    "previous": (60, 16),
    "next": (60, 16),
    "editor": (300, 50),
    "status_counts": (200, 10),
    "grid": (2 * 204, 150),
    "preview": (200, 120),
    "note": (150, 16),
}


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two images of the same name in two folders and a long folder path."""
    from loracap.core.project import Project
    from loracap.core.scan import scan_folder

    folder = tmp_path_factory.mktemp("fits") / ("a_folder_with_a_rather_long_name_" * 3)
    for i in range(1, 9):
        make_photo(folder / f"IMG_{i:04d}.jpg", seed=i)
    make_photo(folder / "a" / "IMG_0002.jpg", seed=20)
    with Project.create(folder / "ide_main_hall.loraproj", trigger="ide_main_hall") as project:
        project.add_scanned(list(scan_folder(folder)))
        for record in project.images()[:5]:
            project.store_generated(
                record.id, "a wide entrance hall, glass doors, " + "wooden benches, " * 6 +
                "soft daylight", backend="gemini", model="gemini-flash-latest", prompt="p")
    return folder / "ide_main_hall.loraproj"


def _probe(tmp_path: Path, screen: tuple[int, int, int], settings: Path, project: Path,
           *steps: str, font_pt: float | None = None) -> list[dict]:
    width, height, dpr = screen
    config = tmp_path / f"screen-{width}x{height}@{dpr}.json"
    config.write_text(json.dumps({"screens": [{
        "name": "laptop", "x": 0, "y": 0, "width": width, "height": height,
        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": dpr}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}",
               LORACAP_HOME=str(tmp_path / "home"))
    if font_pt is not None:
        env["LORACAP_PROBE_FONT_PT"] = str(font_pt)
    result = subprocess.run(
        [sys.executable, "-m", "tests.ui.window_probe", str(settings), str(project), *steps],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _inside(rect: list[int], outer: list[int]) -> bool:
    x, y, w, h = rect
    ox, oy, ow, oh = outer
    return x >= ox and y >= oy and x + w <= ox + ow and y + h <= oy + oh


def assert_fits(report: dict, when: str) -> None:
    screen, frame = report["screen"], report["frame"]
    assert _inside(frame, screen), f"{when}: window {frame} outside the screen {screen}"
    for name, (min_width, min_height) in MAIN_CONTROLS.items():
        rect = report["controls"][name]
        assert report["visible"][name], f"{when}: {name} is hidden"
        assert _inside(rect, frame), f"{when}: {name} {rect} outside the window {frame}"
        assert rect[2] >= min_width and rect[3] >= min_height, \
            f"{when}: {name} squeezed to {rect[2]}×{rect[3]}"
    assert report["grid_columns"] >= 2, f"{when}: the grid shows {report['grid_columns']} column"
    assert report["word_count_lines"] == 1, f"{when}: the caption counts wrap"
    for name, (shown, width) in report["docks"].items():
        assert shown, f"{when}: {name} was closed"
        assert width >= 170, f"{when}: {name} squeezed to {width} px"
    for titles, shown, needed in report["tab_bars"]:  # every panel's tab title is whole
        assert shown >= needed, f"{when}: the tabs {titles} are cut ({shown} of {needed} px)"
    for panel, widths in report["columns"].items():  # columns shown are shown whole
        assert len(widths) >= 2, f"{when}: the {panel} panel shows {len(widths)} column"
        for shown, needed in widths:
            assert shown >= needed, f"{when}: a column of the {panel} panel is cut: {widths}"


@pytest.mark.slow
@pytest.mark.parametrize("screen", SCREENS)
def test_window_fits_the_screen_with_every_panel_and_the_longest_error(
        tmp_path: Path, demo_project: Path, screen: tuple[int, int, int]) -> None:
    settings = tmp_path / "settings.ini"
    first, after_next, after_error, reopened = _probe(
        tmp_path, screen, settings, demo_project,
        "open", "docks", "check", "report", "next", "report", "error", "report", "close",
        "reopen", "open", "report")
    assert_fits(first, "first launch")
    assert_fits(after_next, "next image")
    assert_fits(after_error, "after the longest error")
    assert_fits(reopened, "reopened")
    # The first launch takes most of the screen, and nothing changes size between images or
    # after an error: the panels keep their widths.
    assert first["frame"][2] >= 0.8 * first["screen"][2]
    def panel_widths(report: dict) -> dict[str, int]:
        return {name: report["controls"][name][2] for name in
                ("tags_panel", "history_panel", "checks_panel") if report["visible"][name]}

    for later in (after_next, after_error, reopened):
        assert later["frame"][2:] == first["frame"][2:]
        assert panel_widths(later) == panel_widths(first)


@pytest.mark.slow
@pytest.mark.parametrize("small", [SCREENS[0], SCREENS[3]])
def test_a_layout_saved_on_a_big_screen_is_repaired_on_a_laptop(
        tmp_path: Path, demo_project: Path, small: tuple[int, int, int]) -> None:
    settings = tmp_path / "settings.ini"
    (big,) = _probe(tmp_path, (2560, 1440, 1), settings, demo_project,
                    "open", "docks", "report", "close")
    assert big["frame"][2] > 2000  # the saved window is wider than the laptop's screen
    (report,) = _probe(tmp_path, small, settings, demo_project,
                       "open", "docks", "report")
    assert_fits(report, "restored on a smaller screen")


@pytest.mark.slow
def test_the_panel_tabs_stay_whole_in_a_larger_system_font(tmp_path: Path,
                                                          demo_project: Path) -> None:
    """A platform whose interface font is wider than this one's (say 10.5 pt) widens the
    tabbed dock to show its tab titles whole, and the window still fits a 13-inch laptop."""
    (report,) = _probe(tmp_path, (1366, 768, 1), tmp_path / "settings.ini", demo_project,
                       "open", "docks", "report", font_pt=10.5)
    assert_fits(report, "a larger font")
    dock_bars = [bar for bar in report["tab_bars"] if "Tags" in bar[0]]
    assert dock_bars and dock_bars[0][1] > 280  # wider than the usual start
