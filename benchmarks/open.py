"""Opening a large project (issue 15, "Open 100,000 images…"): every figure beside its floor.

Builds projects of 10,000 and 100,000 images (by default) in a temporary folder by inserting
the rows straight into a new project file -- 90 % captioned, 3 % with a failed latest attempt,
some invalid, some reviewed, in folders of 1,000 -- with an empty file for each image, since
``loracap info`` looks up every image's file to count the missing ones. Then times, best of
``--runs``:

* ``loracap info --json`` in a subprocess, beside the least a program can do for the same
  answer: start Python, read the rows in one SQL query (``sqlite3``, ``SELECT … FROM images
  LEFT JOIN captions``, fetchall) and look up each image's file (``os.stat``); also beside
  the query alone;
* in this process: ``Project.open`` (for writing, as the window opens it: the file's checks,
  WAL, the lock), ``Project.images()`` and ``Project.stats()``, each beside the same query
  run here with ``sqlite3``.

Each line gives the figure, its floor and the ratio. No assertions: figures to compare between
versions.

Usage (from the repository root)::

    python benchmarks/open.py                     # 10,000 and 100,000 images
    python benchmarks/open.py --images 20000 --runs 5
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loracap.core.project import Project  # noqa: E402

#: How SQLAlchemy stores a time in SQLite.
WHEN = "2025-03-01 10:00:00.000000"

#: The one-query floor: every image with its caption, as plain tuples.
FLOOR_QUERY = "SELECT * FROM images LEFT JOIN captions ON captions.image_id = images.id"

#: A program that starts Python and reads the rows in one query (argv[1]: the project file).
FLOOR_ROWS = f"""
import os, sqlite3, sys
folder = os.path.dirname(sys.argv[1])
rows = sqlite3.connect(sys.argv[1]).execute({FLOOR_QUERY!r}).fetchall()
"""

#: The least a program answering ``loracap info`` does: :data:`FLOOR_ROWS`, then a stat of each
#: valid image's file.
FLOOR_INFO = FLOOR_ROWS + """
missing = 0
for row in rows:
    if row[7]:  # images.valid
        try:
            os.stat(os.path.join(folder, row[1]))
        except OSError:
            missing += 1
