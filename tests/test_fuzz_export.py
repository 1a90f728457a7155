"""Property test (Hypothesis): no export path leaves the export's root, whatever the photos are
called.

Each example makes a folder of real small JPEG and PNG files (Pillow) under generated names --
sub-folders, backslashes, ``..`` pieces, Windows device names, colons, control characters,
decomposed Unicode -- scans it into a real project and plans an export in every format. Every
image, caption file and extra file of every plan must be a relative POSIX path without ``..``
that stays inside the root when joined, on Linux and as Windows reads it.

Deterministic (``derandomize=True``, no example database); about 25 folders.
"""

from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from loracap.core.exports import FORMATS, ExportOptions, plan_export
from loracap.core.project import Project
from loracap.core.scan import scan_folder

FUZZ = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 160), (120, 90, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = {".jpg": _image_bytes("JPEG"), ".png": _image_bytes("PNG")}


def _usable(name: str) -> bool:
    """A name Linux can create: not ``.``/``..``, no ``/`` or NUL, at most 255 bytes."""
    return name not in ("", ".", "..") and len(os.fsencode(name)) <= 200


#: One part of a file name: any character a Linux name may hold, or a nasty piece.
NAME_PART = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
            min_size=1, max_size=12),
    st.sampled_from(["..", "...", "\\..\\..\\evil", "..\\", "C:", "c:\\x", "CON", "nul", "Com1",
                     "a:b", "<>|?*\"", " ", "\t", "\n", "\r", "\x1b[31m", "\x7f", "\x85",
                     "e\u0301", "\u212b", "\u202e", "metadata", "dataset.toml", "img", "."]),
)
NAMES = st.lists(NAME_PART, min_size=1, max_size=3).map("".join).filter(_usable)

#: A photo's path below the dataset folder: up to two sub-folders, a stem and an extension.
PHOTOS = st.lists(
    st.tuples(st.lists(NAMES, max_size=2), NAMES, st.sampled_from([".jpg", ".JPG", ".png"])),
    min_size=1, max_size=4,
)


def _check_inside(root: Path, rel: str) -> None:
    assert rel, "empty path"
    assert "\\" not in rel, rel  # a separator on Windows
    parts = rel.split("/")
    assert all(part not in ("", ".", "..") for part in parts), rel
    assert not PurePosixPath(rel).is_absolute(), rel
    windows = PureWindowsPath(rel)
    assert not windows.drive and not windows.root, rel
    for part in parts:
        assert not any(ch in '<>:"|?*' for ch in part), rel
        assert not any(unicodedata.category(ch) == "Cc" and ch <= "\x7f" for ch in part), rel
    joined = Path(os.path.normpath(root / rel))
    assert joined.is_relative_to(root) and joined != root, rel


@FUZZ
@given(PHOTOS, st.sampled_from(["", "photo"]))
def test_no_export_path_leaves_the_export_root(photos: list[tuple[list[str], str, str]],
                                               rename_prefix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ds"
        folder.mkdir()
        (folder / "IMG_0001.jpg").write_bytes(IMAGES[".jpg"])  # one ordinary photo always
        for subfolders, stem, ext in photos:
            path = folder.joinpath(*subfolders, stem + ext)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(IMAGES[ext.lower()])
        with Project.create(folder / "t.loraproj", trigger="t") as project:
            project.add_scanned(scan_folder(folder))
            for rec in project.images():
                if rec.valid:
                    project.store_generated(rec.id, f"caption of {rec.path}", backend="gemini",
                                            model="m", prompt="p")
            root = Path(tmp) / "out"
            for fmt in FORMATS.values():
                plan = plan_export(project, fmt, ExportOptions(rename_prefix=rename_prefix))
                assert plan.images, fmt
                for planned in plan.images:
                    _check_inside(root, planned.dest)
                    if planned.caption_dest is not None:
                        _check_inside(root, planned.caption_dest)
                for extra in plan.extra_files:
                    _check_inside(root, extra)
                dests = [p.dest.casefold() for p in plan.images]
                assert len(set(dests)) == len(dests), fmt  # never two images under one name
