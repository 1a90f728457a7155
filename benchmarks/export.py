"""How long each export of real-size photos takes against a plain copy of the same bytes.

Makes N photo-like JPEGs (default 500 at 3000 × 2000, cached in the temporary folder between
runs), a project with a caption for each, then times every registered format that copies
image bytes -- as a folder, and as a zip where the format writes one -- against the same
images copied plainly: ``shutil.copytree`` for folder exports, a stored zip of the same files
for zip exports. Each format is exported twice with ``export_project``, as the command line
and the window do: a first export ("cold": the project records no decode, so every image's
pixels are decoded before it is written) and a re-export of the same files ("warm": every file
still has the size and mtime at which its pixels decoded, so none is decoded again;
:mod:`loracap.core.exports.decoded`). Copy, cold and warm run in turn ``--repeat`` times, each
after ``os.sync`` with the photos in the page cache; the best time of each counts (a virtual
machine's disk varies by 2 × from run to run). Of the warm export, the planning (every image's
header read) and the read-back (the writer's verification) are also timed alone. The goal: a
re-export at most 1.5 × the copy; the first export costs what decoding every photo costs. No
assertions: figures to compare between versions.

Usage (from the repository root)::

    python benchmarks/export.py --images 500
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageChops, ImageDraw, ImageFilter  # noqa: E402

from loracap.core.exports import (  # noqa: E402
    FORMATS,
    Container,
    ExportOptions,
    TrainerFormat,
    export_project,
)
from loracap.core.exports.planner import plan_export  # noqa: E402
from loracap.core.exports.writer import (  # noqa: E402
    container_for,
    verify_folder,
    verify_zip,
    write_plan,
)
from loracap.core.project import Project  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402

#: The most a re-export of unchanged files (nothing decoded again) may take, × the copy.
GOAL = 1.5


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` photo-like JPEGs (noise, gradients, blocks; a few MB each, like a camera's)
    in ``folder``, made once: a folder that already holds them is reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"IMG_{i:05d}.jpg" for i in range(count)]
    missing = [path for path in paths if not path.is_file()]
    if not missing:
        return paths
    print(f"making {len(missing)} photos of {size[0]} × {size[1]} in {folder} …", flush=True)
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    base = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                               gradient.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))
    noise = Image.effect_noise(size, 40).convert("RGB")
    for path in missing:
        rng = random.Random(path.name)
        image = ImageChops.offset(base, rng.randrange(width), rng.randrange(height))
        draw = ImageDraw.Draw(image)
        for _ in range(30):
            x0, y0 = rng.randrange(width), rng.randrange(height)
            x1, y1 = x0 + rng.randrange(50, width // 3), y0 + rng.randrange(50, height // 3)
            draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
        image = image.filter(ImageFilter.GaussianBlur(2))
        image = Image.blend(image, ImageChops.offset(noise, rng.randrange(width), 0), 0.15)
        image.save(path, quality=92)
    return paths


def timed(work: Callable[[], object], cleanup: Callable[[], None]) -> float:
    """Seconds one run of ``work`` takes, started with no dirty pages waiting to be written
    (``os.sync``: else a run pays for the writes of the one before); ``cleanup`` after it."""
    os.sync()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    cleanup()
    return seconds


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def copy_folder(photos: list[Path], target: Path, captions: dict[str, bytes]) -> None:
    """The plain copy a folder export is compared with: the images' folder copied
    (``shutil.copytree``), and ``captions`` (file name -> bytes) written beside them."""
    shutil.copytree(photos[0].parent, target,
                    ignore=lambda _folder, names: [n for n in names if not n.endswith(".jpg")])
    for name, data in captions.items():
        (target / name).write_bytes(data)


def copy_zip(photos: list[Path], target: Path, captions: dict[str, bytes]) -> None:
    """The plain copy a zip export is compared with: the same files in a stored zip, and
    ``captions`` as deflated entries."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in photos:
            archive.write(path, path.name)
        for name, data in captions.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)


