"""Requests and wall time per image of multi-person captions, for 1, 2 and 4 people per image.

Each run makes a project of N photo-like JPEGs (default 12 at 2000 × 1500) with the multi-person
profile and captions it through the real google-genai client against the in-process fake Gemini
server, whose detection answer holds the given number of people (side by side) and which answers
every other request after ``--latency`` seconds (default 0.2, a fast model). The runner's usual
pace is used without its rate limit (rpm 0) and with ``--workers`` at once (default 4), so the
figures show the cost of the extra requests and of making the crops, not of a quota. Printed per
people count: requests per image (1 + N + 1 expected), wall time per image, and how much of it
the fake model's answers account for (the rest is decoding, cropping, encoding and storing).
No assertions: figures to compare between versions.

Usage (from the repository root)::

    python benchmarks/people.py --images 12
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtCore import QCoreApplication  # noqa: E402

from loracap.core.backends.gemini import GeminiCaptioner  # noqa: E402
from loracap.core.captioning_people import people_options  # noqa: E402
from loracap.core.project import Project  # noqa: E402
from loracap.core.prompts import Profile, build_instructions  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402
from loracap.jobs.runner import BatchOptions, CaptionRunner  # noqa: E402
from loracap.selftest.fake_gemini import (  # noqa: E402
    FakeGeminiServer,
    RecordedRequest,
    Reply,
    default_responder,
)
from tests.fakes.photos import make_photo  # noqa: E402


def people_answer(count: int) -> dict[str, object]:
    """``count`` people side by side, as Gemini answers (``box_2d`` normalised to 0-1000)."""
    width = 1000 // count
    return {"people": [{"box_2d": [100, i * width + 10, 950, (i + 1) * width - 10],
                        "gender": "woman" if i % 2 else "man"} for i in range(count)]}


def run(count: int, images: int, workers: int, latency: float, root: Path) -> None:
    folder = root / f"people_{count}"
    for index in range(images):
        make_photo(folder / f"IMG_{index:04d}.jpg", size=(2000, 1500), seed=index)

    def responder(request: RecordedRequest) -> Reply:
        time.sleep(latency)
        if "people" in request.schema_properties:
            return Reply.json(people_answer(count))
        return default_responder(request)

    app = QCoreApplication.instance() or QCoreApplication([])
    with FakeGeminiServer(responder=responder) as server, Project.create(
            folder / "bench.loraproj", trigger="bench",
            profile=Profile.MULTI_PERSON.value) as project:
        project.add_scanned(scan_folder(folder))
        captioner = GeminiCaptioner("bench-key", base_url=server.base_url, timeout_s=30)
        options = BatchOptions(workers=workers, rpm=0, people=people_options(project.settings))
        runner = CaptionRunner(project, captioner, build_instructions(Profile.MULTI_PERSON),
                               options)
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
    waiting = requests * latency / workers
    print(f"{count} person(s): {requests / images:.1f} requests per image, "
          f"{elapsed / images:.3f} s per image ({workers} at once; about "
          f"{waiting / images:.3f} s of it the fake model's {latency:g} s answers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loracap-bench-people-") as temp:
        for count in (1, 2, 4):
            run(count, args.images, args.workers, args.latency, Path(temp))


if __name__ == "__main__":
    main()
