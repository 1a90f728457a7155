"""Captioning throughput against a fast server with no quota (issue 15), beside its floors.

A project of N real-size photos (default 160 at 2000 × 1500, camera-like JPEGs of about
0.8 MB made with Pillow once and kept in the temporary folder between runs) is captioned
through the real runner and the real google-genai client against the fake Gemini server, which
answers every request after ``--latency`` seconds (default 0.5), with ``--workers`` requests at
once (default 16) and no client rate limit (``rpm`` 0). The server runs in a child process
(``--in-process`` for this one): its work, parsing half a megabyte of JSON per request, would
otherwise hold the client's GIL, as no real server does. Two passes:

* **cold** -- the first caption of every image, with an empty upload cache: every photo is
  decoded, scaled to 1536 px and encoded as JPEG on the way;
* **warm** -- every image captioned again with a second model (``mode all``): the prepared
  uploads come from the upload cache (:mod:`loracap.core.upload_cache`), nothing is encoded.

Printed beside them, measured in the same run: the ideal, ``workers / latency`` images per
second (16 / 0.5 s = 32/s: every request slot always waiting on the network); the CPU floor,
the images per second this machine prepares with every core doing nothing else (the CPU time
to prepare every photo once, one after another, divided by the number of cores); and the cold
bound, the cores divided by the CPU time each image took in the cold pass (preparing and
sending it). The cold pass can be no faster than the smaller of the ideal and the floor; the
goal is that the warm pass reaches at least 80 % of the ideal. No assertions: figures to
compare between versions.

The settings, logs and upload cache of the run go to a throw-away folder (``LORACAP_HOME``),
never the user's.

Usage (from the repository root)::

    python benchmarks/throughput.py                    # 160 photos (made once: about a minute)
    python benchmarks/throughput.py --images 320 --workers 32
    python benchmarks/throughput.py --no-cache         # the same passes without the cache
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Before anything reads it: the run's settings, logs and upload cache are thrown away.
_HOME = tempfile.TemporaryDirectory(prefix="loracap-bench-throughput-")
os.environ["LORACAP_HOME"] = _HOME.name


from PIL import Image, ImageDraw, ImageFilter  # noqa: E402
from PyQt6.QtCore import QCoreApplication  # noqa: E402

from loracap.core.backends.gemini import GeminiCaptioner  # noqa: E402
from loracap.core.imaging import prepare_for_upload  # noqa: E402
from loracap.core.project import Project  # noqa: E402
from loracap.core.prompts import Profile, build_instructions  # noqa: E402
from loracap.core.records import CaptionMode  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner  # noqa: E402
from tests.fakes.gemini_server import FakeGeminiServer  # noqa: E402

#: The two models of the fake server the passes use (the second pass is "a second model").
COLD_MODEL = "gemini-2.5-flash"
WARM_MODEL = "gemini-2.5-flash-lite"
MAX_SIDE = 1536


@dataclass(frozen=True)
class Pass:
    """One captioning pass: wall seconds, process CPU seconds, images captioned and failed."""

    wall_s: float
    cpu_s: float
    done: int
    failed: int

    def rate(self) -> float:
        """Images captioned per second."""
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    def cpu_ms(self) -> float:
        """Milliseconds of this process's CPU time per image captioned."""
        return self.cpu_s / max(1, self.done) * 1000


