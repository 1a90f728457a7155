"""Checks of Qt's Linux platform libraries, run before the ``QApplication`` exists.

Qt 6.5 and later (the PyQt6 wheels) build the xcb platform plugin (X11) against X11 client
libraries that many Linux installs lack, ``libxcb-cursor0`` above all. When one is missing Qt
prints a dozen lines ending in "could not load the Qt platform plugin "xcb"" and aborts the
process. :func:`xcb_problem` finds that out first and gives one line naming the packages to
install. The packaged Linux app carries these libraries (``build_scripts/linux_libs.py``), so
there the check passes.

:func:`bundle_library_problems` serves the hidden ``--smoke-window`` check of a packaged build:
the X11 client libraries a running process has loaded must be the bundle's copies.

No Qt import here: this runs before Qt picks its platform plugin.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SystemLibrary:
    """A shared library by its soname, with the packages that install it."""

    soname: str
    debian: str  # Debian and Ubuntu package
    fedora: str  # Fedora (and RHEL) package


XCB_LIBRARIES: tuple[SystemLibrary, ...] = (
    SystemLibrary("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    SystemLibrary("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm"),
    SystemLibrary("libxcb-image.so.0", "libxcb-image0", "xcb-util-image"),
    SystemLibrary("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms"),
    SystemLibrary("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil"),
    SystemLibrary("libxcb-util.so.1", "libxcb-util1", "xcb-util"),
    SystemLibrary("libxcb-randr.so.0", "libxcb-randr0", "libxcb"),
    SystemLibrary("libxcb-render.so.0", "libxcb-render0", "libxcb"),
    SystemLibrary("libxcb-shape.so.0", "libxcb-shape0", "libxcb"),
    SystemLibrary("libxcb-shm.so.0", "libxcb-shm0", "libxcb"),
    SystemLibrary("libxcb-sync.so.1", "libxcb-sync1", "libxcb"),
    SystemLibrary("libxcb-xfixes.so.0", "libxcb-xfixes0", "libxcb"),
    SystemLibrary("libxcb-xkb.so.1", "libxcb-xkb1", "libxcb"),
    SystemLibrary("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    SystemLibrary("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb"),
    SystemLibrary("libxcb.so.1", "libxcb1", "libxcb"),
)
"""What Qt's xcb plugin links against beyond Qt and beyond what QtGui itself needs.

The ``DT_NEEDED`` entries of ``plugins/platforms/libqxcb.so`` and ``lib/libQt6XcbQpa.so.6`` in
the PyQt6-Qt6 6.11 wheel, minus Qt's own libraries and those ``libQt6Gui.so.6`` already needs
(libX11, libxkbcommon, libGL, fontconfig, glib, the C and C++ runtimes): without one of those
``import PyQt6.QtGui`` fails before any window, whatever the platform.
"""

BUNDLED_X11_LIBRARIES: frozenset[str] = frozenset(
    [lib.soname for lib in XCB_LIBRARIES if lib.soname != "libxcb.so.1"]
    + ["libxkbcommon.so.0", "libxcb-glx.so.0"]
)
"""The X11 client libraries the packaged Linux app carries and must load from its own folder.

