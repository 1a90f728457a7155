"""How close a captioning batch gets to the fastest schedule a per-minute quota allows.

Runs the real runner and the real google-genai client against the fake Gemini server (which
enforces a sliding-window quota and answers 429 with RetryInfo beyond it) and prints figures:

* ``at quota``: the client limit equals the server's quota. The fastest schedule for 31 images
  at 20 requests/minute is 20 at once and 11 a minute later: about 61 s (one request every 3 s
  would take 93 s). Target: within 10 % of the fastest schedule.
* ``above quota``: the client limit is set higher than the real quota. Target: the 429s are
  absorbed, no image fails.

Usage (from the repository root)::

    python benchmarks/pace.py                 # the real scale: 60-second window, ~2.5 min
    python benchmarks/pace.py --window 6      # a 10x faster run of the same schedule
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtCore import QCoreApplication  # noqa: E402

from loracap.core.gemini import GeminiCaptioner  # noqa: E402
from loracap.core.project import Project  # noqa: E402
from loracap.core.prompts import Profile, build_instructions  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner  # noqa: E402
from tests.fakes.gemini_server import FakeGeminiServer  # noqa: E402
from tests.fakes.photos import make_photo_folder  # noqa: E402


def run(images: int, quota: int, client_rpm: int, window: float, latency: float,
        workers: int) -> tuple[BatchSummary, int]:
    app = QCoreApplication.instance() or QCoreApplication([])
    with tempfile.TemporaryDirectory() as tmp, FakeGeminiServer(
        rpm_limit=quota, window_s=window, latency_s=latency
    ) as server:
        folder = Path(tmp) / "ds"
        make_photo_folder(folder, images, size=(320, 240))
        with Project.create(folder / "bench.loraproj", trigger="bench") as project:
            project.add_scanned(scan_folder(folder))
            captioner = GeminiCaptioner("bench-key", base_url=server.base_url)
            options = BatchOptions(workers=workers, rpm=client_rpm, rate_period_s=window)
            runner = CaptionRunner(project, captioner, build_instructions(Profile.SPACE), options)
            result: list[BatchSummary] = []
            runner.finished.connect(lambda summary: (result.append(summary), app.quit()))
            runner.start()
            if not result:
                app.exec()
            runner.wait()
            captioner.close()
        return result[0], server.rate_limited_count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=31)
    parser.add_argument("--quota", type=int, default=20, help="server requests per window")
    parser.add_argument("--window", type=float, default=60.0, help="quota window, seconds")
    parser.add_argument("--latency", type=float, default=0.5, help="server answer time, s")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    windows = math.ceil(args.images / args.quota) - 1
    fastest = windows * args.window + args.latency
    print(f"{args.images} images, server quota {args.quota} per {args.window:g} s, "
          f"{args.workers} workers, {args.latency:g} s per answer")
    print(f"fastest schedule the quota allows: {fastest:.1f} s; evenly spaced: "
          f"{(args.images - 1) * args.window / args.quota + args.latency:.1f} s")
    scenarios = [("at quota", args.quota), ("above quota", args.quota * 2)]
    for name, rpm in scenarios:
        summary, limited = run(args.images, args.quota, rpm, args.window, args.latency,
                               args.workers)
        ratio = summary.elapsed_s / fastest
        print(f"{name:12s} client limit {rpm:3d}/window: {summary.elapsed_s:6.1f} s "
              f"({ratio:.2f}x fastest), captioned {summary.done}/{summary.total}, "
              f"failed {len(summary.failed)}, 429s absorbed {limited}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
