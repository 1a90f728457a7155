"""Question-answer pairs: generating them through the runner, and exporting them.

**Generating** (issue 14): a project of G photo-like JPEGs (default 100 at 1024 × 768) gets Q
pairs each (default 3) through the real google-genai client against the in-process fake Gemini
server, which answers each request after ``--latency`` seconds (default 0.2). The runner runs
``--workers`` requests at once (default 4) under ``--rpm`` (default 600). Printed: requests
(one per image expected: questions and answers together), pairs stored, the wall time, and the
fastest the rate limit and the fake model's latency allow beside it: the larger of the rate
limit's floor (a sliding minute: the first ``rpm`` requests start at once, each further ``rpm``
a minute later) and G × latency / workers.

**Exporting**: wall time and peak memory of a question-answer export, as JSON Lines and as a
JSON list. Makes N small photo-like JPEGs (default 2,500 at 320 × 240, cached in the temporary folder
between runs) with P question-answer pairs each (default 4: 10,000 pairs), then exports them in
the ``llava`` style -- records and image copies -- first as JSON Lines, then as a JSON list,
for a tenth of the images and for all of them. The images are handed over one at a time (a
generator), as a project hands them out. Printed per run: the wall time (a run of its own), the
peak of Python memory allocated during the export (tracemalloc, a second run: tracing slows the
code down), and the size written. The export streams, so the peak should not grow with the
number of images. No assertions: figures to compare between versions.

Usage (from the repository root)::

    python benchmarks/qa.py --generate-images 100 --images 2500 --pairs 4
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtCore import QCoreApplication  # noqa: E402

from loracap.core.backends.gemini import GeminiCaptioner  # noqa: E402
from loracap.core.project import Project  # noqa: E402
from loracap.core.prompts import Profile, build_instructions  # noqa: E402
from loracap.core.qa import AnswerType, QAEntry, QAImage  # noqa: E402
from loracap.core.qa.generate import QAOptions  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402
from loracap.jobs.runner import BatchOptions, CaptionRunner  # noqa: E402
from loracap.selftest.fake_gemini import (  # noqa: E402
    FakeGeminiServer,
    RecordedRequest,
    Reply,
    default_responder,
)
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


def generate(images: int, questions: int, workers: int, rpm: int, latency: float,
             root: Path) -> None:
    """Generate ``questions`` pairs for each of ``images`` photos; print the figures."""
    folder = root / "generate"
    for index in range(images):
        make_photo(folder / f"IMG_{index:04d}.jpg", size=(1024, 768), seed=index)

    def responder(request: RecordedRequest) -> Reply:
        time.sleep(latency)
        return default_responder(request)

    app = QCoreApplication.instance() or QCoreApplication([])
    with FakeGeminiServer(responder=responder) as server, Project.create(
            folder / "bench.loraproj", trigger="bench") as project:
        project.add_scanned(scan_folder(folder))
        captioner = GeminiCaptioner("bench-key", base_url=server.base_url, timeout_s=30)
        options = BatchOptions(workers=workers, rpm=rpm,
                               qa=QAOptions(questions=questions).checked())
        runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT), options)
        done: list[object] = []
        runner.finished.connect(lambda summary: (done.append(summary), app.quit()))
        started = time.perf_counter()
        runner.start()
        if not done:
            app.exec()
        runner.wait()
        elapsed = time.perf_counter() - started
        captioner.close()
        requests = len(server.generate_requests)
        pairs = project.qa_stats().entries
    # A sliding window: the first rpm starts go at once, each later rpm a minute after.
    rate_floor = (math.ceil(images / rpm) - 1) * 60.0 if rpm else 0.0
    latency_floor = images * latency / workers
    floor = max(rate_floor, latency_floor)
    print(f"generate: {images} images x {questions} questions: {requests} requests, {pairs} "
          f"pairs stored, {elapsed:.2f} s wall; fastest allowed {floor:.2f} s (rate limit "
          f"{rate_floor:.2f} s at {rpm} rpm, answers {latency_floor:.2f} s at {latency:g} s "
          f"x {workers} at once); {elapsed / floor if floor else 0:.2f}x of it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generate-images", type=int, default=100)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    if args.generate_images:
        with tempfile.TemporaryDirectory(prefix="loracap-bench-qa-gen-") as gen_dir:
            generate(args.generate_images, args.questions, args.workers, args.rpm,
                     args.latency, Path(gen_dir))
    if not args.images:
        return
    temp = Path(tempfile.gettempdir())
    root = temp / "loracap-bench-qa-photos"
    paths = make_photos(root, args.images)
    with tempfile.TemporaryDirectory(prefix="loracap-bench-qa-") as out_dir:
        for jsonl in (True, False):
            for count in (max(1, args.images // 10), args.images):
                run(root, paths[:count], args.pairs, Path(out_dir), jsonl=jsonl)


if __name__ == "__main__":
    main()
