"""Real-looking test photos made with Pillow: gradients, shapes and noise, saved as real files."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


def make_photo(path: Path, size: tuple[int, int] = (640, 480), seed: int = 0,
               fmt: str | None = None, orientation: int | None = None) -> Path:
    """Write a photo-like image to ``path`` (format from the suffix unless ``fmt``)."""
    rng = random.Random(seed)
    width, height = size
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    base = Image.new("RGB", size, top)
    image = Image.composite(Image.new("RGB", size, bottom), base, image.convert("L"))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(10, width // 2), y0 + rng.randrange(10, height // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noise = Image.effect_noise(size, 18).convert("RGB")
    image = Image.blend(image, noise, 0.08)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, object] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    image.save(path, format=fmt, **kwargs)
    return path


def make_photo_folder(folder: Path, count: int, *, prefix: str = "IMG_", suffix: str = ".jpg",
                      size: tuple[int, int] = (640, 480)) -> list[Path]:
    """``count`` photos named ``IMG_0001.jpg`` … in ``folder``."""
    return [
        make_photo(folder / f"{prefix}{i:04d}{suffix}", size=size, seed=i)
        for i in range(1, count + 1)
    ]
