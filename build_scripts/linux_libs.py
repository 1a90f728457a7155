"""The system libraries of the Linux bundle: which ones it must carry, and a check that it does.

PyInstaller collects the shared libraries that the collected binaries need (``DT_NEEDED``) from
the build machine, except those on its own exclude list (glibc, the GL dispatch libraries,
``libxcb.so.1``, ``libxcb-dri*``, ``libwayland-*``: ``PyInstaller/depend/dylib.py``). A library
the build machine lacks is only a warning, and the app then relies on the user's system having
it. For Qt's xcb platform plugin that fails on many desktops: Qt 6.5+ needs ``libxcb-cursor0``,
``libxcb-icccm4``, ``libxkbcommon-x11-0`` ..., which desktops without other Qt 6 apps often
lack, and without them the window never opens.

:func:`check_xcb_bundle` follows the ``DT_NEEDED`` entries of the bundled xcb plugin (and its GL
integrations) through the bundle; every library reached must be in the bundle unless
:data:`SYSTEM_LIBRARIES` leaves it to the system. ``build.py`` runs it after each Linux build
and fails the build otherwise, naming the package to install on the build machine.

    python build_scripts/linux_libs.py [dist/LoRACap]

The ELF reading is a small stdlib parser (program headers and the dynamic section only).
"""

from __future__ import annotations

import fnmatch
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYSTEM_LIBRARIES: dict[str, str] = {
    # The C runtime must match the system's dynamic loader.
    "libc.so.*": "glibc",
    "libm.so.*": "glibc",
    "libdl.so.*": "glibc",
    "libpthread.so.*": "glibc",
    "librt.so.*": "glibc",
    "libresolv.so.*": "glibc",
    "libutil.so.*": "glibc",
    "ld-linux*.so.*": "glibc",
    # glvnd's dispatch libraries load the machine's own GPU driver (Mesa, NVIDIA); a bundled
    # copy could not find or would not match it.
    "libGL.so.*": "the GL dispatch (glvnd)",
    "libEGL.so.*": "the GL dispatch (glvnd)",
    "libGLX.so.*": "the GL dispatch (glvnd)",
    "libOpenGL.so.*": "the GL dispatch (glvnd)",
    "libGLdispatch.so.*": "the GL dispatch (glvnd)",
    # The connection to the X server: every X11 and XWayland desktop has it (libX11 needs it),
    # and the system's GL driver links it too, so one copy must serve both.
    "libxcb.so.*": "the X connection",
    "libxcb-dri*.so.*": "the GL driver's",
}
"""Libraries the bundle leaves to the system (file-name patterns, with the reason).

The same set PyInstaller refuses to bundle on Linux (``PyInstaller/depend/dylib.py``), so the
check and the build agree. Everything else the xcb plugin needs is bundled: libX11, libxkbcommon,
the xcb-util libraries (cursor, icccm, image, keysyms, render-util, util), the xcb extension
libraries (randr, render, shape, shm, sync, xfixes, xkb, glx) and libxkbcommon-x11.
"""

XCB_PLUGIN_GLOBS = ("PyQt6/Qt6/plugins/platforms/libqxcb.so",
                    "PyQt6/Qt6/plugins/xcbglintegrations/*.so")
"""The bundled plugins whose libraries are checked, relative to the bundle's ``_internal``."""

DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11.so.6": "libx11-6",
}
"""Debian packages of needed libraries that ``loracap.ui.platform_check.XCB_LIBRARIES``
(the table the app's own check uses) does not list."""


@dataclass(frozen=True)
class Dynamic:
    """What the dynamic section of an ELF file says about its libraries."""

    needed: tuple[str, ...]  # DT_NEEDED sonames, in order
    runpath: tuple[str, ...]  # DT_RUNPATH (or DT_RPATH) entries, ``$ORIGIN`` unexpanded