"""


def build(folder: Path, count: int, seed: int = 15) -> Path:
    """A project of ``count`` images in ``folder``, rows inserted directly; returns its
    path."""
    folder.mkdir(parents=True)
    path = folder / "bench.loraproj"
    with Project.create(path, trigger="bench"):
        pass
    rng = random.Random(seed)
    images, captions, versions, attempts = [], [], [], []
    for image_id in range(1, count + 1):
        stored = f"shoot_{image_id // 1000:03d}/IMG_{image_id:06d}.jpg"
        valid = rng.random() > 0.005
        review = rng.choice(("unreviewed",) * 8 + ("approved", "rejected"))
        images.append((image_id, stored, 2_400_000 + image_id, 1_700_000_000.0 + image_id,
                       1024 if valid else None, 768 if valid else None,
                       "JPEG" if valid else None, int(valid),
                       "" if valid else "Not an image: the file is damaged.", WHEN, review,
                       rng.choice((None, None, 3, 5)), ""))
        chance = rng.random()
        if valid and chance < 0.90:
            body = "a hall with " + ", ".join(f"tag {rng.randrange(800)}" for _ in range(12))
            captions.append((image_id, body, "generated", "gemini", "gemini-flash-latest",
                             "Describe the photo.", WHEN, WHEN))
            versions.append((image_id, body, "generated", "gemini", "gemini-flash-latest",
                             "Describe the photo.", WHEN, 300, 40))
            attempts.append((image_id, WHEN, 1, "", "", "gemini", "gemini-flash-latest",
                             300, 40))
        elif valid and chance < 0.93:
            attempts.append((image_id, WHEN, 0, "server", "500 INTERNAL (gave up after 5 "
                             "attempts)", "gemini", "gemini-flash-latest", 0, 0))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO images (id, path, file_size, mtime, width, height, format, valid, "
            "invalid_reason, added_at, review, rating, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", images)
        conn.executemany(
            "INSERT INTO captions (image_id, body, provenance, backend, model, prompt, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", captions)
        conn.executemany(
            "INSERT INTO caption_versions (image_id, body, provenance, backend, model, prompt, "
            "created_at, input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            versions)
        conn.executemany(
            "INSERT INTO caption_attempts (image_id, at, ok, error_kind, error, backend, model, "
            "input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts)
    conn.close()
    for row in images:
        file = folder / row[1]
        if not file.parent.is_dir():
            file.parent.mkdir()
        file.touch()
    return path


def best(runs: int, work: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``work()``, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def show(label: str, seconds: float, floor: float, floor_label: str) -> None:
    print(f"  {label:<34} {seconds:7.3f} s   floor {floor:7.3f} s ({floor_label})"
          f"   {seconds / floor:5.1f}×")


def floor_query(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(FLOOR_QUERY).fetchall()
    finally:
        conn.close()


def command_line(path: Path, runs: int) -> None:
    """``loracap info --json`` in a subprocess, beside its floors."""

    def run(*command: str) -> None:
        subprocess.run(command, check=True, capture_output=True, cwd=REPO)

    python = sys.executable
    info = best(runs, lambda: run(python, "-m", "loracap", "info", "--json", str(path)))
    floor_info = best(runs, lambda: run(python, "-c", FLOOR_INFO, str(path)))
    floor_only = best(runs, lambda: run(python, "-c", FLOOR_ROWS, str(path)))
    imports = best(runs, lambda: run(python, "-c", "import loracap.cli, loracap.core.project"))
    show("loracap info --json", info, floor_info, "python, 1 query, stat each file")
    show("loracap info --json", info, floor_only, "python, 1 query")
    show("  of which importing LoRACap", imports, floor_only, "python, 1 query")


def in_process(path: Path, runs: int) -> None:
    """``Project.open`` (for writing), ``images()`` and ``stats()`` here, beside the query."""
    floor = best(runs, lambda: floor_query(path))

    def open_close() -> None:
        Project.open(path).close()

    opening = best(runs, open_close)
    with Project.open(path) as project:
        images = best(runs, project.images)
        stats = best(runs, project.stats)
    show("Project.open (for writing)", opening, floor, "1 query")
    show("Project.images()", images, floor, "1 query")
    show("Project.open + images()", opening + images, floor, "1 query")
    show("Project.stats()", stats, floor, "1 query")


#: Opens the project (argv[1]) in the real window (offscreen, 1366 × 768) and prints, as JSON,
#: the seconds from ``open_project`` to the grid's first paint with rows, to every row with its
#: labels and tag counts, and the process's peak memory in MB.
WINDOW_RUN = """
import json, os, resource, sys, time
from pathlib import Path
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PyQt6.QtCore import QEvent, QObject, QSettings
from PyQt6.QtWidgets import QApplication
app = QApplication([])
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
home = Path(sys.argv[2])
window = MainWindow(AppSettings(QSettings(str(home / "s.ini"), QSettings.Format.IniFormat)),
                    ThumbnailProvider(home / "thumbs"))
window.resize(1366, 768)
window.show()
app.processEvents()
painted = []
class Watch(QObject):
    def eventFilter(self, _o, event):
        if event.type() == QEvent.Type.Paint and window.model.rowCount() and not painted:
            painted.append(time.perf_counter())
        return False
watch = Watch()
window.view.viewport().installEventFilter(watch)
started = time.perf_counter()
window.open_project(Path(sys.argv[1]))
while not painted:
    app.processEvents()
while window.model.loading:
    app.processEvents()
done = time.perf_counter()
print(json.dumps({"paint": painted[0] - started, "all": done - started,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
window.close()
"""


def window(path: Path, runs: int) -> None:
    """The window: open ``path``, first grid paint and every row loaded, beside the floor of
    one query of the rows (issue 15: first paint within 0.5 s at 100,000 images)."""
    import json

    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run([sys.executable, "-c", WINDOW_RUN, str(path), home],
                                 capture_output=True, text=True, check=True, cwd=REPO)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    floor = best(runs, lambda: floor_query(path))
    paint = min(r["paint"] for r in results)
    show("window: first grid paint", paint, floor, "one query of the rows")
    show("window: every row, labels, tag counts", min(r["all"] for r in results), floor,
         "one query of the rows")
    print(f"  window: peak memory {max(r['rss'] for r in results):.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.images:
            started = time.perf_counter()
            path = build(Path(tmp) / f"p{count}", count)
            print(f"{count:,} images, 90 % captioned, 3 % failed, folders of 1,000 (built in "
                  f"{time.perf_counter() - started:.1f} s); best of {args.runs}:")
            command_line(path, args.runs)
            in_process(path, args.runs)
            window(path, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
