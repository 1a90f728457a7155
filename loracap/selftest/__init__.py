"""``loracap --self-test``: prove that a (frozen) build works, headless, in a few seconds.

It opens a temporary project from the sample images in ``resources/selftest`` (JPEG, PNG, WebP),
captions them through a fake Gemini server started in-process on 127.0.0.1 with the real
``google-genai`` client and its HTTP stack, exports the Replicate zip and reads it back. On the
way it exercises the imports a frozen build can lose: the Qt platform plugin (offscreen) and
image plugins, SQLite, Pillow's codecs, keyring's backend selection. Prints one line; the exit
code is 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import zipfile
from pathlib import Path

from loracap.core.resources import resource

SAMPLE_NAMES = ("hall.jpg", "studio.png", "lobby.webp")


def _samples(target: Path) -> list[Path]:
    """Copy the sample images into ``target`` (or draw them when resources are not shipped)."""
    copied = []
    for name in SAMPLE_NAMES:
        path = target / name
        sample = resource("selftest", name)
        if sample is not None:
            shutil.copyfile(sample, path)
        else:
            from PIL import Image

            Image.new("RGB", (96, 64), (120, 90, 60)).save(path)
        copied.append(path)
    return copied


def _check_qt() -> str:
    from PyQt6.QtCore import QBuffer, QByteArray, QIODevice
    from PyQt6.QtGui import QGuiApplication, QImage, QImageReader

    app = QGuiApplication.instance()
    if app is None:
        raise RuntimeError("no Qt application")
    platform = QGuiApplication.platformName()
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(0x336699)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "JPEG"):
        raise RuntimeError("Qt cannot write JPEG (imageformats plugin missing)")
    formats = {bytes(f).decode() for f in QImageReader.supportedImageFormats()}
    if "jpeg" not in formats:
        raise RuntimeError("Qt cannot read JPEG (imageformats plugin missing)")
    return f"Qt {platform}"


def _run(workdir: Path) -> str:
    import keyring
    from google.genai import version as genai_version
    from PIL import features
    from PyQt6.QtCore import QCoreApplication

    from loracap.core.backends.gemini import GeminiCaptioner
    from loracap.core.exports import REPLICATE_FORMAT, export_project
    from loracap.core.project import Project
    from loracap.core.prompts import Profile, build_instructions
    from loracap.core.scan import scan_folder
    from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
    from loracap.selftest.fake_gemini import FakeGeminiServer

    qt = _check_qt()
    for codec in ("jpg", "webp"):
        if not features.check(codec):
            raise RuntimeError(f"Pillow lacks the {codec} codec")
    chosen = type(keyring.get_keyring())  # selection only; nothing is read or written
    backend = f"{chosen.__module__.rsplit('.', 1)[-1]}.{chosen.__name__}"
    folder = workdir / "selftest"
    folder.mkdir()
    _samples(folder)
    app = QCoreApplication.instance()
    assert app is not None
    with FakeGeminiServer() as server, Project.create(
        folder / "selftest.loraproj", trigger="selftest"
    ) as project:
        project.add_scanned(scan_folder(folder))
        if project.stats().images != len(SAMPLE_NAMES):
            raise RuntimeError(f"the scan found {project.stats().images} valid sample images")
        captioner = GeminiCaptioner("self-test-key", base_url=server.base_url, timeout_s=20)
        runner = CaptionRunner(project, captioner, build_instructions(Profile.SPACE),
                               BatchOptions(rpm=1000))
        results: list[BatchSummary] = []
        runner.finished.connect(lambda summary: (results.append(summary), app.quit()))
        runner.start()
        if not results:
            app.exec()
        runner.wait()
        captioner.close()
        summary = results[0]
        if summary.stop_error is not None or summary.done != len(SAMPLE_NAMES):
            raise RuntimeError(f"captioning failed: {summary.stop_error or summary.failed}")
        result = export_project(project, REPLICATE_FORMAT)
    with zipfile.ZipFile(result.path) as archive:
        if archive.testzip() is not None:
            raise RuntimeError("the exported zip is damaged")
        names = set(archive.namelist())
        expected = set(SAMPLE_NAMES) | {f"{Path(n).stem}.txt" for n in SAMPLE_NAMES}
        if names != expected | {"metadata.txt"}:
            raise RuntimeError(f"unexpected zip entries: {sorted(names)}")
        for name in SAMPLE_NAMES:
            caption = archive.read(f"{Path(name).stem}.txt").decode("utf-8")
            if not caption.startswith("photo of selftest "):
                raise RuntimeError(f"bad caption for {name}: {caption!r}")
            if archive.read(name) != (folder / name).read_bytes():
                raise RuntimeError(f"{name} changed in the zip")
    return (f"{len(SAMPLE_NAMES)} images captioned and exported ({qt}, SQLite "
            f"{sqlite3.sqlite_version}, google-genai {genai_version.__version__}, "
            f"Pillow JPEG/PNG/WebP, keyring {backend})")


def run_self_test() -> int:
    """Run the self-test; prints one line and returns the exit code."""
    from loracap import __version__

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    try:
        with tempfile.TemporaryDirectory(prefix="loracap-selftest-") as tmp:
            detail = _run(Path(tmp))
    except Exception as exc:  # the one line must say what broke
        sys.stdout.write(f"LoRACap {__version__} self-test FAILED: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        del app
    sys.stdout.write(f"LoRACap {__version__} self-test passed: {detail}\n")
    return 0