def read_dynamic(path: Path) -> Dynamic:
    """Read ``DT_NEEDED`` and ``DT_RUNPATH``/``DT_RPATH`` of the ELF file at ``path``.

    Handles 32- and 64-bit, little- and big-endian files (System V gABI layouts). Raises
    ``ValueError`` for a file that is not ELF or has no dynamic section.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    is64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(order + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 54)
        phdr, dyn = order + "IIQQQQQQ", order + "qQ"
    else:
        phoff, = struct.unpack_from(order + "I", data, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 42)
        phdr, dyn = order + "IIIIIIII", order + "iI"
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz) of PT_LOAD segments
    dynamic: tuple[int, int] | None = None  # (offset, size) of PT_DYNAMIC
    for i in range(phnum):
        fields = struct.unpack_from(phdr, data, phoff + i * phentsize)
        if is64:
            p_type, _flags, offset, vaddr, _paddr, filesz = fields[:6]
        else:
            p_type, offset, vaddr, _paddr, filesz = fields[:5]
        if p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
    if dynamic is None:
        raise ValueError(f"{path} has no dynamic section")

    entries: list[tuple[int, int]] = []
    step = struct.calcsize(dyn)
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], step):
        tag, value = struct.unpack_from(dyn, data, pos)
        if tag == 0:  # DT_NULL
            break
        entries.append((tag, value))
    strtab_vaddr = next(value for tag, value in entries if tag == 5)  # DT_STRTAB
    strtab = next(offset + strtab_vaddr - vaddr for vaddr, offset, size in loads
                  if vaddr <= strtab_vaddr < vaddr + size)

    def string(index: int) -> str:
        start = strtab + index
        return data[start:data.index(b"\0", start)].decode("utf-8", "replace")

    needed = tuple(string(value) for tag, value in entries if tag == 1)  # DT_NEEDED
    runpath = [string(value) for tag, value in entries if tag == 29]  # DT_RUNPATH
    if not runpath:
        runpath = [string(value) for tag, value in entries if tag == 15]  # DT_RPATH
    dirs = tuple(d for entry in runpath for d in entry.split(":") if d)
    return Dynamic(needed, dirs)


def is_system_library(soname: str) -> bool:
    """Whether the bundle leaves ``soname`` to the system (:data:`SYSTEM_LIBRARIES`)."""
    return any(fnmatch.fnmatchcase(soname, pattern) for pattern in SYSTEM_LIBRARIES)


def debian_package(soname: str) -> str | None:
    """The Debian/Ubuntu package that installs ``soname``, when known."""
    sys.path.insert(0, str(ROOT))
    from loracap.ui.platform_check import XCB_LIBRARIES

    known = {lib.soname: lib.debian for lib in XCB_LIBRARIES} | DEBIAN_PACKAGES
    return known.get(soname)


def _resolve(soname: str, needer: Path, internal: Path) -> Path | None:
    """Where the running app finds ``soname`` needed by ``needer``: the bundle's top folder
    first (PyInstaller's bootloader puts it on ``LD_LIBRARY_PATH``), then ``needer``'s
    RUNPATH (``$ORIGIN/../../lib`` for Qt's plugins) when that lies inside the bundle."""
    candidates = [internal / soname]
    for entry in read_dynamic(needer).runpath:
        folder = Path(entry.replace("$ORIGIN", str(needer.parent)).replace(
            "${ORIGIN}", str(needer.parent)))
        candidates.append(folder / soname)
    root = internal.resolve()
    for candidate in candidates:
        if candidate.exists() and candidate.resolve().is_relative_to(root):
            return candidate
    return None


def xcb_closure(internal: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Follow the xcb plugin's libraries through the bundle folder ``internal``.

    Returns ``(bundled, missing)``: the sonames found in the bundle with their paths, and the
    sonames neither in the bundle nor left to the system, each with the file that needs it.
    Raises ``FileNotFoundError`` when the bundle has no xcb plugin.
    """
    roots = [p for pattern in XCB_PLUGIN_GLOBS for p in sorted(internal.glob(pattern))]
    if not roots or not roots[0].name == "libqxcb.so":
        raise FileNotFoundError(f"no Qt xcb platform plugin under {internal}")
    bundled: dict[str, Path] = {}
    missing: dict[str, str] = {}
    queue = list(roots)
    seen: set[Path] = set()
    while queue:
        binary = queue.pop(0)
        if binary.resolve() in seen:
            continue
        seen.add(binary.resolve())
        for soname in read_dynamic(binary).needed:
            if soname in bundled or soname in missing or is_system_library(soname):
                continue
            found = _resolve(soname, binary, internal)
            if found is None:
                missing[soname] = binary.name
            else:
                bundled[soname] = found
                queue.append(found)
    return bundled, missing


def check_xcb_bundle(internal: Path) -> list[str]:
    """One message per library the xcb plugin needs that the bundle lacks; ``[]`` if none."""
    _, missing = xcb_closure(internal)
    problems = []
    for soname, needer in sorted(missing.items()):
        package = debian_package(soname)
        fix = (f"install {package} (Debian/Ubuntu) on the build machine" if package
               else "install it on the build machine")
        problems.append(f"{soname} (needed by {needer}) is not in the bundle: {fix} and "
                        "build again")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else ROOT / "dist" / "LoRACap"
    internal = folder / "_internal"
    bundled, missing = xcb_closure(internal)
    for problem in check_xcb_bundle(internal):
        print(f"error: {problem}", file=sys.stderr)
    if missing:
        return 1
    x11 = sorted(name for name in bundled if name.startswith(("libX", "libxcb", "libxkb")))
    print(f"xcb plugin: the {len(bundled)} libraries it needs beyond the system's are bundled, "
          f"X11 ones: {' '.join(x11)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
