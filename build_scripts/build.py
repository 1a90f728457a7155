"""Build LoRACap for the current platform with PyInstaller and archive it under ``dist/``.

    python build_scripts/build.py [--skip-archive]

Runs ``pyinstaller --noconfirm --clean build_scripts/loracap.spec`` (dist path ``dist/``, work path
``build/``, both at the repository root), then writes one archive named with the version:

* Linux:   ``dist/LoRACap-<version>-linux-x86_64.tar.gz`` (the folder ``LoRACap/`` inside)
* Windows: ``dist/LoRACap-<version>-windows-x64.zip``     (the folder ``LoRACap/`` inside)
* macOS:   ``dist/LoRACap-<version>-macos.zip``           (``LoRACap.app`` inside)

It prints the sizes of the built folder and the archive, and exits 1 when the Linux build is
larger than the budget (folder 200 MB, archive 80 MB), so that size creep fails the release, or
when the Linux bundle lacks a library Qt's xcb platform plugin needs (``linux_libs.py``: the
build machine must have them installed, e.g. ``libxcb-cursor0``, so that PyInstaller collects
them).
Needs PyInstaller in the running Python (``pip install pyinstaller``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build_scripts" / "loracap.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build"
APP_NAME = "LoRACap"
MAX_FOLDER_MB = 200  # Linux budgets
MAX_ARCHIVE_MB = 80


def version() -> str:
    """``loracap.__version__``, read from the source tree."""
    sys.path.insert(0, str(ROOT))
    from loracap import __version__

    return __version__


def size_mb(path: Path) -> float:
    """Size of a file, or of all files under a folder (symlinks not followed), in MB."""
    if path.is_file():
        return path.stat().st_size / 1e6
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.lstat().st_size for p in files) / 1e6


def run_pyinstaller() -> None:
    """Build ``dist/LoRACap`` (and ``dist/LoRACap.app`` on macOS) from the spec."""
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)],
        cwd=ROOT, check=True,
    )


def _zip_folder(folder: Path, archive: Path) -> None:
    """Zip ``folder`` with the folder itself as the top entry (symlinks are stored as copies)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent))


def make_archive(ver: str) -> tuple[Path, Path]:
    """Archive the build; return (built folder or .app, archive)."""
    if sys.platform == "darwin":
        built = DIST / f"{APP_NAME}.app"
        archive = DIST / f"{APP_NAME}-{ver}-macos.zip"
        archive.unlink(missing_ok=True)
        if shutil.which("ditto"):  # keeps the .app's symlinks, permissions and attributes
            command = ["ditto", "-c", "-k", "--keepParent", str(built), str(archive)]
            subprocess.run(command, check=True)
        else:
            _zip_folder(built, archive)
    elif sys.platform == "win32":
        built = DIST / APP_NAME
        archive = DIST / f"{APP_NAME}-{ver}-windows-x64.zip"
        archive.unlink(missing_ok=True)
        _zip_folder(built, archive)
    else:
        built = DIST / APP_NAME
        arch = platform.machine() or "x86_64"
        archive = DIST / f"{APP_NAME}-{ver}-linux-{arch}.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=9) as tf:
            tf.add(built, arcname=APP_NAME)
    return built, archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-archive", action="store_true", help="build only; write no archive")
    args = parser.parse_args(argv)

    ver = version()
    print(f"Building LoRACap {ver} for {sys.platform} ...", flush=True)
    run_pyinstaller()

    folder = DIST / (f"{APP_NAME}.app" if sys.platform == "darwin" else APP_NAME)
    if sys.platform.startswith("linux"):
        from linux_libs import check_xcb_bundle  # build_scripts/, beside this file

        problems = check_xcb_bundle(folder / "_internal")
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("xcb plugin: every library it needs beyond the system's is in the bundle")
    folder_mb = size_mb(folder)
    print(f"folder  {folder.relative_to(ROOT)}: {folder_mb:.1f} MB")
    archive_mb = 0.0
    if not args.skip_archive:
        _, archive = make_archive(ver)
        archive_mb = size_mb(archive)
        print(f"archive {archive.relative_to(ROOT)}: {archive_mb:.1f} MB")

    if sys.platform.startswith("linux"):
        too_big = []
        if folder_mb > MAX_FOLDER_MB:
            too_big.append(f"folder {folder_mb:.1f} MB > {MAX_FOLDER_MB} MB")
        if archive_mb > MAX_ARCHIVE_MB:
            too_big.append(f"archive {archive_mb:.1f} MB > {MAX_ARCHIVE_MB} MB")
        if too_big:
            print("error: the build is too large: " + "; ".join(too_big), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