def make_camera_photo(path: Path, size: tuple[int, int], seed: int) -> None:
    """A JPEG that decodes and compresses like a camera's: the gradient and shapes of
    ``tests.fakes.photos.make_photo`` (more of them, some round), blurred, then colour sensor
    noise, saved at quality 90 (2000 × 1500: about 0.8 MB, as a phone's 3-megapixel photo)."""
    rng = random.Random(seed)
    width, height = size
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    ramp = Image.linear_gradient("L").resize(size)
    image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(10, width // 3), y0 + rng.randrange(10, height // 3))
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noise = Image.merge("RGB", [Image.effect_noise(size, 40) for _ in range(3)])
    Image.blend(image, noise, 0.2).save(path, "JPEG", quality=90)


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` camera-like JPEGs of ``size`` in ``folder`` (:func:`make_camera_photo`),
    made once: a folder that holds them is reused."""
    paths = [folder / f"IMG_{index:05d}.jpg" for index in range(count)]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        print(f"making {len(missing)} photos of {size[0]} × {size[1]} in {folder} …",
              flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    for path in missing:
        partial = path.with_name(f".{path.name}.partial")
        make_camera_photo(partial, size, seed=int(path.stem[4:]))
        partial.replace(path)  # a run stopped midway leaves no half-written photo
    return paths


def cpu_floor(paths: list[Path]) -> tuple[float, float]:
    """``(CPU seconds, wall seconds)`` to prepare every photo once, one after another, without
    the cache (the CPU time is the work whatever else the machine runs; on an idle machine the
    two are alike)."""
    cpu, started = time.process_time(), time.perf_counter()
    for path in paths:
        prepare_for_upload(path, max_side=MAX_SIDE)
    return time.process_time() - cpu, time.perf_counter() - started


def caption_pass(project: Project, base_url: str, model: str, mode: CaptionMode,
                 workers: int) -> Pass:
    """Caption the project's images with ``model`` through the runner; the figures."""
    app = QCoreApplication.instance() or QCoreApplication([])
    captioner = GeminiCaptioner("bench-key", model, base_url=base_url, timeout_s=60)
    options = BatchOptions(mode=mode, workers=workers, rpm=0, max_side=MAX_SIDE)
    runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT), options)
    result: list[BatchSummary] = []
    runner.finished.connect(lambda summary: (result.append(summary), app.quit()))
    cpu = time.process_time()
    started = time.perf_counter()
    runner.start()
    if not result:
        app.exec()
    runner.wait()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    captioner.close()
    summary = result[0]
    if summary.stop_error is not None:
        print(f"  the batch stopped: {summary.stop_error}")
    return Pass(wall, cpu, summary.done, len(summary.failed))


@contextlib.contextmanager
def fake_server(latency: float, in_process: bool) -> Iterator[str]:
    """The fake Gemini server answering after ``latency`` seconds; yields its base URL. Unless
    ``in_process``, it runs in a child process (``--serve``), so that its work -- parsing 0.5 MB
    of JSON per request -- does not hold this process's GIL, as no real server would."""
    if in_process:
        with FakeGeminiServer(latency_s=latency) as server:
            yield server.base_url
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(latency)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()  # the child's signal to stop
        child.wait(timeout=30)


def serve(latency: float) -> int:
    """``--serve``: run the fake server, print its base URL, stop when stdin is closed."""
    with FakeGeminiServer(latency_s=latency) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--size", default="2000x1500", help="photo size, WIDTHxHEIGHT")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.5, help="server answer time, s")
    parser.add_argument("--no-cache", action="store_true",
                        help="run both passes without the upload cache")
    parser.add_argument("--in-process", action="store_true",
                        help="run the fake server in this process (its work then takes this "
                             "process's GIL)")
    parser.add_argument("--serve", type=float, metavar="LATENCY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    width, height = (int(part) for part in args.size.lower().split("x"))
    if args.no_cache:
        os.environ["LORACAP_NO_UPLOAD_CACHE"] = "1"
    cores = os.cpu_count() or 1
    folder = Path(tempfile.gettempdir()) / "loracap-bench-throughput" / f"{width}x{height}q90"
    paths = make_photos(folder, args.images, (width, height))
    megabytes = sum(path.stat().st_size for path in paths) / 1e6

    ideal = args.workers / args.latency
    floor_cpu, floor_wall = cpu_floor(paths)
    floor = len(paths) / (floor_cpu / cores)
    print(f"{args.images} photos of {width} × {height} ({megabytes:.0f} MB), {args.workers} "
          f"workers, {args.latency:g} s per answer, no rate limit, {cores} cores, upload cache "
          f"{'off' if args.no_cache else 'on'}, fake server "
          f"{'in this process' if args.in_process else 'in a child process'}")
    print(f"ideal ({args.workers} / {args.latency:g} s): {ideal:.1f} images/s")
    print(f"CPU floor (preparing all once: {floor_cpu:.1f} s of CPU, {floor_wall:.1f} s wall; "
          f"/ {cores} cores): {floor:.1f} images/s")

    with tempfile.TemporaryDirectory(prefix="loracap-bench-project-") as tmp, \
            fake_server(args.latency, args.in_process) as base_url:
        with Project.create(Path(tmp) / "bench.loraproj", trigger="bench") as project:
            names = {path.name for path in paths}
            project.add_scanned(f for f in scan_folder(folder) if f.rel_path in names)
            cold = caption_pass(project, base_url, COLD_MODEL, CaptionMode.MISSING,
                                args.workers)
            warm = caption_pass(project, base_url, WARM_MODEL, CaptionMode.ALL, args.workers)
    for name, result in (("cold", cold), ("warm", warm)):
        print(f"{name} pass: {result.rate():.1f} images/s ({result.rate() / ideal:.0%} of the "
              f"ideal; {result.done} captioned, {result.failed} failed in {result.wall_s:.2f} "
              f"s); CPU {result.cpu_ms():.0f} ms per image, {result.cpu_s / result.wall_s:.0%} "
              f"of one core")
    # What bounds the cold pass: the CPU time each of its images takes (preparing and
    # sending), all cores busy.
    bound = cores / (cold.cpu_ms() / 1000)
    print(f"cold bound ({cores} cores / {cold.cpu_ms():.0f} ms of CPU per image): {bound:.1f} "
          f"images/s; cold pass at {cold.rate() / min(ideal, bound):.0%} of min(ideal, bound), "
          f"{cold.rate() / min(ideal, floor):.0%} of min(ideal, CPU floor); warm pass at "
          f"{warm.rate() / ideal:.0%} of the ideal (goal: 80 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
