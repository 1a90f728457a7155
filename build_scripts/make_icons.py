"""Draw LoRACap's app icon with Pillow and write it in every format the builds need.

    python build_scripts/make_icons.py

Writes ``resources/icons/loracap.png`` (1024 px source, also the window icon),
``loracap.ico`` (Windows: 16–256 px) and ``loracap.icns`` (macOS). The outputs are committed;
run this again only after changing the drawing.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZE = 1024


def draw() -> Image.Image:
    """A photo frame (mountain and sun) with caption lines under it, on a rounded square."""
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    d.rounded_rectangle((40, 40, 984, 984), radius=200, fill=(38, 70, 120, 255))
    d.rounded_rectangle((170, 150, 854, 620), radius=48, fill=(245, 247, 250, 255))
    d.rectangle((210, 190, 814, 580), fill=(120, 175, 220, 255))
    d.polygon([(210, 580), (420, 330), (560, 480), (650, 400), (814, 580)], fill=(52, 110, 80, 255))
    d.ellipse((660, 230, 760, 330), fill=(250, 205, 80, 255))
    for top, right in ((690, 854), (780, 720), (870, 790)):
        d.rounded_rectangle((170, top, right, top + 44), radius=22, fill=(245, 247, 250, 255))
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    icon = draw()
    icon.save(OUT / "loracap.png", optimize=True)
    icon.save(OUT / "loracap.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    icon.save(OUT / "loracap.icns")
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
