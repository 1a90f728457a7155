"""How long a new project takes for a big folder: scan, add to the project, read back.

Prints figures for N real (small) JPEG files made with Pillow; no assertions.

Usage (from the repository root)::

    python benchmarks/scan.py --images 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from loracap.core.project import Project  # noqa: E402
from loracap.core.scan import scan_folder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ds"
        for i in range(args.images):
            sub = folder / f"part{i // 500}"
            sub.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (640, 480), (i % 256, 80, 160)).save(sub / f"IMG_{i:05d}.jpg")
        start = time.perf_counter()
        files = list(scan_folder(folder))
        scanned = time.perf_counter()
        with Project.create(folder / "bench.loraproj", trigger="bench") as project:
            project.add_scanned(files)
            added = time.perf_counter()
            records = project.images()
            read = time.perf_counter()
            project.stats()
            counted = time.perf_counter()
    n = len(files)
    print(f"{n} images")
    per_image = (scanned - start) / n * 1e3
    print(f"scan (probe every file):   {scanned - start:6.2f} s  ({per_image:.2f} ms/image)")
    print(f"add to the project:        {added - scanned:6.2f} s")
    print(f"read all records:          {read - added:6.2f} s  ({len(records)} records)")
    print(f"counts (loracap info):     {counted - read:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
