"""How the editing tools scale: a project of N captioned images in the real window (offscreen).

Prints, for N images with tag-list captions: opening the project in the window (records, tag
counts, Tags panel), one caption edit (save, undo step, incremental tag counts), a batch find and
replace over every image (one undo step), undoing it, and reopening then undoing again. No
assertions: these are figures to compare between versions.

Usage (from the repository root)::

    python benchmarks/editing.py --images 5000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from PyQt6.QtCore import QSettings  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from loracap.core.project import Project  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402
from loracap.core.tags import find_replace_preview  # noqa: E402
from loracap.ui.main_window import MainWindow  # noqa: E402
from loracap.ui.settings import AppSettings  # noqa: E402
from loracap.ui.thumbnails import ThumbnailProvider  # noqa: E402

VOCABULARY = [f"tag {n}" for n in range(800)] + ["wooden table", "lamp", "window", "plant"]


def _timed(label: str, work) -> object:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = work()
    QApplication.processEvents()
    print(f"{label:<52} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ds"
        folder.mkdir()
        for i in range(args.images):
            Image.new("RGB", (64, 48), (i % 256, 80, 160)).save(folder / f"IMG_{i:05d}.jpg")
        path = folder / "bench.loraproj"
        with Project.create(path, trigger="bench") as project:
            project.add_scanned(scan_folder(folder))
            bodies = {rec.id: ", ".join(rng.sample(VOCABULARY, 12)) for rec in project.images()}
            _timed(f"store {args.images} captions (one batch edit)",
                   lambda: project.apply_edits(bodies, "setup"))
        print(f"{args.images} images, {len(VOCABULARY)} distinct tags, 12 tags per caption")

        settings = AppSettings(QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat))
        window = MainWindow(settings, ThumbnailProvider(Path(tmp) / "thumbs"))
        window.show()
        _timed("open the project in the window", lambda: window.open_project(path))
        first = window.current_record()
        assert first is not None and window.project is not None
        _timed("edit one caption (save, undo step, tag counts)",
               lambda: window.editor.apply_text(first.caption.body + ", brass"))  # type: ignore[union-attr]
        _timed("undo that edit", window.undo)
        project = window.project
        current = {rec.id: rec.caption.body for rec in project.images() if rec.caption}
        changes = _timed("preview a find/replace over every caption",
                         lambda: find_replace_preview(current, "lamp", "pendant lamp"))
        print(f"  ({len(changes)} captions would change)")  # type: ignore[arg-type]
        _timed("apply it as one step and refresh the window",
               lambda: (project.apply_edits({c.image_id: c.after for c in changes},  # type: ignore[attr-defined]
                                            "Replace"),
                        window.refresh_images([c.image_id for c in changes])))  # type: ignore[attr-defined]
        _timed("undo the batch", window.undo)
        _timed("redo the batch", window.redo)
        current = {rec.id: rec.caption.body for rec in project.images() if rec.caption}
        every = find_replace_preview(current, "tag ", "label ")
        _timed(f"replace in all {len(every)} captions, one step, refresh window",
               lambda: window.refresh_images(project.apply_edits(
                   {c.image_id: c.after for c in every}, "Replace everywhere")))
        _timed(f"undo that ({len(every)} captions)", window.undo)
        window.close()
        again = MainWindow(settings, ThumbnailProvider(Path(tmp) / "thumbs"))
        again.show()
        _timed("reopen the project", lambda: again.open_project(path))
        _timed("undo the batch after reopening", again.undo)
        again.close()
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
