"""How long ``loracap new`` takes for a big folder of real-size photos, against the floor.

The floor is the least any scan must do: list the folder and read every file's header with
Pillow (``Image.open`` and ``.size``). LoRACap's scan is what ``loracap new`` runs:
``scan_folder`` (header, EXIF orientation, the cheap structure checks and the caption file
of every photo), ``Project.create`` and ``add_scanned``. Both run ``--repeat`` times, in turn,
after a warm-up pass that reads every file once, so both find the photos in the page cache;
the best time of each counts. The goal (issue 15): at most 2 × the floor.

The photos (default 10,000) are photo-like JPEGs made with Pillow once and kept in the
temporary folder between runs: long sides from 640 to 4000 px (4:3 and 3:2, landscape and
portrait), one in a hundred at 18 MP (5184 × 3456), a camera-sized EXIF block (orientation,
make, model, a 16-32 KB maker note), one in ten progressive, a caption file beside every
third, 500 photos a folder. ``--folder`` times a folder of your own photos instead. No
assertions: figures to compare between versions.

Usage (from the repository root)::

    python benchmarks/scan.py                 # 10,000 photos (made once: a few minutes)
    python benchmarks/scan.py --count 2000
    python benchmarks/scan.py --folder ~/Pictures/dataset
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from loracap.core.imaging import IMAGE_EXTENSIONS  # noqa: E402
from loracap.core.project import Project  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402

GOAL = 2.0
PER_FOLDER = 500
BASE_SIZE = (5184, 3456)  # 18 MP, a common DSLR and phone size
COMPLETE = "complete.json"  # written when every photo of the cache is made
_MAKER_NOTE = 0x927C
_EXIF_IFD = 0x8769
_base: Image.Image | None = None


# ---------------------------------------------------------------------------- the photos


def photo_plan(count: int) -> list[tuple[str, int, int, int, bool, bool]]:
    """``(rel_path, width, height, orientation, progressive, caption)`` of every photo (the
    size as stored, before EXIF orientation), the same for a given count."""
    rng = random.Random(15)
    plan = []
    for i in range(count):
        if i % 100 == 99:
            width, height = BASE_SIZE
        else:
            long_side = rng.randrange(640, 4001)
            ratio = rng.choice((4 / 3, 3 / 2))
            width, height = long_side, round(long_side / ratio)
        orientation = 1
        if rng.random() < 0.3:  # portrait: stored upright or rotated by the EXIF tag
            if rng.random() < 0.5:
                width, height = height, width
            else:
                orientation = 6
        plan.append((f"part{i // PER_FOLDER:03d}/IMG_{i:05d}.jpg", width, height, orientation,
                     i % 10 == 3, i % 3 == 0))
    return plan


def _base_canvas() -> Image.Image:
    """An 18 MP photo-like canvas (gradients, soft shapes, sensor noise), made once per
    process; every photo is a crop of it."""
    global _base
    if _base is None:
        rng = random.Random(os.getpid())
        width, height = BASE_SIZE
        ramp = Image.linear_gradient("L").resize(BASE_SIZE)
        canvas = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                     ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(120):
            x0, y0 = rng.randrange(width), rng.randrange(height)
            box = (x0, y0, x0 + rng.randrange(20, width // 4), y0 + rng.randrange(20, height // 4))
            fill = tuple(rng.randrange(256) for _ in range(3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        canvas = canvas.filter(ImageFilter.GaussianBlur(3))
        _base = Image.blend(canvas, Image.effect_noise(BASE_SIZE, 24).convert("RGB"), 0.12)
    return _base


def _make_photo(job: tuple[str, tuple[str, int, int, int, bool, bool]]) -> int:
    """Write one planned photo (and its caption file) under the folder ``job[0]``; its bytes."""
    folder, (rel, width, height, orientation, progressive, caption) = job
    path = Path(folder) / rel
    rng = random.Random(rel)
    base = _base_canvas()
    stored = (width, height)  # as stored; orientation 6 shows it turned a quarter
    x = rng.randrange(BASE_SIZE[0] - min(stored[0], BASE_SIZE[0]) + 1)
    y = rng.randrange(BASE_SIZE[1] - min(stored[1], BASE_SIZE[1]) + 1)
    if stored[0] > BASE_SIZE[0] or stored[1] > BASE_SIZE[1]:  # a portrait 18 MP photo
        image = base.transpose(Image.Transpose.ROTATE_90).crop((0, 0, *stored))
    else:
        image = base.crop((x, y, x + stored[0], y + stored[1]))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "LoRACap", "Bench 15", orientation
    exif[0x0132] = "2026:05:01 12:00:00"
    exif.get_ifd(_EXIF_IFD)[_MAKER_NOTE] = rng.randbytes(rng.randrange(16_000, 32_000))
    image.save(path, "JPEG", quality=90, exif=exif, progressive=progressive)
    if caption:
        path.with_suffix(".txt").write_text(f"photo of bench, a room seen from {rel}\n")
    return path.stat().st_size


def make_photos(folder: Path, count: int) -> None:
    """Make the planned photos in ``folder`` (two processes), unless a complete set is there."""
    marker = folder / COMPLETE
    if marker.is_file() and json.loads(marker.read_text()).get("count") == count:
        return
    plan = photo_plan(count)
    for rel, *_rest in plan:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    print(f"making {count} photos in {folder} (once; a few minutes) …", flush=True)
    started = time.perf_counter()
    with multiprocessing.Pool(max(1, min(2, os.cpu_count() or 1))) as pool:
        total = sum(pool.imap_unordered(_make_photo, [(str(folder), p) for p in plan], 20))
    marker.write_text(json.dumps({"count": count, "bytes": total}))
    print(f"  made in {time.perf_counter() - started:.0f} s", flush=True)


# ---------------------------------------------------------------------------- the runs


def photo_paths(folder: Path) -> list[Path]:
    """Every photo under ``folder`` that the scan would read, by extension."""
    found = []
    for parent, _dirs, names in os.walk(folder):
        found.extend(Path(parent) / name for name in names
                     if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    return found


def warm_up(paths: list[Path]) -> int:
    """Read every file once, so every run finds them in the page cache; total bytes."""
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                total += len(block)
    return total


def header_floor(folder: Path) -> tuple[float, int]:
    """Seconds to list ``folder`` and read every photo's header with Pillow; photos read."""
    start = time.perf_counter()
    count = 0
    for path in photo_paths(folder):
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header is read by open; this is what a scan needs
        count += 1
    return time.perf_counter() - start, count


