"""build_scripts/linux_libs.py: the ELF reader and the check that the Linux bundle carries every
library Qt's xcb plugin needs (run by build.py after each Linux build)."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import pytest

from loracap.ui.platform_check import XCB_LIBRARIES

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("linux_libs", REPO / "build_scripts" / "linux_libs.py")
assert _spec is not None and _spec.loader is not None
linux_libs = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("linux_libs", linux_libs)  # dataclasses look their module up there
_spec.loader.exec_module(linux_libs)

BASE = 0x10000  # virtual address of the one loadable segment


def write_elf(path: Path, needed: list[str], runpath: str | None = None, *,
              is64: bool = True, order: str = "<") -> Path:
    """A minimal shared object: ELF header, PT_LOAD + PT_DYNAMIC, string table, dynamic
    section (System V gABI layouts), with the given DT_NEEDED and DT_RUNPATH entries."""
    names = [*needed, *([runpath] if runpath else [])]
    strtab = b"\0"
    offsets = {}
    for name in names:
        offsets[name] = len(strtab)
        strtab += name.encode() + b"\0"
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    strtab_off = ehsize + 2 * phentsize
    dyn_off = (strtab_off + len(strtab) + 7) // 8 * 8
    entries = [(1, offsets[name]) for name in needed]
    if runpath:
        entries.append((29, offsets[runpath]))
    entries += [(5, BASE + strtab_off), (0, 0)]
    dyn_fmt = order + ("qQ" if is64 else "iI")
    dynamic = b"".join(struct.pack(dyn_fmt, tag, value) for tag, value in entries)
    size = dyn_off + len(dynamic)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    if is64:
        header = struct.pack(order + "16sHHIQQQIHHHHHH", ident, 3, 62, 1, 0, ehsize, 0, 0,
                             ehsize, phentsize, 2, 64, 0, 0)
        phdrs = (struct.pack(order + "IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)
                 + struct.pack(order + "IIQQQQQQ", 2, 6, dyn_off, BASE + dyn_off,
                               BASE + dyn_off, len(dynamic), len(dynamic), 8))
    else:
        header = struct.pack(order + "16sHHIIIIIHHHHHH", ident, 3, 20, 1, 0, ehsize, 0, 0,
                             ehsize, phentsize, 2, 40, 0, 0)
        phdrs = (struct.pack(order + "IIIIIIII", 1, 0, BASE, BASE, size, size, 5, 0x1000)
                 + struct.pack(order + "IIIIIIII", 2, dyn_off, BASE + dyn_off, BASE + dyn_off,
                               len(dynamic), len(dynamic), 6, 4))
    data = header + phdrs + strtab
    data += bytes(dyn_off - len(data)) + dynamic
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("is64", "order"), [(True, "<"), (False, ">")])
def test_read_dynamic(tmp_path: Path, is64: bool, order: str) -> None:
    lib = write_elf(tmp_path / "libx.so", ["libxcb-cursor.so.0", "libc.so.6"],
                    "$ORIGIN/../../lib:/opt/x", is64=is64, order=order)
    dynamic = linux_libs.read_dynamic(lib)
    assert dynamic.needed == ("libxcb-cursor.so.0", "libc.so.6")
    assert dynamic.runpath == ("$ORIGIN/../../lib", "/opt/x")


def test_read_dynamic_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "a.so").write_text("INPUT(-lfoo)\n")  # a linker script named like a library
    with pytest.raises(ValueError, match="not an ELF file"):
        linux_libs.read_dynamic(tmp_path / "a.so")


def fake_bundle(internal: Path, *, with_icccm: bool) -> None:
    """_internal/ laid out as PyInstaller does: Qt in PyQt6/Qt6, other libraries on top."""
    qt = internal / "PyQt6" / "Qt6"
    write_elf(qt / "plugins" / "platforms" / "libqxcb.so",
              ["libQt6XcbQpa.so.6", "libGL.so.1", "libxcb-cursor.so.0", "libxcb.so.1",
               "libc.so.6"], "$ORIGIN/../../lib")
    write_elf(qt / "plugins" / "xcbglintegrations" / "libqxcb-glx-integration.so",
              ["libQt6XcbQpa.so.6", "libxcb-glx.so.0"], "$ORIGIN/../../lib")
    write_elf(qt / "lib" / "libQt6XcbQpa.so.6", ["libxcb-icccm.so.4", "libm.so.6"], "$ORIGIN")
    write_elf(internal / "libxcb-cursor.so.0", ["libxcb-util.so.1", "libxcb.so.1"])
    write_elf(internal / "libxcb-util.so.1", ["libxcb.so.1"])
    write_elf(internal / "libxcb-glx.so.0", ["libxcb.so.1"])
    if with_icccm:
        write_elf(internal / "libxcb-icccm.so.4", ["libxcb.so.1"])


def test_complete_bundle_passes(tmp_path: Path) -> None:
    fake_bundle(tmp_path, with_icccm=True)
    bundled, missing = linux_libs.xcb_closure(tmp_path)
    assert missing == {}
    # libGL, libxcb.so.1 and glibc are the system's; the rest is found, Qt's via RUNPATH.
    assert sorted(bundled) == ["libQt6XcbQpa.so.6", "libxcb-cursor.so.0", "libxcb-glx.so.0",
                               "libxcb-icccm.so.4", "libxcb-util.so.1"]
    assert linux_libs.check_xcb_bundle(tmp_path) == []


def test_missing_library_fails_with_the_package_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_bundle(tmp_path / "_internal", with_icccm=False)
    message = ("libxcb-icccm.so.4 (needed by libQt6XcbQpa.so.6) is not in the bundle: install "
               "libxcb-icccm4 (Debian/Ubuntu) on the build machine and build again")
    assert linux_libs.check_xcb_bundle(tmp_path / "_internal") == [message]
    assert linux_libs.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_a_system_copy_outside_the_bundle_does_not_count(tmp_path: Path) -> None:
    internal = tmp_path / "_internal"
    fake_bundle(internal, with_icccm=False)
    # Reachable through RUNPATH, but outside the bundle: the user's machine would not have it.
    write_elf(tmp_path / "outside" / "libxcb-icccm.so.4", ["libxcb.so.1"])
    qpa = internal / "PyQt6" / "Qt6" / "lib" / "libQt6XcbQpa.so.6"
    write_elf(qpa, ["libxcb-icccm.so.4"], f"{tmp_path / 'outside'}")
    _, missing = linux_libs.xcb_closure(internal)
    assert missing == {"libxcb-icccm.so.4": "libQt6XcbQpa.so.6"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux wheel's plugin")
def test_the_app_check_lists_every_library_of_the_real_xcb_plugin() -> None:
    """platform_check.XCB_LIBRARIES covers what the installed PyQt6's xcb plugin needs beyond
    Qt, glibc, the GL dispatch and what QtGui itself needs (a missing one of those fails
    ``import PyQt6.QtGui`` already)."""
    import PyQt6

    qt = Path(PyQt6.__file__).parent / "Qt6"
    plugin = linux_libs.read_dynamic(qt / "plugins" / "platforms" / "libqxcb.so")
    assert "libxcb-cursor.so.0" in plugin.needed
    assert plugin.runpath == ("$ORIGIN/../../lib",)
    needed = set(plugin.needed) | set(linux_libs.read_dynamic(qt / "lib" / "libQt6XcbQpa.so.6").needed)
    gui = set(linux_libs.read_dynamic(qt / "lib" / "libQt6Gui.so.6").needed)
    beyond = {name for name in needed - gui
              if not name.startswith("libQt6") and name != "libxcb.so.1"
              and not linux_libs.is_system_library(name)}
    listed = {lib.soname for lib in XCB_LIBRARIES}
    assert beyond <= listed, f"not in XCB_LIBRARIES: {sorted(beyond - listed)}"
    assert "libxcb.so.1" in needed
