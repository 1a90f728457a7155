"""The Linux platform check: which Qt platform is used, the one-line message for a missing xcb
library, and the packaged app's check that its X11 libraries come from the bundle."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from loracap.ui import app as app_module
from loracap.ui import platform_check
from loracap.ui.platform_check import (
    XCB_LIBRARIES,
    bundle_library_problems,
    missing_xcb_libraries,
    qt_platform_order,
    xcb_problem,
)

CURSOR_HINT = (
    "LoRACap needs the system library libxcb-cursor0 to open its window: sudo apt install "
    "libxcb-cursor0 (Debian/Ubuntu), sudo dnf install xcb-util-cursor (Fedora)"
)


def loader_without(*absent: str, culprit: dict[str, str] | None = None):
    """A loader like ``ctypes.CDLL`` on a machine without ``absent`` (glibc's error text)."""
    loaded: list[str] = []

    def load(soname: str) -> object:
        if soname in absent:
            missing = (culprit or {}).get(soname, soname)
            raise OSError(f"{missing}: cannot open shared object file: No such file or directory")
        loaded.append(soname)
        return object()

    load.loaded = loaded  # type: ignore[attr-defined]
    return load


@pytest.mark.parametrize(
    ("environ", "order"),
    [
        ({}, ["xcb"]),
        ({"DISPLAY": ":0"}, ["xcb"]),
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, ["xcb"]),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, ["wayland", "xcb"]),
        ({"XDG_SESSION_TYPE": "wayland"}, ["wayland", "xcb"]),
        ({"WAYLAND_DISPLAY": "", "DISPLAY": ":0"}, ["wayland", "xcb"]),  # set counts, as in Qt
        ({"QT_QPA_PLATFORM": "xcb:nograb", "WAYLAND_DISPLAY": "w"}, ["xcb"]),
        ({"QT_QPA_PLATFORM": "wayland;xcb"}, ["wayland", "xcb"]),
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, ["offscreen"]),
        ({"QT_QPA_PLATFORM": "", "DISPLAY": ":0"}, ["xcb"]),  # empty: as if unset
    ],
)
def test_qt_platform_order_follows_qt(environ: dict[str, str], order: list[str]) -> None:
    assert qt_platform_order(environ) == order


def test_missing_cursor_library_names_the_packages() -> None:
    load = loader_without("libxcb-cursor.so.0")
    assert xcb_problem({"DISPLAY": ":0"}, "linux", load) == CURSOR_HINT
    assert len(load.loaded) == len(XCB_LIBRARIES) - 1  # every other library was tried


def test_several_missing_libraries_are_named_once_per_package() -> None:
    load = loader_without("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-xkb.so.1",
                          "libxcb-shape.so.0")
    assert xcb_problem({}, "linux", load) == (
        "LoRACap needs the system libraries libxcb-cursor0, libxcb-icccm4, libxcb-shape0 and "
        "libxcb-xkb1 to open its window: sudo apt install libxcb-cursor0 libxcb-icccm4 "
        "libxcb-shape0 libxcb-xkb1 (Debian/Ubuntu), sudo dnf install xcb-util-cursor "
        "xcb-util-wm libxcb (Fedora)"
    )


def test_a_present_library_with_a_missing_dependency_is_not_blamed() -> None:
    # libxcb-cursor is installed but cannot load because libxcb-image is missing.
    load = loader_without("libxcb-cursor.so.0", "libxcb-image.so.0",
                          culprit={"libxcb-cursor.so.0": "libxcb-image.so.0"})
    assert [lib.debian for lib in missing_xcb_libraries(load)] == ["libxcb-image0"]


def test_no_message_when_everything_loads_or_xcb_is_not_used() -> None:
    missing = loader_without("libxcb-cursor.so.0")
    assert xcb_problem({"DISPLAY": ":0"}, "linux", loader_without()) is None
    assert xcb_problem({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux", missing) is None
    assert xcb_problem({"XDG_SESSION_TYPE": "wayland"}, "linux", missing) is None
    assert xcb_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", missing) is None
    assert xcb_problem({"QT_QPA_PLATFORM": "xcb"}, "linux", missing) == CURSOR_HINT
    assert xcb_problem({}, "darwin", missing) is None
    assert xcb_problem({}, "win32", missing) is None


def test_real_dlopen_error_is_understood() -> None:
    """The default loader's real error text (glibc) for a library that is not there."""

    def load(soname: str) -> object:
        name = "libxcb-cursor-not-installed.so.0" if soname == "libxcb-cursor.so.0" else soname
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            if name != soname:  # the library this test pretends is missing
                raise OSError(str(exc).replace(name, soname)) from exc
            return object()  # a library really missing here is not what this test is about

    assert xcb_problem({"DISPLAY": ":0"}, "linux", load) == CURSOR_HINT


def test_run_gui_prints_one_line_and_starts_no_qt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(platform_check, "_dlopen", loader_without("libxcb-cursor.so.0"))
    monkeypatch.setattr(platform_check.sys, "platform", "linux")

    def no_window(*_args: object) -> None:
        raise AssertionError("run_gui built the window although Qt cannot start")

    monkeypatch.setattr(app_module, "build_window", no_window)
    monkeypatch.setattr(app_module, "configure_logging", no_window)
    assert app_module.run_gui() == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == CURSOR_HINT + "\n"


# ---------------------------------------------------------------- the packaged app's libraries


def maps_line(path: str) -> str:
    return f"7f0000000000-7f0000001000 r-xp 00000000 08:01 1234    {path}"


def test_bundle_libraries_from_the_bundle_pass(tmp_path: Path) -> None:
    bundle = tmp_path / "_internal"
    bundle.mkdir()
    (bundle / "libxcb-cursor.so.0").touch()
    maps = "\n".join([
        maps_line(f"{bundle}/libxcb-cursor.so.0"),
        maps_line(f"{bundle}/PyQt6/Qt6/plugins/platforms/libqxcb.so"),
        maps_line("/usr/lib/x86_64-linux-gnu/libxcb.so.1"),  # the system's, by design
        maps_line("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 ",
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0    [stack]",
    ])
    assert bundle_library_problems(maps, bundle) == []


def test_bundle_libraries_from_the_system_are_reported(tmp_path: Path) -> None:
    bundle = tmp_path / "_internal"
    bundle.mkdir()
    (bundle / "libfreetype.so.6").touch()
    maps = "\n".join([
        maps_line("/usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0.0.0"),  # real file name
        maps_line("/usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0.0.0"),
        maps_line(f"{bundle}/libfreetype.so.6"),
        maps_line("/usr/lib/x86_64-linux-gnu/libfreetype.so.6.18.1"),  # a second copy
    ])
    assert bundle_library_problems(maps, bundle) == [
        "libfreetype.so.6 loaded from /usr/lib/x86_64-linux-gnu/libfreetype.so.6.18.1 although "
        "the bundle has it",
        "libxcb-cursor.so.0 loaded from /usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0.0.0, not "
        "from the bundle",
    ]
