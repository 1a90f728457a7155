"""Wall time and peak memory of a question-answer export, as JSON Lines and as a JSON list.

Makes N small photo-like JPEGs (default 2,500 at 320 × 240, cached in the temporary folder
between runs) with P question-answer pairs each (default 4: 10,000 pairs), then exports them in
the ``llava`` style -- records and image copies -- first as JSON Lines, then as a JSON list,
for a tenth of the images and for all of them. The images are handed over one at a time (a
generator), as a project hands them out. Printed per run: the wall time (a run of its own), the
peak of Python memory allocated during the export (tracemalloc, a second run: tracing slows the
code down), and the size written. The export streams, so the peak should not grow with the
number of images. No assertions: figures to compare between versions.

Usage (from the repository root)::

    python benchmarks/qa.py --images 2500 --pairs 4
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loracap.core.qa import AnswerType, QAEntry, QAImage  # noqa: E402
from loracap.core.qa.exports import QAStyle, export_qa  # noqa: E402
from tests.fakes.photos import make_photo  # noqa: E402

ANSWER = ("A woman in a red coat stands on a wooden pier at dusk, holding a paper cup; behind "
          "her the lake is calm and three sailing boats are moored to the left. ")


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` small JPEGs in ``folder``, made once: a folder that holds them is reused."""
    paths = [folder / f"set{i % 10}" / f"IMG_{i:05d}.jpg" for i in range(count)]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        print(f"making {len(missing)} photos in {folder} …", flush=True)
    for path in missing:
        make_photo(path, size=(320, 240), seed=int(path.stem[4:]))
    return paths


def album(root: Path, paths: list[Path], pairs: int) -> Iterator[QAImage]:
    """The images with ``pairs`` pairs each, made one at a time."""
    for number, path in enumerate(paths, 1):
        entries = tuple(
            QAEntry(f"What does picture {number} show, detail {k}?", ANSWER * (1 + k % 2),
                    answer_type=AnswerType.TEXT, confirmed=True, score=4, id=number * 10 + k)
            for k in range(pairs))
        yield QAImage(number, path, path.relative_to(root).as_posix(), entries)


def run(root: Path, paths: list[Path], pairs: int, out_dir: Path, *, jsonl: bool) -> None:
    out = out_dir / ("qa.jsonl" if jsonl else "qa.json")
    started = time.perf_counter()
    result = export_qa(album(root, paths, pairs), out, style=QAStyle.LLAVA, jsonl=jsonl)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        export_qa(album(root, paths, pairs), out, style=QAStyle.LLAVA, jsonl=jsonl)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    copied = sum(path.stat().st_size for path in (out_dir / "images").iterdir())
    kind = "JSON Lines" if jsonl else "JSON list "
    print(f"{kind} {len(paths):>6} images, {result.pairs:>6} pairs: {elapsed:6.2f} s wall, "
          f"peak {peak / 1e6:5.2f} MB Python memory; {out.stat().st_size / 1e6:5.1f} MB of "
          f"records, {copied / 1e6:5.1f} MB of images copied")
    shutil.rmtree(out_dir / "images")
    out.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    temp = Path(tempfile.gettempdir())
    root = temp / "loracap-bench-qa-photos"
    paths = make_photos(root, args.images)
    with tempfile.TemporaryDirectory(prefix="loracap-bench-qa-") as out_dir:
        for jsonl in (True, False):
            for count in (max(1, args.images // 10), args.images):
                run(root, paths[:count], args.pairs, Path(out_dir), jsonl=jsonl)


if __name__ == "__main__":
    main()
