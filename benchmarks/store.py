"""Storing generated captions (issue 15, "Storing 100,000 generated captions through
``Project``: 2.58 ms each"; goal: 2,000 stored captions a second or more).

Makes a project of ``--captions`` images (rows inserted directly) and stores a model's caption
for every image, each way in a fresh copy:

* one by one: ``Project.store_generated``, a transaction (and a sync of the file) each, as a
  batch with a rate limit stores them;
* in groups of ``--group``: ``Project.store_generated_many``, a transaction per group;
* through a :class:`~loracap.core.captioning.CaptionGroup` (how the runner stores the captions
  of a fast backend: up to 100 captions or 50 ms a transaction), timed until the last caption
  is reported;

each beside its floor: the same rows (an attempt, a version, the caption) written with
``sqlite3`` in the same pragmas (WAL, ``synchronous = FULL``), a transaction a caption or a
group. Prints captions per second and milliseconds per caption. No assertions.

Usage (from the repository root)::

    python benchmarks/store.py
    python benchmarks/store.py --captions 20000 --group 100
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loracap.core.backends.base import TokenUsage  # noqa: E402
from loracap.core.captioning import CaptionGroup, ImageOutcome, PendingCaption  # noqa: E402
from loracap.core.project import Project  # noqa: E402
from loracap.core.project_captions import CaptionToStore  # noqa: E402

WHEN = "2025-03-01 10:00:00.000000"
USAGE = TokenUsage(input_tokens=0, output_tokens=0)  # a local tagger costs no tokens


def build(path: Path, count: int) -> None:
    """An empty project file at ``path`` with ``count`` images, none captioned."""
    with Project.create(path, trigger="bench"):
        pass
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO images (id, path, file_size, mtime, width, height, format, valid, "
            "invalid_reason, added_at, review, rating, note) VALUES "
            "(?, ?, 1000, 1700000000.0, 1024, 768, 'JPEG', 1, '', ?, 'unreviewed', NULL, '')",
            [(n, f"IMG_{n:06d}.jpg", WHEN) for n in range(1, count + 1)])
    conn.close()


def body(image_id: int) -> str:
    return f"1girl, solo, looking at viewer, indoors, window, tag {image_id % 800}"


def one_by_one(project: Project, ids: list[int], _group: int) -> None:
    for image_id in ids:
        project.store_generated(image_id, body(image_id), backend="wd14", model="wd-v3",
                                prompt="", usage=USAGE)


def in_groups(project: Project, ids: list[int], group: int) -> None:
    for start in range(0, len(ids), group):
        project.store_generated_many([CaptionToStore(i, body(i), "wd14", "wd-v3", "", USAGE)
                                      for i in ids[start:start + group]])


def through_caption_group(project: Project, ids: list[int], _group: int) -> None:
    reported = threading.Semaphore(0)
    committer = CaptionGroup(project)
    for image_id in ids:
        caption = CaptionToStore(image_id, body(image_id), "wd14", "wd-v3", "", USAGE)
        committer.submit(ImageOutcome(image_id, ok=True, body=caption.body,
                                      pending=PendingCaption(caption, str(image_id))),
                         lambda outcome: reported.release(), lambda error: None)
    for _ in ids:
        reported.acquire()
    committer.close()


def floor(path: Path, ids: list[int], group: int) -> None:
    """The same rows with ``sqlite3`` as the project writes them (WAL, synchronous FULL), a
    transaction each ``group`` captions."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for start in range(0, len(ids), group):
        chunk = ids[start:start + group]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO caption_attempts (image_id, at, ok, error_kind, error, backend, model, "
            "input_tokens, output_tokens) VALUES (?, ?, 1, '', '', 'wd14', 'wd-v3', 0, 0)",
            [(i, WHEN) for i in chunk])
        conn.executemany(
            "INSERT INTO caption_versions (image_id, body, provenance, backend, model, prompt, "
            "created_at, input_tokens, output_tokens) "
            "VALUES (?, ?, 'generated', 'wd14', 'wd-v3', '', ?, 0, 0)",
            [(i, body(i), WHEN) for i in chunk])
        conn.executemany(
            "INSERT INTO captions (image_id, body, provenance, backend, model, prompt, "
            "created_at, updated_at) VALUES (?, ?, 'generated', 'wd14', 'wd-v3', '', ?, ?)",
            [(i, body(i), WHEN, WHEN) for i in chunk])
        conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()


def timed(template: Path, work: Callable[[Path, list[int]], None], ids: list[int]) -> float:
    """Seconds ``work`` takes on a fresh copy of the project file ``template``."""
    copy = template.with_name(f"copy-{time.monotonic_ns()}.loraproj")
    shutil.copyfile(template, copy)
    try:
        start = time.perf_counter()
        work(copy, ids)
        return time.perf_counter() - start
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def through_project(way: Callable[[Project, list[int], int], None], group: int
                    ) -> Callable[[Path, list[int]], None]:
    def work(path: Path, ids: list[int]) -> None:
        with Project.open(path) as project:
            way(project, ids, group)

    return work


def show(label: str, count: int, seconds: float, floor_s: float) -> None:
    print(f"  {label:<44} {count / seconds:9,.0f}/s {1000 * seconds / count:6.3f} ms each"
          f"   floor {count / floor_s:9,.0f}/s   {seconds / floor_s:5.1f}×")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=10_000)
    parser.add_argument("--group", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "store.loraproj"
        build(template, args.captions)
        ids = list(range(1, args.captions + 1))
        print(f"{args.captions:,} captions stored in a project of {args.captions:,} images "
              "(WAL, synchronous FULL):")
        floor_one = timed(template, lambda path, ids: floor(path, ids, 1), ids)
        floor_group = timed(template, lambda path, ids: floor(path, ids, args.group), ids)
        show("one by one (store_generated)", args.captions,
             timed(template, through_project(one_by_one, 1), ids), floor_one)
        show(f"in groups of {args.group} (store_generated_many)", args.captions,
             timed(template, through_project(in_groups, args.group), ids), floor_group)
        show("through a CaptionGroup (the runner's way)", args.captions,
             timed(template, through_project(through_caption_group, args.group), ids),
             floor_group)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