Every library of :data:`XCB_LIBRARIES` except ``libxcb.so.1``, plus ``libxkbcommon.so.0``
(QtGui's keyboard maps) and ``libxcb-glx.so.0`` (Qt's GLX integration). ``libxcb.so.1`` is the
system's: it carries the connection to the X server, every X11 and XWayland desktop has it
(libX11 needs it), and Mesa's GL drivers link it too, so PyInstaller never bundles it.
"""

DEFAULT_PLATFORM = "xcb"
"""The platform plugin the PyQt6 wheels' Qt uses on Linux when nothing else is chosen
(``QT_QPA_DEFAULT_PLATFORM_NAME`` of the Qt build)."""


def qt_platform_order(environ: Mapping[str, str]) -> list[str]:
    """The platform plugins Qt 6 tries on Linux, in order, for this environment.

    Mirrors ``QGuiApplicationPrivate::createPlatformIntegration`` in qtbase
    (``src/gui/kernel/qguiapplication.cpp``, Qt 6.5 and later): a non-empty
    ``QT_QPA_PLATFORM`` is the list (``;``-separated, each entry ``name:arguments``);
    otherwise Qt tries ``wayland`` first when ``WAYLAND_DISPLAY`` is set or
    ``XDG_SESSION_TYPE`` is ``wayland``, then ``xcb`` (chosen because ``DISPLAY`` is set, or the
    build's default). The ``-platform`` command-line option is not looked at: LoRACap passes
    Qt no options.
    """
    explicit = environ.get("QT_QPA_PLATFORM", "")
    if explicit:
        return [entry.split(":", 1)[0] for entry in explicit.split(";") if entry]
    order: list[str] = []
    if "WAYLAND_DISPLAY" in environ or environ.get("XDG_SESSION_TYPE") == "wayland":
        order.append("wayland")
    order.append(DEFAULT_PLATFORM)
    return order


def _dlopen(soname: str) -> object:
    """Load a shared library the way Qt's plugin loader would find it (``dlopen``)."""
    import ctypes  # here, not at the top: only needed on Linux with xcb, ~2 ms to import

    return ctypes.CDLL(soname)


def missing_xcb_libraries(load: Callable[[str], object] | None = None) -> list[SystemLibrary]:
    """The libraries of :data:`XCB_LIBRARIES` that ``load`` cannot load, in table order.

    ``load(soname)`` raises ``OSError`` when a library is missing (``ctypes.CDLL`` by
    default; the libraries it loads are the ones Qt loads next, so this costs ~2 ms). A library
    that is present but whose own dependency is missing is not named: the error message names
    the dependency, and that one is named when it is in the table.
    """
    load = load or _dlopen
    known = {lib.soname for lib in XCB_LIBRARIES}
    missing: list[SystemLibrary] = []
    for lib in XCB_LIBRARIES:
        try:
            load(lib.soname)
        except OSError as exc:
            # glibc: "libxcb-image.so.0: cannot open shared object file: No such file ..."
            culprit = str(exc).split(":", 1)[0].strip()
            if culprit == lib.soname or culprit not in known:
                missing.append(lib)
    return missing


def install_hint(missing: Iterable[SystemLibrary]) -> str:
    """One line naming the packages to install, e.g. for ``libxcb-cursor.so.0``:

    ``LoRACap needs the system library libxcb-cursor0 to open its window: sudo apt install
    libxcb-cursor0 (Debian/Ubuntu), sudo dnf install xcb-util-cursor (Fedora)``
    """
    libs = list(missing)
    debian = list(dict.fromkeys(lib.debian for lib in libs))
    fedora = list(dict.fromkeys(lib.fedora for lib in libs))
    if len(debian) == 1:
        named = f"the system library {debian[0]}"
    else:
        named = f"the system libraries {', '.join(debian[:-1])} and {debian[-1]}"
    return (f"LoRACap needs {named} to open its window: sudo apt install {' '.join(debian)} "
            f"(Debian/Ubuntu), sudo dnf install {' '.join(fedora)} (Fedora)")


def xcb_problem(environ: Mapping[str, str] | None = None, platform: str | None = None,
                load: Callable[[str], object] | None = None) -> str | None:
    """The one-line message to show instead of starting Qt, or None when Qt can start.

    Only on Linux, and only when xcb is the first platform Qt will try
    (:func:`qt_platform_order`): a Wayland session uses Qt's wayland plugin, which needs none of
    these libraries, and ``QT_QPA_PLATFORM=offscreen`` needs no display at all. ``environ``,
    ``platform`` (``sys.platform``) and ``load`` (see :func:`missing_xcb_libraries`) default to
    the running process's.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    order = qt_platform_order(environ)
    if not order or order[0] != "xcb":
        return None
    missing = missing_xcb_libraries(load)
    return install_hint(missing) if missing else None


_SONAME = re.compile(r".+?\.so(?:\.\d+)?")


def loaded_libraries(maps_text: str) -> dict[str, set[str]]:
    """The shared libraries a process has mapped, from ``/proc/PID/maps`` text.

    Keyed by soname as guessed from the file name (``libxcb-cursor.so.0.0.0`` ->
    ``libxcb-cursor.so.0``: the name up to the first version number, the Linux convention);
    each value is the set of paths loaded under that name (two paths: two copies in the
    process).
    """
    found: dict[str, set[str]] = {}
    for line in maps_text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        path = fields[5].removesuffix(" (deleted)")
        match = _SONAME.match(path.rsplit("/", 1)[-1])
        if match is not None:
            found.setdefault(match.group(0), set()).add(path)
    return found


def bundle_library_problems(maps_text: str, bundle: Path,
                            required: Iterable[str] = BUNDLED_X11_LIBRARIES) -> list[str]:
    """What is wrong with the libraries a packaged app has loaded; ``[]`` when nothing is.

    ``maps_text`` is the process's ``/proc/self/maps``, ``bundle`` its ``_internal`` folder
    (``sys._MEIPASS``). Problems: a library of ``required`` (sonames) loaded from outside the
    bundle (the bundle lacks it, or the system's copy was found first), and any library of the
    bundle's top folder that is also loaded from elsewhere (two copies in one process).
    """
    root = os.path.realpath(bundle)
    required = frozenset(required)

    def inside(path: str) -> bool:
        return os.path.realpath(path).startswith(root + os.sep)

    problems: list[str] = []
    for soname, paths in sorted(loaded_libraries(maps_text).items()):
        outside = ", ".join(sorted(p for p in paths if not inside(p)))
        if not outside:
            continue
        if soname in required:
            problems.append(f"{soname} loaded from {outside}, not from the bundle")
        elif (Path(bundle) / soname).exists():
            problems.append(f"{soname} loaded from {outside} although the bundle has it")
    return problems