def loracap_new(folder: Path, out: Path) -> tuple[float, float, int, int]:
    """What ``loracap new`` does: ``(scan seconds, create + add seconds, photos, invalid)``."""
    start = time.perf_counter()
    files = list(scan_folder(folder))
    scanned = time.perf_counter()
    project_path = out / "bench.loraproj"
    with Project.create(project_path, trigger="bench") as project:
        project.add_scanned(files)
    added = time.perf_counter()
    project_path.unlink()
    return scanned - start, added - scanned, len(files), sum(not f.info.valid for f in files)


def describe(paths: list[Path]) -> str:
    """Sizes of the photos: count, megapixels and megabytes."""
    pixels = []
    for path in paths:
        with Image.open(path) as im:
            pixels.append(im.size[0] * im.size[1] / 1e6)
    sizes = [path.stat().st_size / 1e6 for path in paths]
    return (f"{len(paths)} photos, {min(pixels):.1f}-{max(pixels):.1f} MP "
            f"(median {statistics.median(pixels):.1f}, {sum(p >= 17 for p in pixels)} at "
            f"18 MP), {sum(sizes) / 1e3:.1f} GB (median {statistics.median(sizes):.2f} MB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="photos to make (10,000)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="time this folder of photos instead of generated ones")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the generated photos are kept (default: the temp folder)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.folder is not None:
        folder = args.folder.expanduser().absolute()
    else:
        folder = args.cache or Path(tempfile.gettempdir()) / f"loracap-bench-scan-{args.count}"
        make_photos(folder, args.count)
    paths = photo_paths(folder)
    print(describe(paths))
    print(f"warm-up: read {warm_up(paths) / 1e9:.1f} GB; best of {args.repeat} runs each")
    floors, scans, adds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            floor, read = header_floor(folder)
            scan, add, listed, invalid = loracap_new(folder, Path(tmp))
            floors.append(floor)
            scans.append(scan)
            adds.append(add)
    floor, scan, add = min(floors), min(scans), min(adds)
    best_total = min(s + a for s, a in zip(scans, adds, strict=True))
    print(f"header-read floor (Pillow open + size): {floor:7.2f} s  "
          f"({floor / read * 1e6:.0f} µs/photo, {read} photos)")
    print(f"loracap new:                            {best_total:7.2f} s  "
          f"({best_total / listed * 1e6:.0f} µs/photo; {listed} listed, {invalid} invalid)")
    print(f"  scan_folder (probe + caption files):  {scan:7.2f} s")
    print(f"  Project.create + add_scanned:         {add:7.2f} s")
    ratio = best_total / floor
    print(f"ratio: {ratio:.2f} × the floor (goal ≤ {GOAL:.0f} ×: "
          f"{'met' if ratio <= GOAL else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