def plain_copy(container: Container, photos: list[Path], out: Path,
               captions: dict[str, bytes]) -> float:
    """Seconds of one plain copy for ``container`` (see :func:`timed`)."""
    if container is Container.ZIP:
        return timed(lambda: copy_zip(photos, out / "copy.zip", captions),
                     lambda: remove(out / "copy.zip"))
    return timed(lambda: copy_folder(photos, out / "copy", captions),
                 lambda: remove(out / "copy"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", default="3000x2000", help="WIDTHxHEIGHT (default 3000x2000)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder of the generated photos (default: in the temp folder)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where exports and copies are written (default: beside the "
                        "photos; /dev/shm takes the disk out of the figures)")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.lower().split("x"))
    cache = args.cache or Path(tempfile.gettempdir()) / (
        f"loracap-bench-export-{args.images}-{width}x{height}")
    photos = make_photos(cache / "photos", args.images, (width, height))
    total_mb = sum(path.stat().st_size for path in photos) / 1e6
    print(f"{len(photos)} photos, {total_mb:.0f} MB ({total_mb / len(photos):.1f} MB each); "
          f"written to {args.out or cache}; best of {args.repeat}")

    project_path = cache / "photos" / "bench.loraproj"
    remove(project_path)
    with tempfile.TemporaryDirectory(dir=args.out or cache) as tmp, \
            Project.create(project_path, trigger="bench") as project:
        out = Path(tmp)
        project.add_scanned(scan_folder(cache / "photos"))
        for rec in project.images():
            project.store_generated(rec.id, f"a room with a window, {rec.path}",
                                    backend="gemini", model="m", prompt="p")

        ids = [rec.id for rec in project.images()]

        def forget() -> None:
            """Clear the project's record of decoded files: the next export is a first one."""
            project.record_decoded({}, ids)

        print("copy: shutil.copytree of the photos plus a .txt file per caption (folder "
              "exports), or a stored zip of both (zip exports); cold: a first export, every "
              "photo decoded; warm: a re-export of the same files, none decoded again; plan "
              "and check: the warm export's planning and read-back alone")
        print(f"{'format':<24}{'copy':>8}{'cold':>8}{'ratio':>7}{'warm':>8}{'ratio':>7}"
              f"{'plan':>8}{'check':>8}")

        cases: list[tuple[str, TrainerFormat, Path]] = []
        for fmt in FORMATS.values():
            if not fmt.writes_images:
                continue
            name = fmt.default_name("bench")
            cases.append((fmt.name.value, fmt, out / name))
            if fmt.zip_on_suffix:
                cases.append((f"{fmt.name.value} (zip)", fmt, out / f"{name}.zip"))
        options = ExportOptions()
        for label, fmt, target in cases:
            container = container_for(fmt, target)

            def export(fmt: TrainerFormat = fmt, target: Path = target) -> None:
                export_project(project, fmt, target, options)

            captions = {f"{Path(image.dest).stem}.txt": image.caption.encode("utf-8")
                        for image in plan_export(project, fmt, options).images}
            forget()
            copy_times, cold_times, warm_times = [], [], []
            for _ in range(args.repeat):  # in turn, so all see the same machine
                copy_times.append(plain_copy(container, photos, out, captions))
                cold_times.append(timed(export, lambda target=target: remove(target)))
                warm_times.append(timed(export, lambda target=target: (remove(target),
                                                                       forget())))
            copy, cold, warm = min(copy_times), min(cold_times), min(warm_times)
            # The parts of a warm export, once more: planning alone, then the read-back.
            export()
            remove(target)
            start = time.perf_counter()
            plan = plan_export(project, fmt, options)
            planned = time.perf_counter() - start
            write_plan(project, plan, target, replace_existing=False,
                       decoded={image.image_id for image in plan.images})
            start = time.perf_counter()
            if container is Container.ZIP:
                verify_zip(target, plan)
            else:
                verify_folder(target, plan)
            checked = time.perf_counter() - start
            remove(target)
            forget()
            flag = "" if warm / copy <= GOAL else "  re-export over the goal"
            print(f"{label:<24}{copy:7.2f}s{cold:7.2f}s{cold / copy:6.2f}×"
                  f"{warm:7.2f}s{warm / copy:6.2f}×{planned:7.2f}s{checked:7.2f}s{flag}")
    remove(project_path)
    print(f"\ngoal: a re-export of unchanged files at most {GOAL:.2f} × the plain copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
